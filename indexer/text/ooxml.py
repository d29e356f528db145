"""Word, Excel and PowerPoint files are zip archives of XML (Office Open XML), each opened here by its
library. Their parsers unpack and parse a part whole, so a small file that unpacks to gigabytes (a zip
bomb) would exhaust memory: its size unpacked, which the archive's directory states, is checked before
any parser opens it."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from indexer.errors import InputError

MAX_UNPACKED = 200_000_000  # bytes: 20 times the 10 MB a corpus file may have, far more than XML unpacks to

Opened = TypeVar("Opened")


def open_package(path: Path, open_with: Callable[[Path], Opened], kind: str, error: type[InputError],
                 damaged: tuple[type[Exception], ...] = ()) -> Opened:
    """`open_with(path)`, or `error` saying why not: the archive unpacks to too much, or the file is
    damaged or not `kind` ("a Word file"). `damaged` adds the library's own exceptions for that."""
    if reason := oversized(path):
        raise error(reason)
    caught: tuple[type[Exception], ...] = (*damaged, zipfile.BadZipFile, KeyError, ValueError, OSError)
    try:
        return open_with(path)
    except caught as exc:
        raise error(f"damaged or not {kind} ({exc.__class__.__name__}: {exc})") from exc


def oversized(path: Path) -> str | None:
    """Why the archive must not be opened (it unpacks to more than MAX_UNPACKED bytes), or None.

    A file that is not a zip archive passes: its parser says what is wrong with it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if size > MAX_UNPACKED:
        return f"unpacks to {size:,} bytes, over the {MAX_UNPACKED:,}-byte limit"
    return None
