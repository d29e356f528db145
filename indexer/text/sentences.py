"""Sentence splitting for Japanese and English text, as spans into the text.

Japanese sentences end after 。！？ (or ! ? after NFKC) even without a following space, but
not inside 「」, 『』 or parentheses; English sentences end after . ! ? followed by space and
a capital, digit, quote or bracket, except after abbreviations and initials. A blank line
always ends a sentence; a single newline ends one only before a Markdown marker or after a
terminator, and otherwise reads as a space in a wrapped paragraph.
"""

from __future__ import annotations

import re
from itertools import pairwise

from indexer.text.language import is_japanese

_SPECIAL = re.compile(r"[。！？｡!?．.\n「『（(｢」』）)｣]")
_TERMINATORS = frozenset("。！？｡!?．.")
_STRONG = frozenset("。！？｡")  # Japanese: always ends a sentence outside brackets
_BANGS = frozenset("!?")
_OPENERS = frozenset("「『（(｢")
_CLOSERS = frozenset("」』）)｣")
_TRAILERS = frozenset("」』）)｣\"'’”】］]〕〉》")  # may follow a terminator within the sentence
_SENTENCE_OPENERS = frozenset("\"'“‘「『（(［[【｢")
_LINE_MARKER = re.compile(r"[ \t]*(?:[-*+][ \t]|\d+[.)][ \t]|#|>|\|)")
_BLOCK_LINE = re.compile(r"[ \t]*(?:#|\|)")
_ABBREVIATIONS = frozenset({
    "e.g.", "i.e.", "etc.", "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "vs.",
    "v.", "cf.", "fig.", "figs.", "eq.", "eqs.", "no.", "nos.", "vol.", "vols.", "p.", "pp.",
    "ch.", "sec.", "approx.", "al.", "u.s.", "u.k.", "ph.d.",
})  # fmt: skip
_MAX_BRACKET = 500  # characters; longer "quotes" are unbalanced brackets
_DOTTED_LETTERS = re.compile(r"(?:[A-Za-z]\.){2,}")
def _skip_spaces(text: str, i: int, end: int) -> int:
    """First position at or after i that is not whitespace (or `end`)."""
    while i < end and text[i].isspace():
        i += 1
    return i


def _starts_sentence(ch: str) -> bool:
    """True when a character can begin a new sentence after a terminator and a space."""
    return ch.isupper() or ch.isdigit() or ch in _SENTENCE_OPENERS or is_japanese(ch)


def _is_abbreviation(text: str, dot: int, lower_bound: int) -> bool:
    """True when the '.' at `dot` ends an abbreviation or an initial rather than a sentence."""
    i = dot
    while i > lower_bound and not text[i - 1].isspace() and text[i - 1] not in _SENTENCE_OPENERS:
        i -= 1
        if dot - i > 20:
            return False
    word = text[i : dot + 1]
    if len(word) == 2 and word[0].isupper():
        return True  # an initial, as in "J. Smith"
    return word.lower() in _ABBREVIATIONS or _DOTTED_LETTERS.fullmatch(word) is not None


def _after_terminators(text: str, i: int, end: int) -> int:
    """End of the run of terminators starting at i and the quotes or brackets closing it."""
    while i < end and text[i] in _TERMINATORS:
        i += 1
    while i < end and text[i] in _TRAILERS:
        i += 1
    return i


def _closing_depth(text: str, start: int, stop: int, depth: int) -> int:
    """Bracket depth after the closing brackets in text[start:stop]."""
    for ch in text[start:stop]:
        if ch in _CLOSERS:
            depth = max(0, depth - 1)
    return depth


def _ends_sentence(text: str, i: int, j: int, end: int, *, inside: bool, lower: int) -> bool:
    """Decide whether the terminators at text[i:j] (closers included) end a sentence."""
    run = text[i:j]
    if j >= end:
        return True
    nxt = text[j]
    if not inside and any(ch in _STRONG for ch in run):
        return True
    if not nxt.isspace():
        if inside:
            return False
        prev = text[i - 1] if i > lower else ""
        return is_japanese(nxt) and (any(ch in _BANGS for ch in run) or is_japanese(prev) or "．" in run)
    k = _skip_spaces(text, j, end)
    if k >= end:
        return True
    if "．" in run or (i > lower and is_japanese(text[i - 1])):
        return True
    if not _starts_sentence(text[k]):
        return False
    return run[0] != "." or not _is_abbreviation(text, i, lower)


def _line_ends_sentence(text: str, newline: int, lower: int) -> bool:
    """True when the line ending at `newline` ends with a terminator (not an abbreviation)."""
    i = newline
    while i > lower and text[i - 1].isspace():
        i -= 1
    while i > lower and text[i - 1] in _TRAILERS:
        i -= 1
    if i == lower or text[i - 1] not in _TERMINATORS:
        return False
    while i > lower and text[i - 1] in _TERMINATORS:
        i -= 1
    return text[i] != "." or not _is_abbreviation(text, i, lower)


def _newline_breaks(text: str, newline: int, start: int, end: int) -> bool:
    """True when the newline at `newline` ends the sentence before it."""
    k = newline + 1
    while k < end and text[k] in " \t\r\f\v":
        k += 1
    if k >= end or text[k] == "\n":
        return True  # blank line (or end of text)
    if _LINE_MARKER.match(text, k):
        return True
    line_start = text.rfind("\n", start, newline) + 1 or start
    if _BLOCK_LINE.match(text, max(line_start, start)):
        return True  # the line before is a heading or a table row
    return _line_ends_sentence(text, newline, start)


def _find_cuts(text: str, start: int, end: int) -> list[int]:
    """Positions in [start, end) after which a sentence ends."""
    cuts: list[int] = []
    depth = opened_at = 0
    resume = start
    for match in _SPECIAL.finditer(text, start, end):
        i = match.start()
        ch = text[i]
        if i < resume:
            continue
        if ch == "\n":
            if _newline_breaks(text, i, start, end):
                cuts.append(i)
                depth = 0
        elif ch in _OPENERS:
            opened_at = i if depth == 0 else opened_at
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
        else:
            if depth and i - opened_at > _MAX_BRACKET:
                depth = 0  # a bracket left open this long is taken as unbalanced
            j = _after_terminators(text, i, end)
            inside = depth > 0
            depth = _closing_depth(text, i, j, depth)
            if depth == 0 and _ends_sentence(text, i, j, end, inside=inside, lower=start):
                cuts.append(j)
            resume = j
    return cuts


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """text[start:end] without surrounding whitespace, or None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into sentences, as trimmed, ordered half-open spans into `text`."""
    end = len(text) if end is None else min(end, len(text))
    start = max(0, start)
    bounds = [start, *_find_cuts(text, start, end), end]
    spans = (_trimmed(text, a, b) for a, b in pairwise(bounds))
    return [span for span in spans if span is not None]
