"""`where` filters, pages, facets and collapsing, the same on both stores (FAISS + SQLite, and Milvus Lite).

Every expectation is computed from the records themselves with `indexer.store.where.evaluate`
(or plain Python), never copied from an earlier run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from indexer.build.builder import IndexBuilder
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher, facet_values
from indexer.store.generations import IndexDirectory
from indexer.store.identity import document_id
from indexer.store.milvus import MilvusIndex
from indexer.store.sqlite import Filters
from indexer.store.where import FilterError, evaluate, parse
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import build

TEAMS: list[Any] = ["hr", "eng", ["hr", "eng"], "legal", None]
ANIMALS = ["walrus", "penguin", "owl", "otter", "heron"]


def records() -> list[dict[str, Any]]:
    """36 reports whose metadata mixes kinds on purpose: numbers, a year kept as text, dates, lists, gaps."""
    out = []
    for i in range(36):
        metadata: dict[str, Any] = {"tags": [ANIMALS[i % 5], "even" if i % 2 == 0 else "odd"]}
        if i % 7 != 3:
            metadata["year"] = 2015 + i % 10 if i % 11 != 5 else str(2015 + i % 10)
        if i % 4 != 1:
            metadata["published"] = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        if TEAMS[i % 5] is not None:
            metadata["team"] = TEAMS[i % 5]
        if i % 3 != 2:
            metadata["draft"] = i % 3 == 0
        metadata["score"] = round(i * 0.25, 2)
        metadata["owner"] = {"name": ["aiko", "ben", "chen"][i % 3]}
        animal = ANIMALS[i % 5]
        out.append({"id": f"r{i:02d}", "title": f"Report {i} on the {animal}",
                    "text": f"Field report {i}. The {animal} was seen near the river at dawn; "
                            f"report number {i} notes its feeding habits and the weather.",
                    "metadata": metadata})
    return out


@pytest.fixture(scope="module")
def report_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    lines = [json.dumps(r, ensure_ascii=False) for r in records()]
    (folder / "reports.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes").mkdir()
    (folder / "notes" / "river.md").write_text("---\ntags: river\n---\n# River notes\n\nA field report "
                                                "about the river.\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=["embedded", "milvus"])
def report_searcher(request: pytest.FixtureRequest, report_corpus: Path, embedder: Embedder,
                    keywords: KeywordTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    folder = tmp_path_factory.mktemp(f"reports-{request.param}")
    target = (IndexDirectory(folder / "index") if request.param == "embedded"
              else MilvusIndex(str(folder / "reports.db"), "reports"))
    IndexBuilder(target, embedder, keywords).build(report_corpus)
    searcher = Searcher(target.current(), embedder)
    yield searcher
    searcher.close()


def all_documents(searcher: Searcher) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
    """doc id -> (title, source, language, metadata) of every document, through a dense search of all."""
    results = searcher.find("field report", mode="dense", k=1000, offset=0, collapse=True)
    ids = [hit.doc_id for hit in results.hits]
    return searcher.search_store.documents_brief(ids)


def expected(searcher: Searcher, where: dict[str, Any]) -> set[str]:
    tree = parse(where)
    return {doc_id for doc_id, (_, source, language, metadata, _key) in all_documents(searcher).items()
            if evaluate(tree, doc_id, source, language, metadata)}


FILTERS = [
    {"field": "metadata.team", "eq": "hr"},                        # a scalar, and a list holding it
    {"field": "metadata.year", "eq": 2021},                        # a number; "2021" as text is not it
    {"field": "metadata.year", "eq": "2020"},
    {"field": "metadata.draft", "eq": True},
    {"field": "metadata.draft", "eq": False},
    {"field": "metadata.team", "in": ["legal", "eng"]},
    {"field": "metadata.year", "in": [2016, 2018, "2020"]},
    {"field": "metadata.year", "gt": 2020},
    {"field": "metadata.year", "gte": 2020},
    {"field": "metadata.year", "lt": 2017},
    {"field": "metadata.year", "lte": 2017},
    {"field": "metadata.score", "gte": 3.5},
    {"field": "metadata.published", "gte": "2024-06-01"},
    {"field": "metadata.published", "lt": "2024-03-15"},
    {"field": "metadata.year", "exists": True},
    {"field": "metadata.year", "exists": False},
    {"field": "metadata.owner.name", "eq": "ben"},
    {"field": "tags", "eq": "walrus"},
    {"field": "tags", "in": ["owl", "heron"]},
    {"field": "source", "prefix": "notes/"},
    {"field": "source", "eq": "notes/river.md"},
    {"field": "language", "eq": "en"},
    {"field": "doc_id", "in": ["nope"]},
    {"field": "doc_id", "eq": document_id("r07")},
    {"field": "key", "eq": "r11"},
    {"field": "tags", "exists": True},
    {"field": "tags", "exists": False},
    {"field": "source", "in": ["notes/river.md", "notes/nowhere.md"]},
    {"field": "language", "in": ["en", "ja"]},
    {"field": "language", "eq": "ja"},
    {"and": [{"field": "metadata.year", "gte": 2018}, {"field": "tags", "eq": "even"}]},
    {"or": [{"field": "metadata.team", "eq": "legal"}, {"field": "metadata.score", "lt": 1}]},
    {"not": {"field": "metadata.year", "gte": 2020}},              # unknown (no year, or year as text) stays out
    {"not": {"field": "metadata.team", "eq": "hr"}},
    {"not": {"field": "tags", "eq": "odd"}},
    {"or": [{"not": {"field": "metadata.year", "exists": True}}, {"field": "metadata.year", "lt": 2016}]},
    {"field": "metadata.year", "lt": 2**63 - 1},  # the largest whole number SQLite holds
    {"field": "metadata.year", "gt": 1e30},
]


@pytest.mark.parametrize("where", FILTERS, ids=[json.dumps(f, ensure_ascii=False) for f in FILTERS])
@pytest.mark.parametrize("mode", ["dense", "keyword"])
def test_each_operator_keeps_exactly_the_matching_documents(report_searcher: Searcher, where: dict[str, Any],
                                                           mode: str) -> None:
    wanted = expected(report_searcher, where)
    results = report_searcher.find("field report river", mode=mode, k=100, offset=0, collapse=True,
                                   filters=Filters(expression=parse(where)))
    assert {hit.doc_id for hit in results.hits} == wanted
    assert results.total == len(wanted)


def test_k_hits_come_back_when_k_pass_a_selective_filter(report_searcher: Searcher) -> None:
    where = parse({"field": "metadata.owner.name", "eq": "chen"})
    for mode in ("dense", "keyword", "hybrid"):
        hits = report_searcher.search("walrus report", mode=mode, k=10, filters=Filters(expression=where))
        assert len(hits) == 10, mode
        assert all(h.metadata["owner"]["name"] == "chen" for h in hits)


def test_tags_match_whatever_their_case(report_searcher: Searcher) -> None:
    def found(filters: Filters) -> set[str]:
        return {h.doc_id for h in report_searcher.find("walrus report", mode="keyword", k=100, offset=0,
                                                       filters=filters).hits}

    lower = found(Filters(expression=parse({"field": "tags", "eq": "walrus"})))
    assert lower and found(Filters(expression=parse({"field": "tags", "eq": "Walrus"}))) == lower
    assert found(Filters(tags=("WALRUS",))) == found(Filters(tags=("walrus",))) == lower
    # and whatever their width: a Japanese keyboard types ＷＡＬＲＵＳ
    assert found(Filters(expression=parse({"field": "tags", "in": ["ＷＡＬＲＵＳ"]}))) == lower
    assert found(Filters(tags=("ｗａｌｒｕｓ",))) == lower


def test_the_old_filters_and_where_combine(report_searcher: Searcher) -> None:
    filters = Filters(tags=("walrus",), expression=parse({"field": "metadata.year", "exists": True}))
    hits = report_searcher.find("report", mode="keyword", k=100, offset=0, filters=filters).hits
    assert hits and all("walrus" in h.metadata["tags"] and "year" in h.metadata for h in hits)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_pages_cover_the_result_set_once_in_a_stable_order(report_searcher: Searcher, mode: str) -> None:
    whole = report_searcher.find("walrus report at dawn", mode=mode, k=1000, offset=0)
    seen = []
    for offset in range(0, whole.total + 7, 7):
        page = report_searcher.find("walrus report at dawn", mode=mode, k=7, offset=offset)
        assert page.total == whole.total
        seen += [h.chunk_id for h in page.hits]
    assert seen == [h.chunk_id for h in whole.hits]
    assert len(seen) == len(set(seen)) == whole.total > 7


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_pages_of_a_filtered_collapsed_set_cover_it_once(report_searcher: Searcher, mode: str) -> None:
    where = {"or": [{"field": "tags", "eq": "even"}, {"field": "source", "prefix": "notes/"}]}
    filters = Filters(expression=parse(where))
    whole = report_searcher.find("river report", mode=mode, k=1000, offset=0, collapse=True, filters=filters)
    seen = []
    for offset in range(0, whole.total + 5, 5):
        page = report_searcher.find("river report", mode=mode, k=5, offset=offset, collapse=True, filters=filters)
        assert page.total == whole.total
        seen += [h.doc_id for h in page.hits]
    assert seen == [h.doc_id for h in whole.hits]
    assert len(seen) == len(set(seen)) == whole.total == len(expected(report_searcher, where))


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_facets_count_the_whole_filtered_result_set(report_searcher: Searcher, mode: str) -> None:
    where = {"field": "metadata.year", "gte": 2018}
    fields = ["tags", "metadata.team", "metadata.year", "language", "metadata.owner.name", "source", "doc_id", "key"]
    results = report_searcher.find("field report", mode=mode, k=3, offset=0, facets=fields,
                                   filters=Filters(expression=parse(where)))
    assert len(results.hits) == 3  # one page; the counts cover every document that passes
    documents = all_documents(report_searcher)
    passing = expected(report_searcher, where)
    for field in fields:
        counts: Counter[Any] = Counter()
        for doc_id in passing:
            _, source, language, metadata, key = documents[doc_id]
            counts.update(facet_values(field, source, language, metadata, doc_id=doc_id, key=key))
        assert dict(results.facets[field]) == dict(counts), field
    assert len(results.facets["doc_id"]) == min(len(passing), 100) and results.facets["key"], results.facets


def test_collapse_gives_each_document_once_with_its_other_chunks(report_searcher: Searcher) -> None:
    plain = report_searcher.find("river report", mode="keyword", k=1000, offset=0)
    collapsed = report_searcher.find("river report", mode="keyword", k=1000, offset=0, collapse=True)
    per_doc = Counter(h.doc_id for h in plain.hits)
    assert [h.doc_id for h in collapsed.hits] == list(dict.fromkeys(h.doc_id for h in plain.hits))
    assert {h.doc_id: h.more + 1 for h in collapsed.hits} == dict(per_doc)
    assert collapsed.total == len(per_doc)


@pytest.mark.parametrize(("where", "place"), [
    ({"field": "metadata.year", "gte": "last year"}, "where.gte"),
    ({"field": "colour", "eq": "red"}, "where.field"),
    ({"field": "metadata.year", "between": [1, 2]}, "where.between"),
    ({"field": "source", "gt": 3}, "where.gt"),
    ({"and": [{"field": "tags", "eq": 3}]}, "where.and[0].eq"),
    ({"and": []}, "where.and"),
    ({"or": [{"field": "metadata.a b", "exists": True}]}, "where.or[0].field"),
    ({"field": "metadata.year", "eq": 1, "gt": 0}, "where"),
    ({"not": [1]}, "where.not"),
    ({"field": "metadata.x", "in": []}, "where.in"),
    ({"field": "metadata.x", "exists": "yes"}, "where.exists"),
    ({"field": "metadata.year", "eq": 2**63}, "where.eq"),  # past SQLite's whole numbers
    ({"field": "metadata.year", "in": [1, -(2**63) - 1]}, "where.in[1]"),
    ({"field": "metadata.year", "lt": 10**20}, "where.lt"),
])
def test_a_bad_filter_names_its_place_and_reason(where: dict[str, Any], place: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(where)
    assert caught.value.path == place
    assert str(caught.value).startswith(f"{place}: ") and len(caught.value.reason) > 10


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_a_key_filter_keeps_exactly_the_records_with_those_keys(report_searcher: Searcher, mode: str) -> None:
    where = parse({"or": [{"field": "key", "in": ["r03", "r17"]}, {"field": "key", "eq": "notes/river.md"}]}, "where")
    results = report_searcher.find("field report river", mode=mode, k=50, offset=0,
                                   filters=Filters(expression=where))
    assert sorted({hit.key for hit in results.hits}) == ["notes/river.md", "r03", "r17"]


@contextmanager
def searcher_of(files: dict[str, str], tmp_path: Path, embedder: Embedder,
                keywords: KeywordTokenizer) -> Iterator[Searcher]:
    """A Searcher over an index built from these files (name -> text)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in files.items():
        (corpus / name).write_text(text)
    build(corpus, tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        yield searcher
    finally:
        searcher.close()


def test_a_number_that_is_not_finite_is_kept_as_null_so_metadata_filters_still_work(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    """One `.inf` in one file's front matter once made every metadata filter on the index a 500."""
    files = {"a.md": "---\nscore: .inf\nv: .nan\nyear: 2020\n---\n# Inf\n\nBM25 ranking notes.\n",
             "b.md": "---\nyear: 2021\n---\n# Other\n\nMore BM25 search notes.\n",
             "c.jsonl": '{"id": "c", "text": "BM25 in JSON.", "metadata": {"x": NaN, "l": [Infinity]}}\n'}
    with searcher_of(files, tmp_path, embedder, keywords) as searcher:
        hits = searcher.search("BM25", mode="keyword", k=5,
                               filters=Filters(expression=parse({"field": "metadata.year", "gte": 2021})))
        assert [hit.key for hit in hits] == ["b.md"]
        metadata = {hit.key: hit.metadata for hit in searcher.search("BM25", mode="keyword", k=5)}
        assert (metadata["a.md"]["score"], metadata["a.md"]["v"]) == (None, None)
        assert (metadata["c"]["x"], metadata["c"]["l"]) == (None, [None])


def test_a_metadata_in_filter_with_a_thousand_values_of_every_kind(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    """Each value was one OR'ed test: past about 350 SQLite refused the expression as too deep (a 500)."""
    files = {name: f"---\nyear: {year}\n---\n# {name}\n\nBM25 notes.\n"
             for name, year in (("a.md", "2020"), ("b.md", "[1999, 2021]"), ("c.md", "draft"), ("d.md", "true"))}
    with searcher_of(files, tmp_path, embedder, keywords) as searcher:

        def keys(values: list[Any]) -> list[str]:
            where = parse({"field": "metadata.year", "in": values})
            return sorted(hit.key for hit in searcher.search("BM25", mode="keyword", k=10,
                                                             filters=Filters(expression=where)))

        assert keys([*range(3000, 3997), 2021, "draft", True]) == ["b.md", "c.md", "d.md"]
        assert keys([*(str(n) for n in range(999)), 2020.0]) == ["a.md"]  # 2020 as a real: equal
        assert keys(["2020"]) == [] and keys([False]) == []  # a text never equals a number, false not true
