"""Search over the default corpus with the real model, FAISS and SQLite."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from indexer.embed.base import Embedder
from indexer.search.searcher import Hit, QueryError, Searcher
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import Filters
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS, build


def files_containing(word: str) -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.md") if word in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("word", ["銀座", "東京"])
def test_two_character_japanese_word_in_one_document_comes_first(searcher: Searcher, word: str) -> None:
    owners = files_containing(word)
    assert len(owners) == 1, f"the corpus should hold {word} in exactly one file, found {owners}"
    hits = searcher.search(word, mode="hybrid", k=5)
    assert hits, f"no hit for {word}"
    assert hits[0].source == owners[0]


def test_half_width_katakana_query_finds_full_width_text(searcher: Searcher) -> None:
    assert not files_containing("ﾄｰｸﾅｲｻﾞ")
    owners = set(files_containing("トークナイザ"))
    hits = searcher.search("ﾄｰｸﾅｲｻﾞ", mode="keyword", k=5)
    assert hits and hits[0].source in owners


@pytest.mark.parametrize("query", ["銀座", "ﾄｰｸﾅｲｻﾞ", "reciprocal rank fusion", "ＮＦＫＣ 正規化"])
def test_highlights_slice_the_original_file_text(searcher: Searcher, query: str) -> None:
    hits = searcher.search(query, mode="hybrid", k=5)
    highlighted = 0
    for hit in hits:
        original = (CORPUS / hit.source).read_text(encoding="utf-8")
        assert original[hit.start : hit.end] == hit.text
        for start, end in hit.highlights:
            assert hit.start <= start < end <= hit.end
            fragment = unicodedata.normalize("NFKC", original[start:end]).lower()
            assert fragment.strip(), (query, fragment)
            highlighted += 1
    assert highlighted, f"no highlight for {query!r}"


def highlighted_words(hit: Hit) -> list[str]:
    original = (CORPUS / hit.source).read_text(encoding="utf-8")
    return [original[start:end] for start, end in hit.highlights]


def test_a_word_after_a_particle_is_highlighted_whole(searcher: Searcher) -> None:
    # the bigram の弱 overlaps 弱点: both are marked, merged, not の弱 alone
    hits = [hit for hit in searcher.search("BM25の弱点", mode="keyword", k=5) if "弱点" in hit.text]
    assert hits
    for hit in hits:
        assert all(word != "の弱" for word in highlighted_words(hit)), highlighted_words(hit)
        assert sum("弱点" in word for word in highlighted_words(hit)) == hit.text.count("弱点"), highlighted_words(hit)


def test_kana_read_as_a_word_marks_that_word_not_the_kanas_particles(searcher: Searcher) -> None:
    hits = searcher.search("とーくないざ", mode="keyword", k=5)
    assert searcher.kana_terms("とーくないざ").text == "トークナイザ"
    assert hits and all(set(highlighted_words(hit)) <= {"トークナイザ"} for hit in hits), \
        [highlighted_words(hit) for hit in hits]


@pytest.mark.parametrize("kanji", ["駅", "字", "漢"])
def test_a_one_kanji_query_finds_the_words_that_hold_it(searcher: Searcher, kanji: str) -> None:
    # 東京駅 is one word and its bigrams 東京 京駅: 駅 alone is in the index nowhere
    owners = files_containing(kanji)
    hits = searcher.search(kanji, mode="keyword", k=10)
    assert hits and {hit.source for hit in hits} <= set(owners), (owners, [hit.source for hit in hits])
    assert all(kanji in hit.text for hit in hits)
    assert all(set(highlighted_words(hit)) == {kanji} for hit in hits), [highlighted_words(hit) for hit in hits]


def test_english_query_finds_the_rrf_document(searcher: Searcher) -> None:
    for mode in ("dense", "keyword", "hybrid"):
        hits = searcher.search("reciprocal rank fusion formula with k = 60", mode=mode, k=3)
        assert any("1 / (k + rank)" in h.text or "rank" in h.text.lower() for h in hits[:1]), mode


def test_filters_apply_before_ranking(searcher: Searcher) -> None:
    hits = searcher.search("tokenization", mode="hybrid", k=20, filters=Filters(language="ja"))
    assert hits and all(h.language == "ja" for h in hits)
    hits = searcher.search("tokenization", mode="dense", k=20, filters=Filters(source="en-"))
    assert hits and all(h.source.startswith("en-") for h in hits)
    tagged = searcher.search("token", mode="hybrid", k=50, filters=Filters(tags=("tokenization",)))
    assert all("tokenization" in h.metadata.get("tags", []) for h in tagged)


def test_filter_that_matches_nothing_gives_no_hits(searcher: Searcher) -> None:
    assert searcher.search("token", filters=Filters(source="no/such/dir/")) == []


@pytest.mark.parametrize("query,mode", [("   ", "hybrid"), ("\u0000", "dense"), ("token", "fuzzy")])
def test_bad_queries_raise_clear_errors(searcher: Searcher, query: str, mode: str) -> None:
    with pytest.raises(QueryError):
        searcher.search(query, mode=mode)


def test_japanese_query_under_english_model_leans_on_keywords(searcher: Searcher) -> None:
    assert searcher.embedder.coverage("東京で働く") == 0.0
    assert searcher.embedder.coverage("what is a tokenizer") > 0.9


def test_an_english_word_beside_japanese_is_highlighted_alone(tmp_path: Path, embedder: Embedder,
                                                             keywords: KeywordTokenizer) -> None:
    """`BM25のk1`: the highlight is BM25, not the Japanese after it (Python's \\w runs on into kana), and k1 right
    after の is found at all (\\b sees no word start between の and k)."""
    text = "BM25のk1パラメータを調整すると検索結果が変わる。Pythonで実装した。ＡＰＩキーを発行する。"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "bm25.md").write_text(f"# 調整\n\n{text}\n", encoding="utf-8")
    build(tmp_path / "corpus", tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        for query, words in [("BM25", ["BM25"]), ("k1", ["k1"]), ("Python", ["Python"]), ("API", ["ＡＰＩ"]),
                             ("BM25 k1 python", ["BM25", "k1", "Python"])]:
            [hit] = searcher.search(query, mode="keyword", k=1)
            assert [hit.text[s - hit.start : e - hit.start] for s, e in hit.highlights] == words, query
    finally:
        searcher.close()


@pytest.mark.parametrize("query", ["pass", "re", "E-1024", "running"])
def test_english_highlights_are_words_with_the_querys_stems_not_words_that_start_with_them(
    searcher: Searcher, keywords: KeywordTokenizer, query: str
) -> None:
    stems = {term.text for term in keywords.words(query)}
    for hit in searcher.search(query, mode="hybrid", k=10):
        for word in highlighted_words(hit):
            assert keywords.stem(unicodedata.normalize("NFKC", word)) in stems, (query, word, hit.source)
