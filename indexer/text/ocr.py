"""Words of a scanned page, read by Tesseract OCR (through pytesseract), with their boxes.

A PDF page whose text layer is empty (a scan, a fax, a photographed page) is rendered
at 300 dpi and read by Tesseract in the languages of `YOMITOKI_OCR` (Tesseract's
`jpn+eng` by default; `off` switches OCR off). The words come back with their boxes,
so the PDF reader lays them out (lines, columns, running headers, paragraphs) exactly
as it lays out the characters of a text layer.

OCR takes seconds a page, and a build reads every file again, so what Tesseract found
is cached by the file's SHA-256, the page, the languages, the resolution and
Tesseract's version (`~/.cache/yomitoki/ocr/`): an unchanged scan is read once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.errors import InputError

OCR_ENV = "YOMITOKI_OCR"
DEFAULT_LANGUAGES = "jpn+eng"
DPI = 300
MAX_PIXELS = 36_000_000  # an A3 page at 300 dpi is 17.4 million
CACHE_VERSION = 1


class OcrUnavailable(InputError):
    """OCR is switched off, or Tesseract or one of its languages is not installed; the message says which."""


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
    value = (os.environ if env is None else env).get(OCR_ENV, DEFAULT_LANGUAGES).strip()
    return None if value.lower() in ("", "off", "no", "none", "0", "false") else value


@functools.cache
def _tesseract() -> tuple[str, frozenset[str]] | str:
    """Tesseract's version and installed languages, or why it cannot run."""
    import pytesseract

    try:
        return str(pytesseract.get_tesseract_version()), frozenset(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError) as exc:
        return f"Tesseract cannot run ({exc})"


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


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "yomitoki" / "ocr"


def _read_image(image: Any, langs: str) -> list[OcrWord]:
    import pytesseract

    data = pytesseract.image_to_data(image, lang=langs, output_type=pytesseract.Output.DICT)
    words = []
    lines: dict[tuple[int, int, int], int] = {}
    for i, text in enumerate(data["text"]):
        if text.strip() and float(data["conf"][i]) >= 0:  # -1: a block, paragraph or line entry, not a word
            line = lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), len(lines))
            left, top = float(data["left"][i]), float(data["top"][i])
            words.append(OcrWord(text.strip(), left, top, left + float(data["width"][i]),
                                 top + float(data["height"][i]), line))
    return words


class PageReader:
    """OCR of one PDF's pages, through the cache."""

    def __init__(self, path: Path, langs: str, cache_dir: Path | None = None) -> None:
        version = engine(langs)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        key = f"{digest}-{langs}-{DPI}dpi-tesseract{version}-v{CACHE_VERSION}"
        self.file = (cache_dir or default_cache_dir()) / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        self.langs = langs
        self.pages: dict[str, list[list[Any]]] = {}
        try:
            self.pages = json.loads(self.file.read_text(encoding="utf-8"))["pages"]
        except (OSError, ValueError, KeyError, TypeError):
            self.pages = {}  # not read yet, or a damaged entry: read the pages again
        self.changed = False

    def words(self, number: int, render: Any, *, points: float) -> tuple[list[OcrWord], float]:
        """The words of page `number` (1-based), in pixels, and the pixels per PDF point. `render(scale)`
        gives the page as a PIL image; it is called only when the page is not cached. `points` is the
        page's area: a page larger than A3 is rendered under 300 dpi, to MAX_PIXELS."""
        scale = min(DPI / 72, (MAX_PIXELS / points) ** 0.5)
        cached = self.pages.get(str(number))
        if cached is None:
            words = _read_image(render(scale), self.langs)
            self.pages[str(number)] = [[w.text, w.left, w.top, w.right, w.bottom, w.line] for w in words]
            self.changed = True
            return words, scale
        return [OcrWord(str(t), float(x0), float(y0), float(x1), float(y1), int(n))
                for t, x0, y0, x1, y1, n in cached], scale

    def save(self) -> None:
        """Keep what was read, written whole or not at all. A cache that cannot be written costs time only."""
        if not self.changed:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.file.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump({"pages": self.pages}, out, ensure_ascii=False)
                os.replace(temporary, self.file)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError:
            pass
