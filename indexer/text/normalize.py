"""Unicode NFKC normalization with a map from every output character back to the original text.

NFKC changes string lengths (ｶﾞ → ガ, ㈱ → (株)), so each character of the normalized text
remembers the span of the original that produced it. Normalization works cluster by cluster:
a cluster is a base character plus the combining characters, Japanese voicing marks and
variation selectors that follow it. Control characters other than tab, newline and carriage
return are dropped (without splitting a cluster); lone surrogates become U+FFFD. Documents
and queries share this function.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate

_REPLACEMENT = "\ufffd"
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_DROPPED = re.compile(f"[{_CONTROLS}]")
_SURROGATES = range(0xD800, 0xE000)
_VOICING_MARKS = "\u3099\u309a\uff9e\uff9f"


@dataclass(frozen=True)
class NormalizedText:
    """Normalized text plus, for each of its characters, the original span it came from."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of `text` to the smallest span of `original` that produced it.

        An empty span at position p maps to an empty span at the start of the cluster that
        produced character p (or at the end of `original` when p is the end of `text`).
        """
        if not 0 <= start <= end <= len(self.text):
            raise ValueError(
                f"span ({start}, {end}) is outside the text of length {len(self.text)}"
            )
        if start == end:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class _Tables:
    """Precomputed lookups, built on first use."""

    one_to_one: dict[int, str]  # BMP characters whose NFKC form is one other character
    complex_run: re.Pattern[str]  # a run of clusters that need the per-cluster path
    cluster: re.Pattern[str]  # one cluster: a base character and its extenders


def _char_class(code_points: list[int]) -> str:
    """Turn sorted code points into the body of a regex character class."""
    parts: list[str] = []
    first = last = code_points[0]
    for cp in [*code_points[1:], -1]:
        if cp == last + 1:
            last = cp
            continue
        parts.append(f"{re.escape(chr(first))}-{re.escape(chr(last))}")
        first = last = cp
    return "".join(parts)


def _extenders() -> list[int]:
    """Code points that extend the preceding cluster."""
    combining = {cp for cp in range(0x20000) if unicodedata.combining(chr(cp))}
    combining.update(range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0), map(ord, _VOICING_MARKS))
    return sorted(combining)


def _nfkc_changes() -> tuple[dict[int, str], list[int]]:
    """BMP characters changed by NFKC: those mapped to one character, and the others."""
    one_to_one: dict[int, str] = {}
    many: list[int] = []
    for cp in range(0x10000):
        if cp in _SURROGATES:
            continue
        out = unicodedata.normalize("NFKC", chr(cp))
        if out == chr(cp):
            continue
        if len(out) == 1:
            one_to_one[cp] = out
        else:
            many.append(cp)
    return one_to_one, many


@cache
def _tables() -> _Tables:
    """Build the lookup tables once (a few tens of milliseconds)."""
    extenders = _extenders()
    one_to_one, many = _nfkc_changes()
    # A regex class is fast to scan only while it holds BMP characters alone, so every
    # astral character triggers the per-cluster path (astral extenders included).
    bmp = _char_class(sorted({cp for cp in extenders if cp < 0x10000} | set(many)))
    trigger = f"[{bmp}{_CONTROLS}\ud800-\udfff\U00010000-\U0010ffff]"
    return _Tables(
        one_to_one=one_to_one,
        complex_run=re.compile(f"(?s)(?:.?{trigger})+"),
        # Dropped controls between a base and its marks do not split the cluster.
        cluster=re.compile(f"(?s).(?:[{_CONTROLS}]*[{_char_class(extenders)}])*"),
    )


@lru_cache(maxsize=65536)
def _normalize_cluster(cluster: str) -> str:
    """NFKC-normalize one cluster, dropping control characters and replacing surrogates."""
    cleaned = "".join(_REPLACEMENT if ord(c) in _SURROGATES else c for c in cluster)
    return unicodedata.normalize("NFKC", _DROPPED.sub("", cleaned))


class _Builder:
    """Accumulates output pieces and their offset maps."""

    def __init__(self, tables: _Tables) -> None:
        self.tables = tables
        self.pieces: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def simple(self, segment: str, start: int) -> None:
        """Emit a segment of single-character clusters, each normalized to one character."""
        if not segment.isascii():
            segment = segment.translate(self.tables.one_to_one)
        self.pieces.append(segment)
        self.starts.extend(range(start, start + len(segment)))
        self.ends.extend(range(start + 1, start + len(segment) + 1))

    def clusters(self, segment: str, start: int) -> None:
        """Emit a segment cluster by cluster; each output character maps to its cluster."""
        clusters = self.tables.cluster.findall(segment)
        bounds = list(accumulate(map(len, clusters), initial=start))
        outs = list(map(_normalize_cluster, clusters))
        self.pieces.extend(outs)
        self.starts.extend([s for s, out in zip(bounds[:-1], outs, strict=True) for _ in out])
        self.ends.extend([e for e, out in zip(bounds[1:], outs, strict=True) for _ in out])

    def build(self, original: str) -> NormalizedText:
        """Freeze the accumulated pieces into a NormalizedText."""
        return NormalizedText(original, "".join(self.pieces), tuple(self.starts), tuple(self.ends))


def normalize(text: str) -> NormalizedText:
    """NFKC-normalize `text`, keeping a map from each output character to the original."""
    if text.isascii() and not _DROPPED.search(text):
        n = len(text)
        return NormalizedText(text, text, tuple(range(n)), tuple(range(1, n + 1)))
    out = _Builder(_tables())
    pos = 0
    for match in out.tables.complex_run.finditer(text):
        start, end = match.span()
        out.simple(text[pos:start], pos)
        out.clusters(match.group(), start)
        pos = end
    out.simple(text[pos:], pos)
    return out.build(text)


def normalize_query(text: str) -> str:
    """Normalize a query exactly as documents are normalized."""
    return normalize(text).text


def tag_form(tag: str) -> str:
    """A tag as documents keep it and filters compare it: NFKC, lower-case, stripped (ＦＡＱ, FAQ and faq are
    one tag)."""
    return unicodedata.normalize("NFKC", tag).strip().lower()
