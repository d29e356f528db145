"""The text of a PDF, page by page, read the way a person reads the page.

pypdfium2 (PDFium) gives every character of a page's text layer with its box and font size.
From them this module rebuilds the lines: horizontal ones cut at column gutters and glued where
PDFium split a row, vertical ones (縦書き) made whole where PDFium gave them in pieces, and
furigana left out. `page_layout` then reads the pages as text. A page without a text layer but
with images (a scan) is read by OCR (`indexer.text.ocr`), whose words take the characters'
place (`scan_layout`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from indexer.errors import InputError
from indexer.text import ocr
from indexer.text.glyphs import CJK, Glyph, Line, is_vertical, overlap, ruby_runs
from indexer.text.page_layout import PdfPage, lay_out_pages
from indexer.text.scan_layout import ocr_lines

MAX_PAGES = 2000
MAX_CHARS = 10_000_000
_FILE_NAME = re.compile(r"\.(?:html?|docx?|odt|rtf|txt|md|pdf)$", re.IGNORECASE)


class PdfError(InputError):
    """A PDF that cannot be read: damaged, encrypted, without text, or too large."""


# ---------------------------------------------------------------- lines


def _follows(a: Glyph, b: Glyph) -> bool:
    """Whether b continues a's horizontal line: on the same baseline, just right of it."""
    height = max(a.top - a.bottom, b.top - b.bottom, 1.0)
    same_row = overlap(a.bottom, a.top, b.bottom, b.top) >= 0.3 * min(a.top - a.bottom, b.top - b.bottom)
    return same_row and a.left - 0.5 * height <= b.left <= a.right + 2 * height


def _pdfium_lines(textpage: pdfium.PdfTextPage) -> list[list[Glyph]]:
    """The page's characters with their boxes, in PDFium's lines (its generated line breaks)."""
    lines: list[list[Glyph]] = [[]]
    for index in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(textpage.raw, index)  # per index: the text range can differ in length
        char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""
        if char in ("\r", "\n"):
            if lines[-1]:
                lines.append([])
        elif char and char != "\ufffe":
            left, bottom, right, top = textpage.get_charbox(index)
            size = pdfium_c.FPDFText_GetFontSize(textpage.raw, index)
            lines[-1].append(Glyph(char, left, bottom, right, top, font_size=size))
    return [line for line in lines if any(g.char.strip() for g in line)]


def _stacks_on(column: Sequence[Glyph], below: Glyph) -> bool:
    """Whether `below` goes on down a vertical line of CJK characters: a CJK character itself in the same
    font size, within the line's width (tight boxes: a thin 、 or り is narrower than the line), less than a
    character down."""
    width = max(g.right - g.left for g in column)
    sizes = (column[-1].font_size, below.font_size)
    if min(sizes) > 0 and max(sizes) > 1.4 * min(sizes):  # furigana beside the line, not in it
        return False
    return (all(CJK.match(g.char) for g in (column[-1], below))
            and overlap(min(g.left for g in column), max(g.right for g in column), below.left, below.right)
            >= 0.5 * (below.right - below.left)
            and -0.3 * width <= column[-1].bottom - below.top <= max(width, 1.0))


def _columns(runs: list[list[Glyph]]) -> list[tuple[list[Glyph], bool]]:
    """PDFium's lines, each with whether it is vertical, vertical ones made whole. Around furigana and indented
    first lines PDFium can give a vertical line in pieces, down to a character each and out of order (た 幕 。
    for …た。 and 幕府…): a piece that goes on down one of the last few vertical lines is joined to it. A
    piece of two or three characters, one under the other, is vertical though not twice as tall as wide."""
    joined: list[tuple[list[Glyph], bool]] = []
    for run in runs:
        marks = [g for g in run if g.char.strip()]
        vertical = is_vertical(marks) or (
            1 < len(marks) <= 3 and all(_stacks_on(marks[:n], marks[n]) for n in range(1, len(marks))))
        if marks and (len(marks) == 1 or vertical):
            for number in range(len(joined) - 1, max(len(joined) - 9, -1), -1):
                column, column_vertical = joined[number]
                above = [g for g in column if g.char.strip()]
                if above and (len(above) == 1 or column_vertical) and _stacks_on(above, marks[0]):
                    joined[number] = (column + run, True)
                    break
            else:
                joined.append((run, vertical))
        else:
            joined.append((run, vertical))
    return joined


def _split_rows(glyphs: list[Glyph], gutter: Callable[[float], bool] = lambda x: True) -> list[list[Glyph]]:
    """A horizontal run cut into rows (PDFium joins the rows of a hyphenated word) and at wide gaps where
    `gutter` says the page has a gap between columns (PDFium can run two columns' rows together)."""
    parts: list[list[Glyph]] = [[]]
    last: Glyph | None = None
    for glyph in glyphs:
        if glyph.char.strip():
            if last is not None and ((_wide_gap(last, glyph) and gutter((last.right + glyph.left) / 2)) or
                                     (glyph.top < last.bottom and glyph.left < last.left)):
                parts.append([])
            last = glyph
        parts[-1].append(glyph)
    return [part for part in parts if any(g.char.strip() for g in part)]


def _wide_gap(last: Glyph, glyph: Glyph) -> bool:
    return glyph.left - last.right > 4 * max(glyph.top - glyph.bottom, last.top - last.bottom, 1.0)


def _gutters(rows: Sequence[list[Glyph]]) -> Callable[[float], bool]:
    """Whether an x is in a gap between columns: at most a quarter of the rows that reach across it have a
    character on it (a title over both columns). A justified line's wide gaps between words are not: the
    rows above and below it have words there."""
    boxes = [[g for g in row if g.char.strip()] for row in rows]
    boxes = [marks for marks in boxes if marks]

    @functools.cache
    def gutter(x: float) -> bool:
        across = [marks for marks in boxes if marks[0].left < x < marks[-1].right]
        on = sum(1 for marks in across if any(g.left <= x <= g.right for g in marks))
        return on <= 0.25 * len(across)

    return gutter


def _split_columns(run: list[Glyph]) -> list[list[Glyph]]:
    """A vertical run cut where it leaves its column: PDFium can give a column and then its furigana (set in
    half the size, back at the top, right of it) as one line."""
    parts: list[list[Glyph]] = [[]]
    for glyph in run:
        column = [g for g in parts[-1] if g.char.strip()]
        if glyph.char.strip() and column:
            last = column[-1]
            sizes = (last.font_size, glyph.font_size)
            resized = min(sizes) > 0 and max(sizes) > 1.4 * min(sizes)
            back_up = glyph.top > last.top + max(g.right - g.left for g in column)  # a new column
            if resized or back_up:
                parts.append([])
        parts[-1].append(glyph)
    return [part for part in parts if any(g.char.strip() for g in part)]


def _lines(runs: Sequence[list[Glyph]]) -> list[Line]:
    """PDFium's lines, vertical ones marked, horizontal ones cut at gutters and glued where it split a row;
    furigana dropped."""
    pieces: list[Line] = []
    columns = _columns(list(runs))
    gutter = _gutters([row for run, vertical in columns if not vertical
                       for row in _split_rows(run, gutter=lambda x: False)])
    for run, vertical in columns:
        if vertical:
            pieces += [Line(part, vertical=True) for part in _split_columns(run)]
            continue
        rows = _split_rows(run, gutter)
        for number, part in enumerate(rows, 1):
            hyphenated = number < len(rows) and rows[number][0].left < part[-1].left  # a row, not a gap
            pieces.append(Line(part, hyphenated=hyphenated))
    ruby = ruby_runs([piece.glyphs for piece in pieces])
    lines: list[Line] = []
    for piece in (piece for number, piece in enumerate(pieces) if number not in ruby):
        previous = lines[-1] if lines and not lines[-1].vertical and not piece.vertical else None
        previous_marks = [g for g in previous.glyphs if g.char.strip()] if previous else []
        marks = [g for g in piece.glyphs if g.char.strip()]
        if previous is not None and previous_marks and marks and _follows(previous_marks[-1], marks[0]):
            last = previous_marks[-1]
            space = [Glyph(" ", last.right, last.bottom, last.right, last.top)] * _spaced(last, marks[0])
            lines[-1] = Line(previous.glyphs + space + piece.glyphs, hyphenated=piece.hyphenated)
        else:
            lines.append(piece)
    return [line for line in lines if line.text]


def _spaced(a: Glyph, b: Glyph) -> int:
    """1 when a visible gap separates two glyphs of one row, else 0."""
    return int(b.left - a.right > 0.25 * max(a.top - a.bottom, 1.0))


# ---------------------------------------------------------------- documents


def open_pdf(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise PdfError("encrypted PDF (password-protected files are not supported)") from exc
        detail = message.removeprefix("Failed to load document").strip(" .()").removeprefix("PDFium: ")
        raise PdfError(f"damaged or not a PDF ({detail})") from exc


@dataclass(frozen=True)
class PdfText:
    title: str             # the document information's Title, or ""
    pages: list[PdfPage]
    ocr_pages: list[int] = field(default_factory=list)  # pages read by OCR (1-based)


def pdf_pages(path: Path, *, max_pages: int = MAX_PAGES, max_chars: int = MAX_CHARS) -> list[PdfPage]:
    """Every page's text in reading order; PdfError when the file cannot give any text."""
    return read_pdf(path, max_pages=max_pages, max_chars=max_chars).pages


def read_pdf(path: Path, *, max_pages: int = MAX_PAGES, max_chars: int = MAX_CHARS) -> PdfText:
    """The title and every page's text in reading order; PdfError when the file cannot give any text."""
    document = open_pdf(path)
    try:
        title = " ".join(str(document.get_metadata_dict().get("Title") or "").split())
        title = "" if _FILE_NAME.search(title) else title  # "page.html", "Microsoft Word - a.docx": no title
        if len(document) > max_pages:
            raise PdfError(f"{len(document):,} pages, more than the {max_pages:,}-page limit")
        laid_out: list[tuple[list[Line], float]] = []
        with ScannedPages(path) as scans:
            for number, page in enumerate(document, 1):
                try:
                    lines = _lines(_pdfium_lines(page.get_textpage()))
                    if not lines and _has_images(page):
                        scans.submit_pdf_page(number, page)  # read in parallel; its lines come below
                    laid_out.append((lines, page.get_height()))
                finally:
                    page.close()
            for number in scans.submitted:
                laid_out[number - 1] = (scans.lines(number), laid_out[number - 1][1])
        chars = 0
        for lines, _ in laid_out:
            chars += sum(len(line.glyphs) for line in lines)
            if chars > max_chars:
                raise PdfError(f"more than {max_chars:,} characters of text, the limit")
        if chars == 0:
            raise PdfError(scans.why_no_text())
        return PdfText(title, lay_out_pages(laid_out), scans.read_pages)
    finally:
        document.close()


# ---------------------------------------------------------------- scanned pages


def _has_images(page: pdfium.PdfPage) -> bool:
    return next(iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))), None) is not None


class ScannedPages:
    """The OCR of one file's scanned pages, as lines like PDFium's (see `indexer.text.ocr`): a PDF's pages
    that have images and no text layer, or the frames of an image file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader: ocr.PageReader | None = None
        self.unavailable: str | None = None
        self.heights: dict[int, float] = {}
        self.submitted: list[int] = []   # scanned pages sent to OCR
        self.read_pages: list[int] = []  # those it found text on
        self.seen = 0                    # scanned pages met

    def __enter__(self) -> ScannedPages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.__exit__(None, None, None)

    def submit_pdf_page(self, number: int, page: pdfium.PdfPage) -> None:
        self.submit(number, lambda scale: page.render(scale=scale, grayscale=True).to_pil(),
                    width=page.get_width(), height=page.get_height())

    def submit(self, number: int, render: Callable[[float], Any], *, width: float, height: float,
               scale: float = ocr.DPI / 72) -> None:
        """Start reading page `number`, `width` × `height` points, which `render(scale)` gives as a PIL image
        `scale` pixels a point (a PDF page: 300 dpi; an image file: its own pixels, 1)."""
        self.seen += 1
        langs = ocr.languages()
        if langs is None:
            self.unavailable = f"OCR is off ({ocr.OCR_ENV}=off)"
        elif self.reader is None and self.unavailable is None:
            try:
                self.reader = ocr.PageReader(self.path, langs)
            except ocr.OcrUnavailable as exc:
                self.unavailable = str(exc)
        if self.reader is None:
            return
        self.reader.submit(number, render, points=width * height, scale=scale)
        self.heights[number] = height
        self.submitted.append(number)

    def lines(self, number: int) -> list[Line]:
        """A submitted page's words as lines of glyphs in PDF points, like PDFium's."""
        assert self.reader is not None
        try:
            words, scale = self.reader.words(number)
        except ocr.OcrFailed as exc:
            raise PdfError(f"OCR failed on page {number}: {exc}") from exc
        lines = ocr_lines(words, scale, self.heights[number])
        if lines:
            self.read_pages.append(number)
        return lines

    def why_no_text(self, what: str = "no text layer, and") -> str:
        if not self.seen:
            return "no text layer"
        pages = f"{self.seen} scanned page{'s' if self.seen > 1 else ''}"
        if self.unavailable:
            return f"{what} its {pages} cannot be read: {self.unavailable}"
        return f"{what} OCR found no text on its {pages}"
