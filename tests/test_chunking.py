"""Chunk edges: windows of an over-long sentence."""

from __future__ import annotations

from itertools import pairwise

from indexer.embed.base import Embedder
from indexer.text.chunking import _windows


def test_an_over_long_sentence_is_never_cut_inside_a_character_cluster(embedder: Embedder) -> None:
    """A family emoji is three emoji joined by ZWJ; é here is e and a combining accent: one character to a reader."""
    text = "𠮷田さんが👨\u200d👩\u200d👧の絵文字とe\u0301を使い" * 60
    windows = _windows(text, 0, len(text), embedder, 40, 0, ())
    assert len(windows) > 3 and windows[0].start == 0 and windows[-1].end == len(text)
    for before, after in pairwise(windows):
        assert before.end <= after.start
        cut = text[before.end - 1 : before.end + 1]
        assert "\u200d" not in cut and text[before.end] != "\u0301", (before, cut)
