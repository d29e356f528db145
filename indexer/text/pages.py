"""Pages of paged documents (PDF): which pages a span of the document's text lies on.

A paged document keeps, in its metadata under `page_starts`, the offset in its
text where each page begins (page 1 at offset 0). Every other format has none,
and its spans have no page.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

PAGE_STARTS = "page_starts"


def page_starts(metadata: Mapping[str, Any]) -> list[int]:
    """The start offset of each page, or [] for a document without pages (or with offsets that cannot be a
    paged file's own: page 1 not at 0, not increasing, not whole numbers)."""
    starts = metadata.get(PAGE_STARTS)
    if not isinstance(starts, list) or not starts or starts[0] != 0:
        return []
    if not all(type(s) is int for s in starts) or any(a >= b for a, b in pairwise(starts)):
        return []
    return list(starts)


def pages_of(starts: Sequence[int], start: int, end: int) -> tuple[int, ...]:
    """The 1-based pages that text[start:end] touches (both pages when it crosses a break)."""
    if not starts:
        return ()
    first = max(1, bisect_right(starts, start))
    last = max(first, bisect_right(starts, max(start, end - 1)))
    return tuple(range(first, last + 1))


def page_bounds(starts: Sequence[int], length: int) -> list[tuple[int, int]]:
    """(start, end) of each page in a text of `length` characters."""
    if not starts:
        return []
    ends = [*starts[1:], length]
    return list(zip(starts, ends, strict=True))
