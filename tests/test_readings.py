"""Words typed in kana find the words the documents write in kanji (indexer.search.readings)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.search.readings import ReadingDictionary, kana_stretches, katakana_stretches, to_katakana
from indexer.search.searcher import Searcher
from indexer.store.embedded import EmbeddedStore
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS, RunningServer


def test_hiragana_becomes_katakana_and_nothing_else_changes() -> None:
    assert to_katakana("けいたいそ・ゔぁ ABC 漢字 カナ ー") == "ケイタイソ・ヴァ ABC 漢字 カナ ー"


@pytest.mark.parametrize(("query", "stretches"), [
    ("けいたいそかいせき", ["けいたいそかいせき"]),
    ("ばくふを開いた", ["ばくふを"]),                   # kana before a kanji is a stretch
    ("徳川家康はどこに幕府を開きましたか", []),          # kana after a kanji is an ending or a particle
    ("なぜ空は青い", ["なぜ"]),
    ("iPhone の けーす", ["けーす"]),                   # one kana alone is not
    ("トークナイザ", []),                               # katakana is how loanwords are written
    ("ロシアのしゅと", ["のしゅと"]),
])
def test_kana_stretches_are_the_kana_not_right_after_a_kanji(query: str, stretches: list[str]) -> None:
    assert [query[s:e] for s, e in kana_stretches(query)] == stretches


@pytest.mark.parametrize(("query", "stretches"), [
    ("ケイタイソカイセキ", ["ケイタイソカイセキ"]),
    ("ケイタイソカイセキとは", ["ケイタイソカイセキ"]),
    ("東京タワーとトークナイザ", ["トークナイザ"]),      # katakana after a kanji is part of its word
    ("けいたいそ ア", []),                              # one katakana alone is not
])
def test_katakana_stretches_are_the_katakana_not_right_after_a_kanji(query: str, stretches: list[str]) -> None:
    assert [query[s:e] for s, e in katakana_stretches(query)] == stretches


def test_katakana_is_read_only_as_kanji_words_typed_in_katakana(keywords: KeywordTokenizer) -> None:
    dictionary = ReadingDictionary(["形態素", "解析", "ハイブリッド", "検索", "データ", "ベース"], keywords.reading)

    def expand(query: str) -> tuple[tuple[str, ...], str]:
        conversion = dictionary.expand(query, keywords.words(query), nouns=keywords.noun_spans(query))
        return conversion.terms, conversion.text

    assert expand("ケイタイソカイセキ") == (("形態素", "解析"), "形態素解析")
    assert expand("ケンサクとは") == (("検索",), "検索とは")
    assert expand("ハイブリッドケンサク") == ((), "ハイブリッドケンサク")  # ハイブリッド is no kanji word's reading
    assert expand("ハイブリッド") == ((), "ハイブリッド")      # the index holds it as typed
    assert expand("データベース") == ((), "データベース")      # read wholly, but as no word written with a kanji
    assert expand("ケイタイソノカイセキ") == ((), "ケイタイソノカイセキ")  # ノ is no reading: not wholly read


def test_kana_is_split_into_the_fewest_readings_and_each_adds_every_word_read_so(keywords: KeywordTokenizer) -> None:
    dictionary = ReadingDictionary(["形態素", "解析", "懐石", "携帯", "東京", "トークナイザ", "english", "を"],
                                   keywords.reading)
    assert dictionary.convert("けいたいそかいせき") == ["ケイタイソ", "カイセキ"]  # not ケイタイ + ソ + カイセキ
    conversion = dictionary.expand("けいたいそかいせきとは")
    assert conversion.terms == ("形態素", "懐石", "解析")    # homophones all searched; BM25 ranks by what chunks hold
    assert conversion.spans == ((0, 11),)
    assert dictionary.expand("とーくないざ").terms == ("トークナイザ",)
    assert dictionary.expand("形態素解析はとうきょうで").terms == ()  # the kana follows a kanji
    assert "english" not in dictionary.terms.values() and "ヲ" not in dictionary.terms  # no Latin, no one-kana reading


def test_the_query_is_rewritten_with_each_readings_most_frequent_word_for_the_model(
        keywords: KeywordTokenizer) -> None:
    dictionary = ReadingDictionary({"形態素": 3, "解析": 40, "懐石": 2, "東京": 7}, keywords.reading)
    assert dictionary.terms["カイセキ"] == ("解析", "懐石")
    assert dictionary.expand("けいたいそかいせきとは何か").text == "形態素解析とは何か"
    assert dictionary.expand("じゃあ とうきょう の けいたいそ").text == "じゃあ 東京 の 形態素"
    assert dictionary.expand("東京は").text == "東京は"


def test_a_stretch_readings_barely_cover_keeps_its_own_terms(keywords: KeywordTokenizer) -> None:
    dictionary = ReadingDictionary(["東京"], keywords.reading)
    conversion = dictionary.expand("とうきょうへいくにはどうすればいいですか")
    assert conversion.terms == ("東京",)
    assert conversion.spans == ()  # 5 of 20 characters: the rest is the query's own (Sudachi's words, bigrams)


def sources(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [hit.source for hit in hits]


@pytest.fixture
def without_conversion(searcher: Searcher) -> Iterator[Searcher]:
    searcher.kana_conversion = False
    try:
        yield searcher
    finally:
        searcher.kana_conversion = True


@pytest.mark.parametrize(("kana", "written", "owner"), [
    ("けいたいそかいせき", "形態素解析", "ja-mecab-fugashi-unidic.md"),
    ("こゆうひょうげん", "固有表現", "ja-named-entity-recognition.md"),
    ("ぎんざ", "銀座", "ja-named-entity-recognition.md"),
    ("ケイタイソカイセキ", "形態素解析", "ja-mecab-fugashi-unidic.md"),   # typed in katakana
    ("コユウヒョウゲン", "固有表現", "ja-named-entity-recognition.md"),
])
def test_a_word_typed_in_kana_finds_the_document_that_writes_it_in_kanji(
        searcher: Searcher, kana: str, written: str, owner: str) -> None:
    text = (CORPUS / owner).read_text(encoding="utf-8")
    assert written in text and kana not in text and to_katakana(kana) not in text
    hits = searcher.search(kana, mode="keyword", k=3)
    assert hits and hits[0].source == owner, sources(hits)
    first = hits[0]
    original = (CORPUS / first.source).read_text(encoding="utf-8")
    highlighted = {original[s:e] for s, e in first.highlights}
    assert any(word in written for word in highlighted), highlighted  # the kanji the kana was read as


def test_the_dense_half_embeds_the_kana_as_the_words_it_reads_as(searcher: Searcher) -> None:
    assert searcher.kana_terms("けいたいそかいせき").text == "形態素解析"
    as_written = [h.chunk_id for h in searcher.search("形態素解析", mode="dense", k=5)]
    assert [h.chunk_id for h in searcher.search("けいたいそかいせき", mode="dense", k=5)] == as_written
    searcher.kana_conversion = False
    try:  # the kana as typed is another vector with another ranking: the equality above is the rewrite's doing
        assert [h.chunk_id for h in searcher.search("けいたいそかいせき", mode="dense", k=5)] != as_written
    finally:
        searcher.kana_conversion = True


def test_without_the_conversion_kana_misses_those_documents(without_conversion: Searcher) -> None:
    hits = without_conversion.search("けいたいそかいせき", mode="keyword", k=3)
    assert "ja-mecab-fugashi-unidic.md" not in sources(hits)[:1]


def ranked_with_and_without_it(searcher: Searcher, query: str, mode: str) -> tuple[list, list]:  # type: ignore[type-arg]
    """(chunk, score) of the first ten hits with the conversion on, then off."""
    on = [(h.chunk_id, h.score) for h in searcher.search(query, mode=mode, k=10)]
    searcher.kana_conversion = False
    try:
        off = [(h.chunk_id, h.score) for h in searcher.search(query, mode=mode, k=10)]
    finally:
        searcher.kana_conversion = True
    return on, off


@pytest.mark.parametrize("query", ["形態素解析の辞書", "徳川家康はどこに幕府を開きましたか", "reciprocal rank fusion"])
def test_queries_written_in_kanji_or_english_rank_exactly_as_without_it(searcher: Searcher, query: str) -> None:
    on, off = ranked_with_and_without_it(searcher, query, "keyword")
    assert on == off


@pytest.mark.parametrize("query", ["トークナイザ", "ハルシネーション", "クラウド", "エンベディング"])
def test_loanwords_in_katakana_rank_exactly_as_without_the_conversion(searcher: Searcher, query: str) -> None:
    # the first two are in the corpus as typed, the last two are not and read as no kanji word
    assert searcher.kana_terms(query).text == query
    on, off = ranked_with_and_without_it(searcher, query, "hybrid")
    assert on == off


def test_the_command_line_says_what_it_searched(corpus_index: IndexDirectory) -> None:
    result = CliRunner().invoke(cli, ["search", "けいたいそかいせき", "--index", str(corpus_index.path),
                                      "--mode", "keyword", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "searched as: 形態素解析" in result.output and "ja-mecab-fugash" in result.output  # the key, cut to fit


def test_the_server_converts_kana_in_get_search(live_server: RunningServer) -> None:
    response = httpx.get(f"{live_server.url}/search", params={"q": "けいたいそかいせき", "mode": "keyword", "k": 3},
                         timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    hits = body["hits"]
    assert hits and hits[0]["source"] == "ja-mecab-fugashi-unidic.md", [h["source"] for h in hits]
    assert body["read_as"] == "形態素解析"  # what was searched, for the client to show
    assert re.search(r"generation \S+: \d+ kana readings in", live_server.log.read_text())  # built at start
    response = httpx.get(f"{live_server.url}/search", params={"q": "形態素解析", "k": 3}, timeout=60)
    assert response.status_code == 200 and "read_as" not in response.json()  # nothing was read otherwise


@pytest.mark.parametrize("query", ["トークナイザという仕組み", "モデルである", "ファイルとして保存", "これらを比べる"])
def test_kana_the_analyser_reads_as_no_noun_is_left_as_typed(searcher: Searcher, query: str) -> None:
    # という would otherwise read as 問い, として as 都市, これらを as コレラ
    assert searcher.kana_terms(query).terms == ()


def test_an_index_past_the_in_memory_budget_lists_the_same_vocabulary_from_fts5(searcher: Searcher) -> None:
    store = searcher.search_store
    assert isinstance(store, EmbeddedStore) and store.keyword_matrix is not None
    in_memory = store.keyword_vocabulary()
    from_fts5 = store.store.keyword_vocabulary("words")
    assert from_fts5 == in_memory and from_fts5["形態素"] == store.document_frequency("words", "形態素") > 0
    with pytest.raises(ValueError, match="unknown keyword column"):
        store.store.keyword_vocabulary("text")


def test_ask_answers_a_question_typed_in_hiragana(live_server: RunningServer) -> None:
    # 形態素解析器の役割は何ですか, typed by someone without its kanji
    response = httpx.post(f"{live_server.url}/ask", json={"question": "けいたいそかいせきき の やくわり は なんですか"},
                          timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer_found"], body["answer"]
    assert "形態素" in body["answer"]
    assert body["citations"][0]["source"] == "ja-mecab-fugashi-unidic.md"
    assert body["read_as"].startswith("形態素解析")  # what was searched, for the client to show
    written = httpx.post(f"{live_server.url}/ask", json={"question": "形態素解析器の役割は何ですか"}, timeout=120)
    assert written.status_code == 200 and written.json()["read_as"] is None


def test_kana_that_reads_as_exactly_one_kanji_word_is_read_even_where_the_analyser_sees_no_noun(
        searcher: Searcher) -> None:
    # Sudachi reads せいきか as 為る + き + か; it is 正規化, a word the corpus writes in kanji
    assert "正規化" in searcher.kana_terms("せいきか").terms
    hits = searcher.search("せいきか", mode="keyword", k=3)
    assert hits and all("正規化" in hit.text for hit in hits)
