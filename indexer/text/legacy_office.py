"""Word, Excel and PowerPoint files in their pre-2007 formats (.doc, .xls, .ppt), converted by LibreOffice.

LibreOffice (`soffice --headless --convert-to`) rewrites such a file in the matching Office
Open XML format (.docx, .xlsx, .pptx), which the readers of those formats then read. Each
conversion runs with a profile of its own, so conversions can run side by side and beside a
desktop LibreOffice, and within a time limit. What it wrote is cached by the file's SHA-256
(`~/.cache/yomitoki/converted/`), so a rebuild does not convert an unchanged file again.
A corpus's legacy files are converted ahead of reading, a LibreOffice per CPU (`convert_all`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from indexer.errors import InputError
from indexer.text import file_cache
from indexer.text.ocr import workers

CONVERSIONS = {".doc": "docx", ".xls": "xlsx", ".ppt": "pptx"}
# what each needs of LibreOffice, what its format is called (for the messages), and LibreOffice's import
# filter for it: named, so that a damaged file fails rather than being imported as plain text
_NEEDS = {".doc": ("libreoffice-writer-nogui", "a Word", "MS Word 97"),
          ".xls": ("libreoffice-calc-nogui", "an Excel", "MS Excel 97"),
          ".ppt": ("libreoffice-impress-nogui", "a PowerPoint", "MS PowerPoint 97")}
TIMEOUT_S = 120
RECIPE = 1  # bumped when the conversion changes, so that older cached conversions are not used


class ConversionError(InputError):
    """A legacy file LibreOffice is not installed to convert, or could not convert; the message says which."""


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "yomitoki" / "converted"


def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def converted(path: Path, cache_dir: Path | None = None) -> Path:
    """The Office Open XML rewrite of a .doc, .xls or .ppt file (cached); ConversionError if there is none."""
    suffix = path.suffix.lower()
    target = CONVERSIONS[suffix]
    package, kind, import_filter = _NEEDS[suffix]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cached = (cache_dir or default_cache_dir()) / f"{digest}-v{RECIPE}.{target}"
    if cached.is_file():
        file_cache.mark_used(cached)
        return cached
    soffice = _soffice()
    if soffice is None:
        raise ConversionError(f"{kind} file in the old {suffix} format: install LibreOffice to read it "
                              f"(apt-get install {package}), or save it as .{target}")
    with tempfile.TemporaryDirectory(prefix="yomitoki-convert-") as work:
        source = Path(work) / f"source{suffix}"  # a plain name: LibreOffice names its output after its input
        shutil.copyfile(path, source)
        command = [soffice, f"-env:UserInstallation={(Path(work) / 'profile').as_uri()}", "--headless",
                   "--norestore", f"--infilter={import_filter}", "--convert-to", target,
                   "--outdir", str(Path(work) / "out"), str(source)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ConversionError(f"LibreOffice took more than {TIMEOUT_S} s to convert it") from exc
        written = Path(work) / "out" / f"source.{target}"
        if done.returncode != 0 or not written.is_file():
            said = [line for line in done.stderr.decode(errors="replace").splitlines()
                    if line.strip() and "javaldx" not in line]
            reason = said[-1].strip() if said else "it wrote nothing"
            raise ConversionError(f"damaged or not {kind} file: LibreOffice could not convert it ({reason}; "
                                  f"converting {suffix} needs {package})")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
            os.close(handle)
            shutil.move(written, temporary)
            os.replace(temporary, cached)  # whole or not at all: a reader never sees half a file
        except OSError as exc:
            raise ConversionError(f"converted, but the conversion cannot be kept in {cached.parent} ({exc})") from exc
    file_cache.trim(cached.parent, keep=cached)
    return cached


def convert_all(paths: Sequence[Path]) -> None:
    """Convert (or find cached) every .doc, .xls and .ppt file among `paths`, side by side, so that reading them
    one by one finds each in the cache. A file that fails is left to fail again, with its message, when read."""
    legacy = [path for path in paths if path.suffix.lower() in CONVERSIONS]
    if len(legacy) < 2 or _soffice() is None:
        return

    def attempt(path: Path) -> None:
        with contextlib.suppress(ConversionError, OSError):
            converted(path)

    with ThreadPoolExecutor(min(workers(), len(legacy)), thread_name_prefix="convert") as pool:
        list(pool.map(attempt, legacy))
