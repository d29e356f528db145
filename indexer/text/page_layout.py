"""Pages of lines laid out as text, the way a person reads them: running headers and footers
that repeat in the page margins dropped, two-column pages read column by column, vertical pages
right to left, and the lines of a paragraph joined (no space between Japanese characters, one
between English words, a word hyphenated at a line end made whole). Lines come from a PDF's text
layer (`pdf_text`) or from OCR (`scan_layout`).
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from indexer.text.glyphs import CJK, Line

MARGIN = 0.12          # top and bottom share of the page where running headers and footers sit
REPEATED_SHARE = 0.6   # a margin line on at least this share of the pages is a running header/footer
_HYPHENS = "-\u00ad\u2010"
_SENTENCE_END = "。．.!?！？」』)）"


@dataclass(frozen=True)
class PdfPage:
    number: int            # 1-based
    text: str              # paragraphs separated by blank lines
    vertical: bool         # read as vertical (縦書き) text


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


def _gutters(lines: Sequence[Line]) -> list[float]:
    """The x of each gap between columns, left to right: the page's gutter, then those inside each side of it
    (three columns are a column and two more)."""
    gutter = _gutter(lines)
    if gutter is None:
        return []
    left = [line for line in lines if line.right <= gutter]
    right = [line for line in lines if line.left >= gutter]
    return [*_gutters(left), gutter, *_gutters(right)]


def _horizontal_order(lines: list[Line]) -> list[list[Line]]:
    """Horizontal lines as reading flows: a band of columns read column by column, left to right."""
    gutters = _gutters(lines)
    if not gutters:
        return [lines]
    edges = [-math.inf, *gutters, math.inf]
    lines = sorted(lines, key=lambda line: (-line.top, line.left))
    flows: list[list[Line]] = []
    columns: list[list[Line]] = [[] for _ in range(len(gutters) + 1)]
    for line in lines:
        column = next((n for n in range(len(columns)) if edges[n] <= line.left and line.right <= edges[n + 1]), None)
        if column is not None:
            columns[column].append(line)
        else:  # a line across a gutter (a title) closes the band above it
            flows += [flow for flow in columns if flow]
            columns = [[] for _ in columns]
            flows.append([line])
    flows += [flow for flow in columns if flow]
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
    if CJK.match(first[-1]) or CJK.match(second[0]):
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
    return [" ".join(p.split()) if not CJK.search(p) else p.strip() for p in paragraphs if p.strip()]


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
