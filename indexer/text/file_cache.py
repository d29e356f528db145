"""A size bound for the caches of file readings: OCR (`~/.cache/yomitoki/ocr/`) and LibreOffice
conversions (`~/.cache/yomitoki/converted/`).

Each entry is one file, keyed by its source's content, so entries of files long
changed or deleted are never read again; without a bound the folders only grow.
A hit marks its entry used (its modification time), and after each write the
folder is trimmed to `YOMITOKI_CACHE_MB` megabytes (default 1024) by removing
the least recently used entries first. The entry just written is always kept.
Trimming is best effort: an entry another process removed first, or one that
cannot be removed, costs nothing but a later re-read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from indexer.errors import InputError

CACHE_LIMIT_ENV = "YOMITOKI_CACHE_MB"
DEFAULT_LIMIT_MB = 1024.0


def limit_bytes(env: Mapping[str, str] | None = None) -> int:
    """The bound of each cache folder, from `YOMITOKI_CACHE_MB` (megabytes; decimals allowed)."""
    value = (os.environ if env is None else env).get(CACHE_LIMIT_ENV, "").strip()
    if not value:
        return int(DEFAULT_LIMIT_MB * 1024 * 1024)
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:  # also NaN
        raise InputError(f"{CACHE_LIMIT_ENV} must be a number of megabytes (0 or more), not {value!r}")
    return int(megabytes * 1024 * 1024)


def mark_used(entry: Path) -> None:
    """Record a cache hit: the entry becomes the most recently used."""
    with contextlib.suppress(OSError):
        os.utime(entry)


def trim(folder: Path, keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used entries of `folder` (never `keep`) until it holds at most `limit`
    bytes (default: `limit_bytes()`); the entries removed, oldest first."""
    limit = limit_bytes() if limit is None else limit
    entries = []
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".tmp"):
                    stat = entry.stat(follow_symlinks=False)
                    entries.append((stat.st_mtime_ns, entry.name, stat.st_size))
                    total += stat.st_size
    removed = []
    for _, name, size in sorted(entries):
        if total <= limit:
            break
        path = folder / name
        if path == keep:
            continue
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
            removed.append(path)
            total -= size
    return removed
