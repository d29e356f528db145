"""The text of a PDF, page by page, read the way a person reads the page.

pypdfium2 (PDFium) gives every character of a page's text layer with its box. From
the boxes this module rebuilds the lines (horizontal, or vertical for 縦書き), drops
running headers and footers that repeat in the page margins, reads two-column pages
column by column and vertical pages right to left, and joins the lines of a paragraph:
no space between Japanese characters, one between English words, and an English word
hyphenated at a line end made whole again. A page without a text layer but with images
(a scan) is read by OCR (`indexer.text.ocr`), whose words take the characters' place.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from indexer.errors import InputError
from indexer.text import ocr

MAX_PAGES = 2000
MAX_CHARS = 10_000_000
MARGIN = 0.12          # top and bottom share of the page where running headers and footers sit
REPEATED_SHARE = 0.6   # a margin line on at least this share of the pages is a running header/footer
_FILE_NAME = re.compile(r"\.(?:html?|docx?|odt|rtf|txt|md|pdf)$", re.IGNORECASE)
_HYPHENS = "-\u00ad\u2010"
_SENTENCE_END = "。．.!?！？」』)）"
_CJK_CLASS = r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
_CJK = re.compile(_CJK_CLASS)
_CJK_SPACE = re.compile(rf"(?<={_CJK_CLASS})\s+(?={_CJK_CLASS})")  # PDFium's guessed spaces around 、・「」


class PdfError(InputError):
    """A PDF that cannot be read: damaged, encrypted, without text, or too large."""


@dataclass(frozen=True)
class Glyph:
    char: str
    left: float
    bottom: float
    right: float
    top: float
    font_size: float = 0.0  # as the text layer sets it; 0 where unknown (OCR)


@dataclass
class Line:
    glyphs: list[Glyph]
    vertical: bool = False
    hyphenated: bool = False  # PDFium joined this row's last word with the next row's first (it took the hyphen)
    text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.text = _CJK_SPACE.sub("", "".join(g.char for g in self.glyphs)).strip()

    @property
    def left(self) -> float:
        return min(g.left for g in self.glyphs)

    @property
    def right(self) -> float:
        return max(g.right for g in self.glyphs)

    @property
    def top(self) -> float:
        return max(g.top for g in self.glyphs)

    @property
    def bottom(self) -> float:
        return min(g.bottom for g in self.glyphs)

    @property
    def size(self) -> float:
        """The line's character size: glyph height across a horizontal line, width down a vertical one."""
        sizes = [(g.right - g.left) if self.vertical else (g.top - g.bottom) for g in self.glyphs if g.char.strip()]
        return statistics.median(sizes) if sizes else 1.0


@dataclass(frozen=True)
class PdfPage:
    number: int            # 1-based
    text: str              # paragraphs separated by blank lines
    vertical: bool         # read as vertical (縦書き) text


# ---------------------------------------------------------------- lines


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _follows(a: Glyph, b: Glyph) -> bool:
    """Whether b continues a's horizontal line: on the same baseline, just right of it."""
    height = max(a.top - a.bottom, b.top - b.bottom, 1.0)
    same_row = _overlap(a.bottom, a.top, b.bottom, b.top) >= 0.3 * min(a.top - a.bottom, b.top - b.bottom)
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
    return (all(_CJK.match(g.char) for g in (column[-1], below))
            and _overlap(min(g.left for g in column), max(g.right for g in column), below.left, below.right)
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
        stacked = len(marks) > 1 and all(_stacks_on(marks[:n], marks[n]) for n in range(1, len(marks)))
        vertical = stacked or _is_vertical(marks)
        if marks and (len(marks) == 1 or vertical):
            for number in range(len(joined) - 1, max(len(joined) - 9, -1), -1):
                column, stacked = joined[number]
                above = [g for g in column if g.char.strip()]
                if above and (len(above) == 1 or stacked) and _stacks_on(above, marks[0]):
                    joined[number] = (column + run, True)
                    break
            else:
                joined.append((run, vertical))
        else:
            joined.append((run, vertical))
    return joined


def _is_vertical(glyphs: Sequence[Glyph]) -> bool:
    marks = [g for g in glyphs if g.char.strip()]
    if len(marks) < 2:
        return False
    width = max(g.right for g in marks) - min(g.left for g in marks)
    height = max(g.top for g in marks) - min(g.bottom for g in marks)
    return height > 2 * width


_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ffー]")
_KANA_WORD = re.compile(r"[\u3041-\u309f\u30a0-\u30ffー]+")
_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々]")
RUBY_SIZE = 0.7  # furigana is set at about half its base text's size; text at 70% or less of it can be ruby


@dataclass(frozen=True)
class _Box:
    """A run of glyphs: its extent, the median edges of its glyphs (OCR can give one glyph a box as tall as
    two lines), its character size (height across a horizontal run, width down a vertical one), and whether
    all but a fifth of its characters are kana, as furigana is."""

    left: float
    bottom: float
    right: float
    top: float
    usual: Glyph  # the median left, bottom, right and top
    size: float
    kana: bool

    @classmethod
    def of(cls, run: Sequence[Glyph]) -> _Box:
        marks = [g for g in run if g.char.strip()]
        vertical = _is_vertical(marks)
        sizes = [(g.right - g.left) if vertical else (g.top - g.bottom) for g in marks]
        kana = sum(1 for g in marks if _KANA.match(g.char)) >= 0.8 * len(marks)
        usual = Glyph("", *(statistics.median(getattr(g, edge) for g in marks)
                            for edge in ("left", "bottom", "right", "top")))
        return cls(min(g.left for g in marks), min(g.bottom for g in marks), max(g.right for g in marks),
                   max(g.top for g in marks), usual, statistics.median(sizes), kana)

    def glosses(self, base: _Box) -> bool:
        """Whether this run is furigana on `base`: kana at most RUBY_SIZE of its size, just above a horizontal
        base (or just right of a vertical one) and alongside it."""
        if not self.kana or self.size > RUBY_SIZE * base.size:
            return False
        near = (-0.5 * base.size, 0.6 * base.size)  # OCR boxes of the base line can reach up into the ruby
        above = near[0] <= self.usual.bottom - base.usual.top <= near[1] and \
            _overlap(self.left, self.right, base.left, base.right) >= 0.5 * (self.right - self.left)
        beside = near[0] <= self.usual.left - base.usual.right <= near[1] and \
            _overlap(self.bottom, self.top, base.bottom, base.top) >= 0.5 * (self.top - self.bottom)
        return above or beside


def _ruby(runs: Sequence[Sequence[Glyph]]) -> set[int]:
    """Which runs are furigana (ruby): small kana set above the words they read, or right of them in vertical
    text. Producers write it as runs of its own; kept, it would interleave readings with the text they gloss
    (江戸えど幕府ばくふ) or make lines of kana between the real ones."""
    boxes = [_Box.of(run) if any(g.char.strip() for g in run) else None for run in runs]
    candidates = [i for i, box in enumerate(boxes) if box is not None and box.kana]
    return {i for i in candidates
            if any(base is not None and j != i and boxes[i].glosses(base) for j, base in enumerate(boxes))}  # type: ignore[union-attr]


def _split_rows(glyphs: list[Glyph]) -> list[list[Glyph]]:
    """A horizontal run cut into rows (PDFium joins the rows of a hyphenated word) and at wide gaps
    (a column gutter between two runs of one row)."""
    parts: list[list[Glyph]] = [[]]
    last: Glyph | None = None
    for glyph in glyphs:
        if glyph.char.strip():
            size = max(glyph.top - glyph.bottom, last.top - last.bottom if last else 0, 1.0)
            if last is not None and (glyph.left - last.right > 4 * size or
                                     (glyph.top < last.bottom and glyph.left < last.left)):
                parts.append([])
            last = glyph
        parts[-1].append(glyph)
    return [part for part in parts if any(g.char.strip() for g in part)]


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
    for run, vertical in _columns(list(runs)):
        if vertical:
            pieces += [Line(part, vertical=True) for part in _split_columns(run)]
            continue
        rows = _split_rows(run)
        for number, part in enumerate(rows, 1):
            hyphenated = number < len(rows) and rows[number][0].left < part[-1].left  # a row, not a gap
            pieces.append(Line(part, hyphenated=hyphenated))
    ruby = _ruby([piece.glyphs for piece in pieces])
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


# ---------------------------------------------------------------- page layout


def _gutter(lines: Sequence[Line]) -> float | None:
    """The x of a gap between two columns that no line crosses, if the page has two columns."""
    if len(lines) < 4:
        return None
    x0, x1 = min(line.left for line in lines), max(line.right for line in lines)
    best: tuple[int, float] | None = None
    for tenth in range(30, 71, 2):
        x = x0 + (x1 - x0) * tenth / 100
        left = sum(1 for line in lines if line.right <= x)
        right = sum(1 for line in lines if line.left >= x)
        crossing = len(lines) - left - right
        if left >= 2 and right >= 2 and crossing <= 0.25 * len(lines) and (best is None or crossing < best[0]):
            best = (crossing, x)
    return best[1] if best else None


def _horizontal_order(lines: list[Line]) -> list[list[Line]]:
    """Horizontal lines as reading flows: a two-column band's left column, then its right one."""
    gutter = _gutter(lines)
    if gutter is None:
        return [lines]
    lines = sorted(lines, key=lambda line: (-line.top, line.left))
    flows: list[list[Line]] = []
    left: list[Line] = []
    right: list[Line] = []
    for line in lines:
        if line.right <= gutter:
            left.append(line)
        elif line.left >= gutter:
            right.append(line)
        else:  # a full-width line (a title) closes the band above it
            flows += [flow for flow in (left, right) if flow]
            left, right = [], []
            flows.append([line])
    flows += [flow for flow in (left, right) if flow]
    return flows


def _vertical_order(lines: list[Line]) -> list[list[Line]]:
    """Vertical lines right to left."""
    return [sorted(lines, key=lambda line: (-line.right, -line.top))] if lines else []


def _pitch(previous: Line, line: Line) -> float:
    """How far one line's start is from the previous one's, across the direction of reading."""
    return previous.right - line.right if line.vertical else previous.top - line.top


def _starts_paragraph(previous: Line, line: Line, flow: Sequence[Line], pitch: float) -> bool:
    """A wider than usual gap, a step back (a new column), a short line ending a sentence or set in another
    size (a heading above its text), or an indented line after a sentence's end (字下げ, where Japanese
    paragraphs have no gap between them)."""
    step = _pitch(previous, line)
    if line.vertical:
        short = previous.bottom - min(other.bottom for other in flow) > 1.5 * previous.size
        indented = max(other.top for other in flow) - line.top > 0.6 * line.size
    else:
        short = max(other.right for other in flow) - previous.right > 1.5 * previous.size
        indented = line.left - min(other.left for other in flow) > 0.6 * line.size
    resized = max(previous.size, line.size) > 1.25 * min(previous.size, line.size)
    ended = previous.text[-1] in _SENTENCE_END
    return step > 1.3 * pitch or step < 0.5 * pitch or (short and (ended or resized)) or (indented and ended)


def join_lines(first: str, second: str) -> str:
    """Two lines of one paragraph as one: Japanese without a space, English words with one."""
    if not first or not second:
        return first + second
    if first[-1] in _HYPHENS and len(first) > 1 and first[-2].isalpha() and second[0].islower():
        return first[:-1] + second
    if first[-1] == "\u00ad":
        return first[:-1] + second
    if first[-1] in _HYPHENS and second[0].isalnum():  # Tokyo-/Osaka: a hyphen that belongs to the text
        return first + second
    if _CJK.match(first[-1]) or _CJK.match(second[0]):
        return first + second
    return f"{first} {second}"


def _runs_on(flow: Sequence[Line]) -> bool:
    """Whether a flow's last line is full and unfinished, so its paragraph goes on in the next flow (column)."""
    last = flow[-1]
    if last.vertical:
        full = last.bottom - min(line.bottom for line in flow) <= 1.5 * last.size
    else:
        full = max(line.right for line in flow) - last.right <= 1.5 * last.size
    return full and last.text[-1] not in _SENTENCE_END


def _line_pitch(steps: Sequence[float], size: float) -> float:
    """The usual step from a line to the next inside a paragraph: the median of the smallest steps (within 1.3×
    the smallest of those at least 0.7 of a character), so that the wider steps between paragraphs and after a
    heading do not set it on a page of few lines. Lines sit at least about a character apart; a smaller step
    is two pieces of one row, not a line's pitch."""
    positive = [step for step in steps if step >= 0.7 * size]
    if not positive:
        return max(size, 1.0)
    smallest = min(positive)
    return statistics.median([step for step in positive if step <= 1.3 * smallest])


def _paragraphs(flows: Iterable[list[Line]]) -> list[str]:
    paragraphs: list[str] = []
    text = ""
    for flow in flows:
        size = statistics.median(line.size for line in flow)
        pitch = _line_pitch([_pitch(a, b) for a, b in itertools.pairwise(flow)], size)
        for previous, line in zip([None, *flow], flow, strict=False):
            if previous is not None and _starts_paragraph(previous, line, flow, pitch):
                paragraphs.append(text)
                text = ""
            hyphenated = previous is not None and previous.hyphenated
            text = text + line.text if hyphenated else join_lines(text, line.text)
        if not _runs_on(flow):
            paragraphs.append(text)
            text = ""
    paragraphs.append(text)
    return [" ".join(p.split()) if not _CJK.search(p) else p.strip() for p in paragraphs if p.strip()]


# ---------------------------------------------------------------- headers and footers


def _margin_key(line: Line, height: float) -> str | None:
    """What a line in the top or bottom margin reads as (digits masked), or None outside them."""
    if line.bottom >= height * (1 - MARGIN) or line.top <= height * MARGIN:
        return re.sub(r"\d+", "#", "".join(line.text.split()))
    return None


def _running_lines(pages: Sequence[tuple[list[Line], float]]) -> set[str]:
    """Margin lines repeated on most pages: running headers, footers and page numbers."""
    counts: Counter[str] = Counter()
    for lines, height in pages:
        counts.update({key for line in lines if (key := _margin_key(line, height)) is not None})
    with_text = sum(1 for lines, _ in pages if lines)
    needed = max(2, REPEATED_SHARE * with_text)
    return {key for key, count in counts.items() if count >= needed}


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


def lay_out_pages(laid_out: Sequence[tuple[list[Line], float]]) -> list[PdfPage]:
    """Pages of lines (and their heights in points) as text: running lines dropped, columns and paragraphs
    in reading order. Scanned images are laid out through it too (`indexer.text.image_text`)."""
    running = _running_lines(laid_out)
    pages = []
    for number, (lines, height) in enumerate(laid_out, 1):
        kept = [line for line in lines if _margin_key(line, height) not in running]
        vertical = [line for line in kept if line.vertical]
        horizontal = [line for line in kept if not line.vertical]
        is_vertical = sum(len(line.text) for line in vertical) > sum(len(line.text) for line in horizontal)
        if is_vertical:  # horizontal lines above the vertical block (a title) come first
            block_top = max(line.top for line in vertical)
            above = [line for line in horizontal if line.bottom >= block_top]
            below = [line for line in horizontal if line.bottom < block_top]
            flows = _horizontal_order(above) + _vertical_order(vertical) + _horizontal_order(below)
        else:
            flows = _horizontal_order(horizontal) + _vertical_order(vertical)
        pages.append(PdfPage(number, "\n\n".join(_paragraphs(flow for flow in flows if flow)), is_vertical))
    return pages


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
        height = self.heights[number]
        by_line: dict[int, list[ocr.OcrWord]] = {}
        for word in words:
            by_line.setdefault(word.line, []).append(word)
        by_line = {n: piece for n, piece in by_line.items() if not _is_scattered(piece)}
        upright = {n for n, piece in enumerate(by_line.values()) if _is_upright(piece)}  # 縦書き (jpn_vert)
        pieces = [piece if n in upright else _without_ruby_words(piece) for n, piece in enumerate(by_line.values())]
        runs = [(_column_glyphs if n in upright else _word_glyphs)(piece, scale, height)
                for n, piece in enumerate(pieces)]
        ruby = _ruby(runs)  # lines of their own
        words = [word for n, piece in enumerate(pieces) if n not in ruby | upright for word in piece]
        lines = [Line(_word_glyphs(segment, scale, height)) for segment in _row_segments(words)]
        lines += [Line(run, vertical=True) for n, run in enumerate(runs) if n in upright - ruby]
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


def _without_ruby_words(line: list[ocr.OcrWord]) -> list[ocr.OcrWord]:
    """A Tesseract line less the furigana it took into it: kana words at most RUBY_SIZE of the height of its
    words with kanji, sitting above them."""
    base = [w for w in line if _KANJI.search(w.text)]
    if not base:
        return line
    size = statistics.median(w.bottom - w.top for w in base)
    top = statistics.median(w.top for w in base)
    return [w for w in line if not (_KANA_WORD.fullmatch(w.text) and w.bottom - w.top <= RUBY_SIZE * size
                                    and w.bottom <= top + 0.3 * size)]


def _ocr_rows(words: list[ocr.OcrWord]) -> list[list[ocr.OcrWord]]:
    """OCR words by text row, top to bottom: Tesseract's lines (which keep a low 、 or 。 with its line),
    joined when they overlap by half a height (Tesseract breaks justified text and columns into pieces)."""
    pieces: dict[int, list[ocr.OcrWord]] = {}
    for word in words:
        pieces.setdefault(word.line, []).append(word)
    boxes = sorted(((min(w.top for w in piece), max(w.bottom for w in piece), piece) for piece in pieces.values()),
                   key=lambda box: (box[0] + box[1]) / 2)
    rows: list[tuple[float, float, list[ocr.OcrWord]]] = []
    for top, bottom, piece in boxes:
        if rows and _overlap(rows[-1][0], rows[-1][1], top, bottom) >= 0.5 * min(rows[-1][1] - rows[-1][0],
                                                                                 bottom - top):
            rows[-1][2].extend(piece)
        else:
            rows.append((top, bottom, list(piece)))
    return [sorted(row, key=lambda w: w.left) for _, _, row in rows]


def _ocr_gutter(rows: list[list[ocr.OcrWord]]) -> float | None:
    """The x of a gap between two columns: rows with words on both sides of it have a gap there at least a
    row's height wide, in all but a quarter of them (a full-width title may cross it). Gaps between words
    and characters of one column are narrower, or not aligned from row to row."""
    if len(rows) < 4:
        return None
    x0, x1 = min(row[0].left for row in rows), max(max(w.right for w in row) for row in rows)
    best: tuple[float, float] | None = None
    for tenth in range(30, 71, 2):
        x = x0 + (x1 - x0) * tenth / 100
        spanning = gaps = 0
        for row in rows:
            if row[0].left < x < row[-1].right:
                spanning += 1
                height = max(w.bottom for w in row) - min(w.top for w in row)
                gaps += any(a.right <= x <= b.left and b.left - a.right >= height for a, b in itertools.pairwise(row))
        if gaps >= 2 and spanning - gaps <= 0.25 * spanning and (best is None or gaps / spanning > best[0]):
            best = (gaps / spanning, x)
    return best[1] if best else None


def _row_segments(words: list[ocr.OcrWord]) -> list[list[ocr.OcrWord]]:
    """OCR words as the pieces of text rows that PDFium would give as lines: each row cut at the column gutter
    (unless a word crosses it) and where a gap is as wide as `_split_rows` cuts (a table's cells)."""
    rows = _ocr_rows(words)
    gutter = _ocr_gutter(rows)
    segments: list[list[ocr.OcrWord]] = []
    for row in rows:
        cut = gutter is not None and not any(w.left < gutter < w.right for w in row)
        segments.append([row[0]])
        for a, b in itertools.pairwise(row):
            size = max(a.bottom - a.top, b.bottom - b.top)
            if (cut and a.right <= gutter <= b.left) or b.left - a.right > 4 * size:  # type: ignore[operator]
                segments.append([b])
            else:
                segments[-1].append(b)
    return segments


def _is_upright(line: list[ocr.OcrWord]) -> bool:
    """Whether a Tesseract line runs down the page (vertical text, read with jpn_vert): at least twice as
    tall as wide with two characters or more, or words each under the last (the last two characters of a
    column, た。, are no taller than wide)."""
    width = max(w.right for w in line) - min(w.left for w in line)
    height = max(w.bottom for w in line) - min(w.top for w in line)
    if sum(len(w.text) for w in line) > 1 and height > 2 * width:
        return True
    return len(line) > 1 and all(
        b.top >= (a.top + a.bottom) / 2
        and _overlap(a.left, a.right, b.left, b.right) >= 0.5 * min(a.right - a.left, b.right - b.left)
        for a, b in itertools.pairwise(line))


def _is_scattered(line: list[ocr.OcrWord]) -> bool:
    """Whether a Tesseract line is noise: a vertical line whose words cover less than a third of its length
    (specks read as ‘ O Z < down the gap between two columns)."""
    if not _is_upright(line):
        return False
    covered = sum(w.bottom - w.top for w in line)
    return covered < (max(w.bottom for w in line) - min(w.top for w in line)) / 3


def _column_glyphs(words: list[ocr.OcrWord], scale: float, height: float) -> list[Glyph]:
    """The words of a vertical OCR line as glyphs in PDF points, each word's height shared evenly by its
    characters from the top."""
    glyphs: list[Glyph] = []
    for word in words:
        step = (word.bottom - word.top) / len(word.text) / scale
        top = height - word.top / scale
        glyphs += [Glyph(char, word.left / scale, top - (k + 1) * step, word.right / scale, top - k * step)
                   for k, char in enumerate(word.text)]
    return glyphs


def _word_glyphs(words: list[ocr.OcrWord], scale: float, height: float) -> list[Glyph]:
    """OCR words (pixel boxes from the top left) as glyphs in PDF points from the bottom left, a space between
    words and each word's width shared evenly by its characters."""
    glyphs: list[Glyph] = []
    for word in words:
        bottom, top = height - word.bottom / scale, height - word.top / scale
        if glyphs:
            glyphs.append(Glyph(" ", glyphs[-1].right, bottom, word.left / scale, top))
        step = (word.right - word.left) / len(word.text) / scale
        left = word.left / scale
        glyphs += [Glyph(char, left + k * step, bottom, left + (k + 1) * step, top) for k, char in enumerate(word.text)]
    return glyphs
