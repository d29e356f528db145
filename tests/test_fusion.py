"""Fusing dense and keyword rankings: z-score fusion for new indexes, RRF kept for indexes built with it."""

from __future__ import annotations

import pytest

from indexer.search.fusion import LEGACY, MODEL_SHARES, RRF, ZSCORE, FusionSettings, fuse
from indexer.search.searcher import Searcher
from indexer.store.manifest import FusionEntry

# Two candidate lists of eight chunks; 1 leads the dense list by a hair, 2 leads the keyword list by far.
DENSE = [(1, 0.86), (2, 0.859), (3, 0.85), (4, 0.84), (5, 0.83), (6, 0.82), (7, 0.81), (8, 0.80)]
KEYWORD = [(2, 30.0), (1, 9.0), (3, 8.0), (4, 7.5), (5, 7.0), (6, 6.5), (7, 6.0), (8, 5.5)]


def test_zscore_fusion_keeps_how_far_a_first_hit_stands_out() -> None:
    """Rank fusion sees two lists that merely swap their first two; z-scores see a keyword hit far ahead."""
    zscore = FusionSettings(method=ZSCORE)
    assert fuse(DENSE, KEYWORD, 0.5, zscore)[0][0] == 2
    flipped = [(cid, 40.0 - score) if cid in (1, 2) else (cid, score) for cid, score in KEYWORD]  # 1 far ahead now
    assert fuse(DENSE, sorted(flipped, key=lambda x: -x[1]), 0.5, zscore)[0][0] == 1
    # a share of 1 (or a keyword list with nothing) is the dense order, a share of 0 the keyword order
    assert [c for c, _ in fuse(DENSE, KEYWORD, 1.0, zscore)][:2] == [1, 2]
    assert [c for c, _ in fuse(DENSE, [], 0.5, zscore)] == [c for c, _ in DENSE]
    assert [c for c, _ in fuse(DENSE, KEYWORD, 0.0, zscore)] == [c for c, _ in KEYWORD]


@pytest.mark.parametrize("keyword", [[(8, 4.2)], [(8, 4.2), (7, 4.2)]])
def test_a_lone_keyword_match_counts(keyword: list[tuple[int, float]]) -> None:
    """One chunk holds the word (東京 in the default corpus): a list without spread must still lift it, or the
    dense order alone would rank the only chunk holding the word below ones that do not."""
    fused = [c for c, _ in fuse(DENSE, keyword, 0.6, FusionSettings(method=ZSCORE))]
    assert set(fused[: len(keyword)]) == {c for c, _ in keyword}, fused  # tied, in dense order


def test_a_deeper_list_does_not_reorder_the_head() -> None:
    """Paged searches rank 1000 deep: z-scores are taken over the first `candidates`, so the order is the same."""
    settings = FusionSettings(method=ZSCORE, candidates=8)
    tail = [(100 + i, 0.5 - i / 1000) for i in range(200)]
    keyword_tail = [(100 + i, 1.0 - i / 1000) for i in range(200)]
    plain = [c for c, _ in fuse(DENSE, KEYWORD, 0.4, settings)]
    deep = [c for c, _ in fuse(DENSE + tail, KEYWORD + keyword_tail, 0.4, settings)]
    assert deep[: len(plain)] == plain


def test_indexes_built_with_rrf_fuse_as_before() -> None:
    recorded = FusionEntry(method=RRF, k=60, keyword_weight=1.0, coverage_floor=0.5, candidates=100,
                           language_weights={"en": 1.0, "ja": 0.2}, model_coverage={"en": 1.0, "ja": 1.0})
    settings = FusionSettings.from_entry(recorded)
    assert settings.method == RRF and settings.dense_weight(1.0, "ja") == pytest.approx(0.2)
    fused = fuse(DENSE, KEYWORD, 1.0, settings)
    assert fused[0] == (1, pytest.approx(1 / 61 + 1 / 62)) and fused[1][0] == 2  # ranks only
    assert FusionSettings.from_entry(None) == LEGACY  # an index from before fusion was recorded


def test_shares_are_per_model_and_the_floor_leaves_out_a_language_the_model_cannot_read() -> None:
    minilm = FusionSettings.for_model(lambda text: 0.0 if any(ord(c) > 0x3000 for c in text) else 1.0,
                                      "all-minilm-l6-v2")
    assert minilm.language_weights == MODEL_SHARES["all-minilm-l6-v2"]
    assert dict(minilm.model_coverage) == {"en": 1.0, "ja": 0.0}
    assert minilm.dense_weight(0.0, "ja") == 0 and minilm.dense_weight(1.0, "en") > 0
    unknown = FusionSettings.for_model(lambda text: 1.0, "someone/their-model")
    assert unknown.language_weights == MODEL_SHARES["multilingual-e5-small"]  # the default model's


def test_a_japanese_query_under_minilm_ranks_as_keyword_search(searcher: Searcher) -> None:
    """MiniLM reads Japanese as isolated characters: hybrid search there is keyword search, hit for hit."""
    assert searcher.fusion.method == ZSCORE
    for query in ("形態素解析の辞書", "銀座のデパート", "ベクトル検索とキーワード検索の違い"):
        hybrid = [h.chunk_id for h in searcher.search(query, mode="hybrid", k=10)]
        assert hybrid == [h.chunk_id for h in searcher.search(query, mode="keyword", k=10)]
