"""Japanese compounds the analyser splits: ranked as typed, highlighted as typed.

二文 is analysed as 二 (normalized to 2) + 文, and 三行 as 3 + 行; alone, 文 is in
every other sentence and 3 in every ③. The documents that hold the compound
itself must come first, and highlights must mark the compound, never a lone
piece or a character the analyser normalized.
"""

from __future__ import annotations

import pytest

from indexer.search.searcher import Searcher
from tests.conftest import CORPUS


def holding(text: str) -> set[str]:
    return {p.name for p in CORPUS.glob("*.md") if text in p.read_text(encoding="utf-8")}


@pytest.mark.parametrize("compound", ["二文", "三行"])
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_documents_holding_the_compound_come_first(searcher: Searcher, compound: str, mode: str) -> None:
    wanted = holding(compound)
    assert wanted and len(wanted) < 5, "the corpus no longer tests this compound"
    assert searcher.compound_boost  # on by default
    hits = searcher.find(compound, mode=mode, k=len(wanted), offset=0, collapse=True).hits
    assert {hit.source for hit in hits} == wanted


@pytest.mark.parametrize("compound", ["二文", "三行"])
def test_highlights_mark_the_compound_as_typed(searcher: Searcher, compound: str) -> None:
    hits = searcher.search(compound, mode="keyword", k=20)
    marked = set()
    for hit in hits:
        document = searcher.document(hit.doc_id)
        assert document is not None
        marked |= {document.text[start:end] for start, end in hit.highlights}
    assert compound in marked
    assert marked <= {compound, *(compound[i : i + 2] for i in range(len(compound) - 1))}, marked


def test_the_pieces_of_a_compound_still_match_alone_when_typed_alone(searcher: Searcher) -> None:
    hits = searcher.search("文", mode="keyword", k=3)
    assert hits and all(any(searcher.document(h.doc_id).text[s:e] == "文" for s, e in h.highlights) for h in hits)


def test_words_the_analyser_keeps_whole_are_not_compounds(searcher: Searcher) -> None:
    assert searcher.compounds("形態素解析とは") == ()
    assert searcher.compounds("二文") == ((0, 2),)
    assert searcher.compounds("三行で要約する") == ((0, 2),)
    assert searcher.compounds("BM25 と 二文") == ((7, 9),)


def test_a_word_written_another_way_is_highlighted_where_the_index_matched_it(
        tmp_path, embedder, keywords) -> None:  # type: ignore[no-untyped-def]
    """The index reads 附属 as 付属, 打合せ as 打ち合わせ and 吾輩 as わがはい: a hit shows the word that matched."""
    from indexer.store.generations import IndexDirectory
    from tests.conftest import build

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "d.md").write_text("本書の附属資料を参照のこと。会議の打合せは来週行う。\n", encoding="utf-8")
    (corpus / "e.md").write_text("吾輩は猫である。名前はまだ無い。\n", encoding="utf-8")
    build(corpus, tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        for query, marked in (("付属", "附属"), ("打ち合わせ", "打合せ"), ("わがはい", "吾輩")):
            [hit] = searcher.search(query, mode="keyword", k=5)
            assert [hit.text[s - hit.start : e - hit.start] for s, e in hit.highlights] == [marked], (query, hit)
    finally:
        searcher.close()


@pytest.fixture(scope="module")
def dated_minutes(tmp_path_factory, embedder, keywords):  # type: ignore[no-untyped-def]
    """Minutes and rules that write dates and article numbers in digits beside kanji, among others that hold
    the same kanji (月, 条, 第) many times over."""
    from indexer.store.generations import IndexDirectory
    from tests.conftest import build

    root = tmp_path_factory.mktemp("dated")
    corpus = root / "corpus"
    corpus.mkdir()
    documents = {
        "march.md": "# 定例会議\n\n2024年3月5日に定例会議を開いた。予算の見直しを議論した。\n",
        "november.md": "# 全社総会\n\n11月の全社総会では、来月の月次報告と月末の締めを確認した。\n",
        "monthly.md": "# 支払\n\n毎月２５日に支払う。月末が休日なら前日とし、月初の請求書は月内に処理する。\n",
        "december.md": "# 総会\n\n令和五年十二月の総会は月曜に開く。九月一日から五月まで、月ごとに集計する。\n",
        "article-3.md": "# 就業規則\n\n第3条（勤務時間）始業は9時、終業は18時とする。\n",
        "article-2.md": "# 就業規則\n\n第2条（適用範囲）この規則は第3章に定める条件を満たす従業員に適用する。"
                        "各条の細則は別に定める。\n",
        "article-10.md": "# 就業規則\n\n第10条（休暇）休暇は１０日とする。第1条から第9条の定めは条文どおりとする。\n",
    }
    for name, text in documents.items():
        (corpus / name).write_text(text, encoding="utf-8")
    build(corpus, root / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(root / "index").current(), embedder)
    yield searcher
    searcher.close()


@pytest.mark.parametrize(("query", "first"), [
    ("3月", "march.md"), ("第3条", "article-3.md"), ("就業規則 第3条", "article-3.md"), ("第10条", "article-10.md"),
    ("11月", "november.md"),
])
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_digits_written_against_kanji_rank_as_typed(dated_minutes: Searcher, query: str, first: str,
                                                   mode: str) -> None:
    """3月 and 第3条 are analysed as 3 + 月 and 第 + 3 + 条: the document that writes them comes first, not those
    that hold 月 or 条 most often."""
    hits = dated_minutes.find(query, mode=mode, k=3, offset=0, collapse=True).hits
    assert hits[0].source == first, [hit.source for hit in hits]


def test_digits_against_kanji_are_highlighted_whole_and_never_inside_a_longer_number(
        dated_minutes: Searcher) -> None:
    assert dated_minutes.compounds("3月") == ((0, 2),)
    assert dated_minutes.compounds("就業規則 第3条") == ((5, 8),)
    assert dated_minutes.compounds("iPhone 15") == ()
    marked = {hit.source: [hit.text[s - hit.start : e - hit.start] for s, e in hit.highlights]
              for hit in dated_minutes.search("1月", mode="keyword", k=10)}
    assert all(text == "1月" for texts in marked.values() for text in texts), marked  # not 11月, not a lone 月
    [march] = [hit for hit in dated_minutes.search("3月", mode="keyword", k=10) if hit.source == "march.md"]
    assert [march.text[s - march.start : e - march.start] for s, e in march.highlights] == ["3月"]
