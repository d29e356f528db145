"""In-memory BM25 (indexer.store.bm25) against SQLite FTS5's own bm25() on the default corpus index."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.store.bm25 import KeywordMatrix, ascii_tokens
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import Filters, SqliteStore
from indexer.text.keywords import KeywordTokenizer

QUERIES = [
    "reciprocal rank fusion", "How does BM25 score documents?", "Unicode normalization NFKC",
    "形態素解析", "東京の銀座でデパートに行った", "ﾄｰｸﾅｲｻﾞ", "チャンク分割とトークン数", "embedding 検索",
    "question answering with citations", "zzzz-no-such-term",
]


@pytest.fixture(scope="module")
def store(corpus_index: IndexDirectory) -> SqliteStore:
    return SqliteStore(corpus_index.current().store_path, readonly=True)


@pytest.fixture(scope="module")
def matrix(store: SqliteStore) -> KeywordMatrix:
    built = KeywordMatrix.from_store(store)
    assert built is not None
    return built


def _terms(keywords: KeywordTokenizer, query: str) -> tuple[list[str], list[str]]:
    return (list(dict.fromkeys(t.text for t in keywords.words(query))),
            list(dict.fromkeys(t.text for t in keywords.grams(query))))


@pytest.mark.parametrize("grams_weight", [1.0, 0.4])
@pytest.mark.parametrize("query", QUERIES)
def test_scores_and_order_are_fts5s(store: SqliteStore, matrix: KeywordMatrix, keywords: KeywordTokenizer,
                                    query: str, grams_weight: float) -> None:
    match = keywords.match_query(query)
    assert match is not None
    expected = store.keyword_search(match, 100, Filters(), grams_weight)
    got = matrix.search(*_terms(keywords, query), 100, grams_weight)
    assert got is not None
    assert [i for i, _ in got] == [i for i, _ in expected] or _same_up_to_ties(got, expected)
    assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9, atol=1e-12)
    if query.startswith("zzzz"):
        assert got == [] or all(s > 0 for _, s in got)


def _same_up_to_ties(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> bool:
    by_score: dict[float, set[int]] = {}
    for chunk_id, score in expected:
        by_score.setdefault(round(score, 9), set()).add(chunk_id)
    return all(chunk_id in by_score.get(round(score, 9), set()) for chunk_id, score in got)


def test_depth_and_filters(store: SqliteStore, matrix: KeywordMatrix, keywords: KeywordTokenizer) -> None:
    query = "tokenization トークン"
    filters = Filters(language="ja")
    expected = store.keyword_search(keywords.match_query(query), 5, filters, 1.0)  # type: ignore[arg-type]
    allowed = store.filtered_chunk_ids(filters)
    got = matrix.search(*_terms(keywords, query), 5, 1.0, allowed)
    assert got is not None and len(got) == len(expected) <= 5
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert set(i for i, _ in got) <= set(allowed.tolist())


def test_a_term_of_several_fts5_tokens_is_left_to_fts5(matrix: KeywordMatrix) -> None:
    assert ascii_tokens("e.g") == ["e", "g"]
    assert ascii_tokens("ÄBC東京") == ["Äbc東京"]  # only ASCII letters are folded, as FTS5's ascii tokenizer does
    assert matrix.search(["e.g"], [], 10, 1.0) is None


def test_a_corpus_past_the_budget_keeps_fts5(store: SqliteStore) -> None:
    assert KeywordMatrix.from_store(store, max_postings=100) is None


def test_searcher_uses_it_and_ranks_as_before(searcher, keywords: KeywordTokenizer) -> None:
    backend = searcher.search_store
    assert backend.keyword_matrix is not None
    hits = searcher.search("reciprocal rank fusion", mode="keyword", k=5)
    expected = backend.store.keyword_search(keywords.match_query("reciprocal rank fusion"), 5, Filters(),
                                            searcher.grams_weight)
    assert [h.chunk_id for h in hits] == [i for i, _ in expected]
