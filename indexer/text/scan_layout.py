"""The words OCR reads on a scanned page (`indexer.text.ocr`) as lines of glyphs, like those of a
PDF's text layer, so that `page_layout` lays out both alike.

Tesseract's lines do not work as PDFium's do: it breaks a justified line into pieces, so its
horizontal lines are joined into rows and cut again at a column gutter found from the rows'
gaps; with its vertical model (jpn_vert) it gives vertical lines as words one under another;
furigana comes as lines of its own or as small words inside the line below.
"""

from __future__ import annotations

import itertools
import statistics

from indexer.text import ocr
from indexer.text.glyphs import CJK, KANA_WORD, KANJI, RUBY_SIZE, Glyph, Line, overlap, ruby_runs


def ocr_lines(words: list[ocr.OcrWord], scale: float, height: float) -> list[Line]:
    """A page's OCR words (pixels, `scale` a PDF point, on a page `height` points tall) as lines of glyphs in
    PDF points, like PDFium's: Tesseract's vertical lines as vertical lines, its horizontal ones as rows cut
    at column gutters; furigana and lines of specks left out."""
    by_line: dict[int, list[ocr.OcrWord]] = {}
    for word in words:
        by_line.setdefault(word.line, []).append(word)
    marked = [(piece, _is_upright(piece)) for piece in by_line.values()]  # 縦書き (jpn_vert)
    kept = [(piece, up) for piece, up in marked if not (up and _is_scattered(piece))]
    upright = {n for n, (_, up) in enumerate(kept) if up}
    pieces = [piece if up else _without_ruby_words(piece) for piece, up in kept]
    runs = [(_column_glyphs if n in upright else _word_glyphs)(piece, scale, height) for n, piece in enumerate(pieces)]
    ruby = ruby_runs(runs)  # furigana Tesseract read as lines of their own
    rows = [word for n, piece in enumerate(pieces) if n not in ruby | upright for word in piece]
    lines = [Line(_word_glyphs(segment, scale, height)) for segment in _row_segments(rows)]
    return lines + [Line(run, vertical=True) for n, run in enumerate(runs) if n in upright - ruby]


def _without_ruby_words(line: list[ocr.OcrWord]) -> list[ocr.OcrWord]:
    """A Tesseract line less the furigana it took into it: kana words at most RUBY_SIZE of the height of its
    words with kanji, sitting above them."""
    base = [w for w in line if KANJI.search(w.text)]
    if not base:
        return line
    size = statistics.median(w.bottom - w.top for w in base)
    top = statistics.median(w.top for w in base)
    return [w for w in line if not (KANA_WORD.fullmatch(w.text) and w.bottom - w.top <= RUBY_SIZE * size
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
        if rows and overlap(rows[-1][0], rows[-1][1], top, bottom) >= 0.5 * min(rows[-1][1] - rows[-1][0],
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
        and overlap(a.left, a.right, b.left, b.right) >= 0.5 * min(a.right - a.left, b.right - b.left)
        for a, b in itertools.pairwise(line))


def _is_scattered(line: list[ocr.OcrWord]) -> bool:
    """Whether a vertical Tesseract line is noise: its words cover less than a third of its length (specks
    read as ‘ O Z < down the gap between two columns)."""
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
    words and each word's width shared evenly by its characters. Tesseract cuts 第1章 into three words: beside
    Japanese a space is kept only where the page shows one (a gap of a quarter character), as a text layer's
    characters are joined."""
    glyphs: list[Glyph] = []
    for word in words:
        bottom, top = height - word.bottom / scale, height - word.top / scale
        if glyphs:
            last = glyphs[-1]
            beside_japanese = CJK.match(last.char) or CJK.match(word.text[0])
            if not beside_japanese or word.left / scale - last.right > 0.25 * (top - bottom):
                glyphs.append(Glyph(" ", last.right, bottom, word.left / scale, top))
        step = (word.right - word.left) / len(word.text) / scale
        left = word.left / scale
        glyphs += [Glyph(char, left + k * step, bottom, left + (k + 1) * step, top) for k, char in enumerate(word.text)]
    return glyphs
