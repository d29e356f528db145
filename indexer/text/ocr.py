"""Words of scanned pages, read by Tesseract OCR, with their boxes.

A PDF page whose text layer is empty (a scan, a fax, a photographed page) is rendered
at 300 dpi and read by the `tesseract` command in the languages of `YOMITOKI_OCR`
(Tesseract's `jpn+eng` by default; `off` switches OCR off). A page Tesseract reads with low
confidence is read again with its vertical Japanese model (`jpn_vert`, where installed), which
finds vertical (縦書き) lines itself, and the surer reading is kept. The words come back with
their boxes, so the PDF reader lays them out (lines, columns, running headers, paragraphs)
exactly as it lays out the characters of a text layer.

Each Tesseract process runs one thread (`OMP_THREAD_LIMIT=1`) and a PDF's pages are
read in parallel, one process per CPU: Tesseract's own OpenMP threads made a page 5×
slower on two busy cores. The command is run directly rather than through a wrapper
library so that this setting reaches it and nothing else in the process.

OCR takes seconds a page, and a build reads every file again, so what Tesseract found
is cached by the file's SHA-256, the languages, the resolution and Tesseract's version
(`~/.cache/yomitoki/ocr/`): an unchanged scan is read once.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from indexer.errors import InputError
from indexer.text import file_cache

OCR_ENV = "YOMITOKI_OCR"
DEFAULT_LANGUAGES = "jpn+eng"
# Tesseract's mean word confidence on a page it read well is about 90; on a vertical (縦書き) page read as
# horizontal lines it is 20–30. Below this, a page is read again with the vertical model, and the reading
# Tesseract is surer of is kept: a page it misjudges costs a second reading, never text.
LOW_CONFIDENCE = 60
DPI = 300
MAX_PIXELS = 36_000_000  # an A3 page at 300 dpi is 17.4 million
PAGE_TIMEOUT_S = 300
CACHE_VERSION = 3  # 3: low-confidence pages read again with the vertical model


class OcrUnavailable(InputError):
    """OCR is switched off, or Tesseract or one of its languages is not installed; the message says which."""


class OcrFailed(InputError):
    """Tesseract failed on a page; the message gives its own words."""


@dataclass(frozen=True)
class OcrWord:
    text: str
    left: float     # pixels from the image's left edge
    top: float      # pixels from its top edge
    right: float
    bottom: float
    line: int       # Tesseract's line on the page (its block, paragraph and line, numbered in its order)


def languages(env: Mapping[str, str] | None = None) -> str | None:
    """Tesseract's language list for OCR, or None when it is switched off."""
    value = (os.environ if env is None else env).get(OCR_ENV, "").strip() or DEFAULT_LANGUAGES
    return None if value.lower() in ("off", "no", "none", "0", "false") else value


def with_vertical(langs: str) -> str | None:
    """`langs` with Tesseract's vertical Japanese model after `jpn` (jpn+eng → jpn+jpn_vert+eng), when they
    read Japanese without it and it is installed (Debian's tesseract-ocr-jpn-vert); else None."""
    found = _tesseract()
    parts = langs.split("+")
    if isinstance(found, str) or "jpn_vert" not in found[1] or "jpn" not in parts or "jpn_vert" in parts:
        return None
    return "+".join(part + ("+jpn_vert" if part == "jpn" else "") for part in parts)


def _run(*args: str, data: bytes | None = None, timeout: float = 30) -> bytes:
    command = shutil.which("tesseract")
    if command is None:
        raise FileNotFoundError("no tesseract command on PATH")
    try:
        done = subprocess.run([command, *args], input=data, capture_output=True, timeout=timeout, check=False,
                              env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except subprocess.TimeoutExpired as exc:
        raise OcrFailed(f"tesseract took more than {timeout:g} s") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise OcrFailed(f"tesseract exited with {done.returncode}: {said[-1] if said else 'no message'}")
    return done.stdout


@functools.cache
def _tesseract() -> tuple[str, frozenset[str]] | str:
    """Tesseract's version and installed languages, or why it cannot run."""
    try:
        version = _run("--version").decode().split()[1]
        listed = _run("--list-langs").decode().splitlines()[1:]  # after "List of available languages in …"
    except (OSError, subprocess.SubprocessError, OcrFailed, IndexError) as exc:
        return f"Tesseract cannot run ({exc})"
    return version, frozenset(line.strip() for line in listed if line.strip())


def engine(langs: str) -> str:
    """Tesseract's version, once it is sure to read `langs`; OcrUnavailable saying what to install if not."""
    found = _tesseract()
    if isinstance(found, str):
        raise OcrUnavailable(f"{found}; install it to read scanned pages (apt-get install tesseract-ocr "
                             "tesseract-ocr-jpn), or set YOMITOKI_OCR=off")
    version, installed = found
    missing = [lang for lang in langs.split("+") if lang not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        raise OcrUnavailable(f"Tesseract has no {', '.join(missing)} language data (apt-get install {packages}; "
                             f"installed: {', '.join(sorted(installed)) or 'none'})")
    return version


def read_image(image: bytes, langs: str) -> list[OcrWord]:
    """The words Tesseract reads in an image (any format it reads: PNG, PGM…), with their boxes in pixels.
    A page read with low confidence is read again with the vertical Japanese model where it may help."""
    words, confidence = read_words(image, langs)
    vertical = with_vertical(langs) if confidence < LOW_CONFIDENCE else None
    if vertical is not None:
        again, surer = read_words(image, vertical)
        if surer > confidence:
            return again
    return words


def read_words(image: bytes, langs: str) -> tuple[list[OcrWord], float]:
    """The words Tesseract reads, and its mean confidence in them (0–100) by character."""
    tsv = _run("stdin", "stdout", "-l", langs, "tsv", data=image, timeout=PAGE_TIMEOUT_S).decode("utf-8")
    words = []
    lines: dict[tuple[str, str, str], int] = {}
    weighted = 0.0
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if text and float(row["conf"]) >= 0:  # -1: a page, block, paragraph or line entry, not a word
            line = lines.setdefault((row["block_num"], row["par_num"], row["line_num"]), len(lines))
            left, top = float(row["left"]), float(row["top"])
            words.append(OcrWord(text, left, top, left + float(row["width"]), top + float(row["height"]), line))
            weighted += float(row["conf"]) * len(text)
    characters = sum(len(word.text) for word in words)
    return words, weighted / characters if characters else 0.0


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "yomitoki" / "ocr"


def workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class PageReader:
    """OCR of one file's scanned pages (a PDF's, or an image's frames): submitted in page order, read in
    parallel, kept in the cache.

    Use as a context manager: leaving it saves what was read and stops what is still running."""

    def __init__(self, path: Path, langs: str, cache_dir: Path | None = None) -> None:
        version = engine(langs)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        key = f"{digest}-{langs}-{DPI}dpi-tesseract{version}-v{CACHE_VERSION}"
        self.file = (cache_dir or default_cache_dir()) / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        self.langs = langs
        self.pages: dict[int, tuple[list[OcrWord], float]] = {}
        try:
            stored = json.loads(self.file.read_text(encoding="utf-8"))["pages"]
            self.pages = {int(number): ([OcrWord(str(t), float(x0), float(y0), float(x1), float(y1), int(n))
                                         for t, x0, y0, x1, y1, n in page["words"]], float(page["scale"]))
                          for number, page in stored.items()}
            file_cache.mark_used(self.file)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.pages = {}  # not read yet, or a damaged entry: read the pages again
        self.changed = False
        self.pool = ThreadPoolExecutor(workers(), thread_name_prefix="ocr")
        self.running: dict[int, tuple[Future[list[OcrWord]], float]] = {}

    def __enter__(self) -> PageReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.save()

    def submit(self, number: int, render: Callable[[float], Any], *, points: float, scale: float = DPI / 72) -> None:
        """Start reading page `number` (1-based) unless it is cached. `render(scale)` gives the page as a PIL
        image at `scale` pixels a point; `points` is the page's area, so that a page larger than A3 is rendered
        smaller, to MAX_PIXELS. At most two pages a worker wait, rendered, at any time."""
        if number in self.pages:
            return
        while len([f for f, _ in self.running.values() if not f.done()]) >= 2 * workers():
            next(f for f, _ in self.running.values() if not f.done()).result()
        scale = min(scale, (MAX_PIXELS / points) ** 0.5)
        image = io.BytesIO()
        render(scale).save(image, "PPM")  # a grey image is written as PGM, which Tesseract reads from stdin
        self.running[number] = (self.pool.submit(read_image, image.getvalue(), self.langs), scale)

    def words(self, number: int) -> tuple[list[OcrWord], float]:
        """The words of a submitted page, in pixels, and the pixels per PDF point."""
        if number in self.running:
            future, scale = self.running.pop(number)
            self.pages[number] = (future.result(), scale)
            self.changed = True
        return self.pages[number]

    def save(self) -> None:
        """Keep what was read, written whole or not at all. A cache that cannot be written costs time only."""
        if not self.changed:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.file.parent, suffix=".tmp")
            try:
                pages = {number: {"scale": scale, "words": [[w.text, w.left, w.top, w.right, w.bottom, w.line]
                                                            for w in words]}
                         for number, (words, scale) in self.pages.items()}
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump({"pages": pages}, out, ensure_ascii=False)
                os.replace(temporary, self.file)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError:
            return
        file_cache.trim(self.file.parent, keep=self.file)
