"""Characters with their boxes, as a PDF's text layer or OCR gives them, and the lines they make.

A `Glyph` is a character and its box in PDF points (origin at the bottom left); a `Line` is a
run of them, horizontal or vertical (縦書き). `ruby_runs` tells which runs are furigana: small
kana set just above the words they read (right of them in vertical text).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

_CJK_CLASS = r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
CJK = re.compile(_CJK_CLASS)
_CJK_SPACE = re.compile(rf"(?<={_CJK_CLASS})\s+(?={_CJK_CLASS})")  # PDFium's guessed spaces around 、・「」
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ffー]")
KANA_WORD = re.compile(r"[\u3041-\u309f\u30a0-\u30ffー]+")
KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々]")
RUBY_SIZE = 0.7  # furigana is set at about half its base text's size; text at 70% or less of it can be ruby


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


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def is_vertical(glyphs: Sequence[Glyph]) -> bool:
    marks = [g for g in glyphs if g.char.strip()]
    if len(marks) < 2:
        return False
    width = max(g.right for g in marks) - min(g.left for g in marks)
    height = max(g.top for g in marks) - min(g.bottom for g in marks)
    return height > 2 * width


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
        vertical = is_vertical(marks)
        sizes = [(g.right - g.left) if vertical else (g.top - g.bottom) for g in marks]
        usual = Glyph("", *(statistics.median(getattr(g, edge) for g in marks)
                            for edge in ("left", "bottom", "right", "top")))
        return cls(min(g.left for g in marks), min(g.bottom for g in marks), max(g.right for g in marks),
                   max(g.top for g in marks), usual, statistics.median(sizes), _mostly_kana(marks))

    def glosses(self, base: _Box) -> bool:
        """Whether this run is furigana on `base`: kana at most RUBY_SIZE of its size, just above a horizontal
        base (or just right of a vertical one) and alongside it."""
        if not self.kana or self.size > RUBY_SIZE * base.size:
            return False
        near = (-0.5 * base.size, 0.6 * base.size)  # OCR boxes of the base line can reach up into the ruby
        above = near[0] <= self.usual.bottom - base.usual.top <= near[1] and \
            overlap(self.left, self.right, base.left, base.right) >= 0.5 * (self.right - self.left)
        beside = near[0] <= self.usual.left - base.usual.right <= near[1] and \
            overlap(self.bottom, self.top, base.bottom, base.top) >= 0.5 * (self.top - self.bottom)
        return above or beside


def _mostly_kana(run: Sequence[Glyph]) -> bool:
    """All but a fifth of the run's characters are kana, as furigana is."""
    marks = [g for g in run if g.char.strip()]
    return bool(marks) and sum(1 for g in marks if _KANA.match(g.char)) >= 0.8 * len(marks)


def ruby_runs(runs: Sequence[Sequence[Glyph]]) -> set[int]:
    """Which runs are furigana (ruby): small kana set above the words they read, or right of them in vertical
    text. Producers write it as runs of its own; kept, it would interleave readings with the text they gloss
    (江戸えど幕府ばくふ) or make lines of kana between the real ones."""
    candidates = [i for i, run in enumerate(runs) if _mostly_kana(run)]
    if not candidates:  # most pages: no box needs measuring
        return set()
    boxes = [_Box.of(run) if any(g.char.strip() for g in run) else None for run in runs]
    return {i for i in candidates
            if any(base is not None and j != i and boxes[i].glosses(base) for j, base in enumerate(boxes))}  # type: ignore[union-attr]
