"""Packing retrieved passages into a reader's context window by token count.

Passages go in retrieval order, most relevant first, for as long as they fit
the budget — not a fixed number of them. A passage longer than what is left is
cut after its last whole sentence that fits (if a useful amount of room is
left); one that cannot be cut usefully is skipped and shorter ones after it may
still go in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from indexer.search.searcher import Hit
from indexer.text.sentences import split_sentences
from server.answering.passages import Passage

TokenCounter = Callable[[list[str]], list[int]]
MIN_CUT_TOKENS = 32  # a cut passage shorter than this is not worth its place


def pack_passages(
    hits: Sequence[Hit],
    relevance: Sequence[float],
    count_tokens: TokenCounter,
    budget: int,
    *,
    overhead: int = 0,
) -> list[Passage]:
    """Number and pack `hits` into `budget` tokens; `overhead` is the cost of each passage's framing."""
    packed: list[Passage] = []
    left = budget
    counts = count_tokens([hit.text for hit in hits]) if hits else []
    for hit, score, tokens in zip(hits, relevance, counts, strict=True):
        if left - overhead <= 0:
            break
        if tokens + overhead > left:
            cut = _cut(hit, count_tokens, left - overhead)
            if cut is None:
                continue
            hit, tokens = cut
        packed.append(Passage(n=len(packed) + 1, hit=hit, tokens=tokens, relevance=score))
        left -= tokens + overhead
    return packed


def _cut(hit: Hit, count_tokens: TokenCounter, room: int) -> tuple[Hit, int] | None:
    """The longest prefix of whole sentences of `hit` that fits `room` tokens, or None."""
    if room < MIN_CUT_TOKENS:
        return None
    ends = [end for _, end in split_sentences(hit.text)][:-1]
    best: tuple[int, int] | None = None
    low, high = 0, len(ends) - 1
    while low <= high:  # prefix token counts grow with the prefix: binary search
        middle = (low + high) // 2
        tokens = count_tokens([hit.text[: ends[middle]]])[0]
        if tokens <= room:
            best, low = (ends[middle], tokens), middle + 1
        else:
            high = middle - 1
    if best is None or best[1] < MIN_CUT_TOKENS:
        return None
    end, tokens = best
    highlights = tuple((s, e) for s, e in hit.highlights if e <= hit.start + end)
    return dataclasses.replace(hit, text=hit.text[:end], end=hit.start + end, highlights=highlights), tokens
