"""API keys restricted by a filter: a key sees its documents and learns nothing of the others.

Two real servers: one over the whole corpus with keys made by `yomitoki keys add`
(an admin key, a key for the English documents, a key for the Japanese ones),
and one, with no keys, over an index built from the English documents alone.
What the English key observes on the first (hits, scores, totals, facets,
answers, citations, refusals, 404s) must equal what anyone observes on the
second: then the Japanese documents cannot have influenced it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.build.builder import IndexBuilder
from indexer.embed.base import Embedder
from indexer.search.searcher import Hit, Searcher
from indexer.store.embedded import EmbeddedStore
from indexer.store.generations import IndexDirectory
from indexer.store.milvus import MilvusIndex
from indexer.store.sqlite import Filters
from indexer.store.where import parse
from indexer.text.keywords import KeywordTokenizer
from server.answering.relevance import RelevanceScorer
from server.auth import KeysFileError, file_keys, hash_line, where_field
from tests.conftest import CORPUS, RunningServer, build, start_server, yomitoki

ENGLISH = {"field": "source", "prefix": "en-"}
QUERIES = ["BM25 keyword search", "hybrid search reciprocal rank fusion", "形態素解析", "Unicode 正規化 NFKC",
           "how are offsets kept after normalization", "量子化",
           # kana is read as the key's words only: 銀座 and 形態素解析 are in Japanese documents alone
           "ぎんざ", "けいたいそかいせき", "ケイタイソカイセキ"]


def add_key(keys_file: Path, name: str, *options: str) -> str:
    done = subprocess.run(yomitoki("keys", "add", name, "--file", str(keys_file), *options),
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    made = {"admin": add_key(keys_file, "deploy", "--scope", "admin"),
            "en": add_key(keys_file, "english-team", "--where", '{"field": "source", "prefix": "en-"}'),
            "ja": add_key(keys_file, "japanese-team", "--where", '{"field": "language", "eq": "ja"}')}
    return keys_file, made


@pytest.fixture(scope="module")
def servers(corpus_index: IndexDirectory, keys: tuple[Path, dict[str, str]], embedder: Embedder,
            keywords: KeywordTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer,
                                                                                                  RunningServer]]:
    english = tmp_path_factory.mktemp("english-corpus")
    for path in CORPUS.glob("en-*"):
        shutil.copy(path, english / path.name)
    index = tmp_path_factory.mktemp("english-index")
    build(english, index, embedder, keywords)
    logs = tmp_path_factory.mktemp("access-logs")
    whole = start_server(corpus_index.path, logs / "whole.log", "--api-keys-file", str(keys[0]))
    try:
        alone = start_server(index, logs / "alone.log")
    except BaseException:
        whole.stop()
        raise
    yield whole, alone
    whole.stop()
    alone.stop()


def call(server: RunningServer, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, **kwargs)


def comparable(body: Any) -> Any:
    """A response without what differs between any two servers: timings, generation names, chunk ids; scores
    to 1e-5 (fusion sums the same floats in another order over another index's rows: the 6th decimal moves)."""
    if isinstance(body, dict):
        return {k: Close(v) if k == "score" else comparable(v) for k, v in body.items()
                if k not in ("took_ms", "retrieval_ms", "generation", "chunk_id", "generation_ms")}
    if isinstance(body, list):
        return [comparable(v) for v in body]
    return body


class Close:
    """A score that equals another within 1e-5."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Close) and abs(self.value - other.value) <= 1e-5

    def __repr__(self) -> str:
        return repr(self.value)


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "dense"])
@pytest.mark.parametrize("query", QUERIES)
def test_a_restricted_key_searches_as_if_only_its_documents_existed(servers, keys, query: str, mode: str) -> None:
    whole, alone = servers
    body = {"query": query, "mode": mode, "k": 5, "offset": 0, "facets": ["tags", "language"],
            "collapse": "document"}
    seen = call(whole, "POST", "/search", keys[1]["en"], json=body)
    expected = call(alone, "POST", "/search", json=body)
    assert seen.status_code == expected.status_code == 200, seen.text
    assert comparable(seen.json()) == comparable(expected.json())
    assert all(hit["source"].startswith("en-") for hit in seen.json()["hits"])


def test_pages_and_the_get_form_obey_the_key(servers, keys) -> None:
    whole, alone = servers
    for offset in (0, 5, 10):
        params = {"q": "search index 検索", "k": 5, "offset": offset}
        seen = call(whole, "GET", "/search", keys[1]["en"], params=params)
        assert comparable(seen.json()) == comparable(call(alone, "GET", "/search", params=params).json())


def test_hidden_documents_are_404_exactly_like_missing_ones(servers, keys) -> None:
    whole, _ = servers
    japanese_ids = set()
    for query in QUERIES:  # ids the Japanese key saw, and the admin key's: what a guesser would try
        for key in (keys[1]["ja"], keys[1]["admin"]):
            found = call(whole, "POST", "/search", key, json={"query": query, "k": 20, "mode": "keyword"})
            japanese_ids |= {h["doc_id"] for h in found.json()["hits"] if not h["source"].startswith("en-")}
    assert len(japanese_ids) >= 5
    missing = call(whole, "GET", "/documents/0000000000000000", keys[1]["en"])
    assert missing.status_code == 404
    for doc_id in japanese_ids:
        assert call(whole, "GET", f"/documents/{doc_id}", keys[1]["ja"]).status_code == 200
        hidden = call(whole, "GET", f"/documents/{doc_id}", keys[1]["en"])
        assert hidden.status_code == 404
        assert hidden.json() == {**missing.json(), "detail": missing.json()["detail"].replace(
            "0000000000000000", doc_id)}
        assert set(hidden.headers) - {"date", "content-length", "x-request-id"} == \
            set(missing.headers) - {"date", "content-length", "x-request-id"}
        # nor can a filter on the id reach it
        by_id = call(whole, "POST", "/search", keys[1]["en"], json={
            "query": "検索", "k": 10, "offset": 0, "facets": ["tags"],
            "filters": {"where": {"field": "doc_id", "eq": doc_id}}})
        assert by_id.json()["hits"] == [] and by_id.json()["total"] == 0 and by_id.json()["facets"] == {"tags": []}


def test_hidden_documents_by_key_and_their_files_are_404_like_missing_ones(servers, keys) -> None:
    whole, _ = servers
    found = call(whole, "POST", "/search", keys[1]["ja"], json={"query": "形態素解析", "k": 5, "mode": "keyword"})
    hidden = [(h["doc_id"], h["key"]) for h in found.json()["hits"]]
    assert hidden
    for doc_id, key in hidden:
        assert call(whole, "GET", "/documents", keys[1]["ja"], params={"key": key}).status_code == 200
        by_key = call(whole, "GET", "/documents", keys[1]["en"], params={"key": key})
        missing = call(whole, "GET", "/documents", keys[1]["en"], params={"key": key + "-nope"})
        assert by_key.status_code == missing.status_code == 404
        assert by_key.json()["detail"] == missing.json()["detail"].replace(key + "-nope", key)
        file = call(whole, "GET", f"/documents/{doc_id}/file", keys[1]["en"])
        assert file.status_code == 404 and file.json()["detail"] == f"no document with id or key {doc_id!r}"
        # the same route for the key that sees it says what the document is instead
        seen = call(whole, "GET", f"/documents/{doc_id}/file", keys[1]["ja"])
        assert "not a PDF, Word, PowerPoint or image file" in seen.text


def test_related_documents_come_from_the_keys_documents_and_a_hidden_one_is_404(servers, keys) -> None:
    whole, alone = servers
    found = call(alone, "POST", "/search", json={"query": "BM25 keyword search", "k": 1}).json()["hits"][0]
    seen = call(whole, "GET", f"/documents/{found['doc_id']}/related", keys[1]["en"], params={"k": 5})
    expected = call(alone, "GET", f"/documents/{found['doc_id']}/related", params={"k": 5})
    assert seen.status_code == expected.status_code == 200, seen.text
    assert comparable(seen.json()) == comparable(expected.json()) and len(seen.json()["hits"]) == 5
    japanese = call(whole, "POST", "/search", keys[1]["ja"], json={"query": "形態素解析", "k": 1}).json()["hits"][0]
    assert call(whole, "GET", f"/documents/{japanese['doc_id']}/related", keys[1]["ja"]).status_code == 200
    hidden = call(whole, "GET", f"/documents/{japanese['doc_id']}/related", keys[1]["en"])
    assert hidden.status_code == 404 and japanese["doc_id"] in hidden.json()["detail"]


def test_health_counts_only_what_the_caller_sees(servers, keys) -> None:
    whole, alone = servers
    figures = ("documents", "chunks")
    everything = call(whole, "GET", "/health", keys[1]["admin"]).json()
    english = call(whole, "GET", "/health", keys[1]["en"]).json()
    expected = call(alone, "GET", "/health").json()
    assert [english[f] for f in figures] == [expected[f] for f in figures]
    assert everything["documents"] > english["documents"] > 0
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):  # public: no key, or an unknown one, gets no counts
        anonymous = httpx.get(f"{whole.url}/health", headers=headers, timeout=60)
        assert anonymous.status_code == 200 and anonymous.json()["status"] == "ok"
        assert [anonymous.json()[f] for f in figures] == [None, None]


def test_metrics_need_a_key_that_sees_the_whole_index(servers, keys) -> None:
    whole, _ = servers
    refused = call(whole, "GET", "/metrics", keys[1]["en"])
    assert refused.status_code == 403 and "access filter" in refused.json()["detail"]
    assert "yomitoki_index_documents" not in refused.text
    assert call(whole, "GET", "/metrics", keys[1]["admin"]).status_code == 200


def test_an_admin_key_cannot_carry_an_access_filter(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    refused = subprocess.run(yomitoki("keys", "add", "ops", "--file", str(keys_file), "--scope", "admin",
                                      "--where", '{"field": "source", "prefix": "ops/"}'),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "an access filter is for read keys" in refused.stderr
    assert not keys_file.exists()
    keys_file.write_text(f"{hash_line('k' * 40, 'admin', 'ops')} {where_field(parse(ENGLISH))}\n", encoding="utf-8")
    with pytest.raises(KeysFileError, match=r"keys.txt:1: an access filter is for read keys"):
        file_keys(keys_file)


# Every route, by what it tells a key restricted by a filter. A route added later must be placed here (and,
# if it reads documents or figures of them, apply `server.access` and be tested above).
ROUTES = {
    "documents": {"/search", "/documents", "/documents/{key:str}", "/documents/{key:str}/file",  # GET
                  "/documents/{key:str}/related",
                  "/ask", "/v1/chat/completions", "/entities/facets"},     # filtered before ranking, tested above
    "figures": {"/health", "/metrics"},                                    # the caller's own counts, or 403
    "writes": {"/documents/{key:str}"},                          # PUT, DELETE: admin keys, which carry no filter
    "no documents": {"/", "/view/{doc_id:str}", "/static/{file_path:path}", "/models", "/v1/models", "/v1/embeddings",
                     "/similarity", "/classify", "/classifiers", "/classifiers/{name:str}", "/entities",
                     "/entity-models", "/entity-models/{name:str}"},
}


def test_every_route_is_placed_for_restricted_keys(corpus_index: IndexDirectory) -> None:
    from server.app import create_app
    from server.settings import ServerSettings

    app = create_app(ServerSettings(index_dir=corpus_index.path))
    paths = {route.path for route in app.routes if not route.path.startswith("/schema")}
    placed = set().union(*ROUTES.values())
    assert paths - placed == set(), "place these routes in ROUTES (and filter them if they read documents)"
    assert placed - paths == set(), "routes that are gone"


def test_the_key_filter_and_the_request_filter_both_apply(servers, keys) -> None:
    whole, _ = servers
    body = {"query": "search", "k": 20, "filters": {"language": "ja"}}
    assert call(whole, "POST", "/search", keys[1]["en"], json=body).json()["hits"] == []
    assert call(whole, "POST", "/search", keys[1]["ja"], json=body).json()["hits"]


@pytest.mark.parametrize("question", ["What does BM25 use besides term frequency?",
                                      "形態素解析器は何をしますか？", "What is the capital of Peru?",
                                      "ぎんざ は どこ ですか"])
def test_answers_citations_and_refusals_come_from_the_keys_documents(servers, keys, question: str) -> None:
    whole, alone = servers
    body = {"question": question, "mode": "extractive", "k": 3}
    seen = call(whole, "POST", "/ask", keys[1]["en"], json=body)
    expected = call(alone, "POST", "/ask", json=body)
    assert seen.status_code == expected.status_code == 200, seen.text
    assert comparable(seen.json()) == comparable(expected.json())


@pytest.mark.parametrize("question", ["What does BM25 use besides term frequency?", "形態素解析器は何をしますか？"])
def test_chat_completions_answer_from_the_keys_documents(servers, keys, question: str) -> None:
    whole, alone = servers
    body = {"model": "yomitoki-rag", "messages": [{"role": "user", "content": question}],
            "yomitoki": {"mode": "extractive", "k": 3}}
    seen = call(whole, "POST", "/v1/chat/completions", keys[1]["en"], json=body)
    expected = call(alone, "POST", "/v1/chat/completions", json=body)
    assert seen.status_code == expected.status_code == 200, seen.text
    strip = ("id", "created")
    assert comparable({k: v for k, v in seen.json().items() if k not in strip}) == \
        comparable({k: v for k, v in expected.json().items() if k not in strip})
    assert all(source["source"].startswith("en-") for source in seen.json()["yomitoki"]["sources"])


def test_a_bad_filter_is_a_400_naming_the_field(servers, keys) -> None:
    whole, _ = servers
    response = call(whole, "POST", "/search", keys[1]["admin"], json={
        "query": "search", "filters": {"where": {"and": [{"field": "metadata.year", "gte": "soon"}]}}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("filters.where.and[0].gte: 'soon' is neither a number")
    facet = call(whole, "POST", "/search", keys[1]["admin"], json={"query": "search", "facets": ["colour"]})
    assert facet.status_code == 400 and facet.json()["detail"].startswith("facets[0]: unknown field 'colour'")


def test_keys_are_listed_and_removed_without_showing_them(keys) -> None:
    keys_file, made = keys
    text = keys_file.read_text()
    assert all(key not in text for key in made.values())
    listed = subprocess.run(yomitoki("keys", "list", "--file", str(keys_file)), capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "english-team\tread\t" in listed and '"prefix": "en-"' in listed
    copy = keys_file.with_name("copy.txt")
    shutil.copy(keys_file, copy)
    subprocess.run(yomitoki("keys", "remove", "japanese-team", "--file", str(copy)), check=True, timeout=60,
                   capture_output=True)
    assert "japanese-team" not in copy.read_text() and "english-team" in copy.read_text()
    bad = subprocess.run(yomitoki("keys", "add", "x", "--file", str(copy), "--where", '{"field": "colour"}'),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown field" in bad.stderr and "where.field" in bad.stderr
    named = subprocess.run(yomitoki("keys", "add", "人事チーム", "--file", str(copy)), capture_output=True, text=True,
                           timeout=60)
    assert named.returncode == 2 and "ASCII letters" in named.stderr, named.stderr
    absent = subprocess.run(yomitoki("keys", "list", "--file", str(keys_file.with_name("typo.txt"))),
                            capture_output=True, text=True, timeout=60)
    assert absent.returncode == 1 and "no keys file at" in absent.stderr, absent.stderr


# ---- in process, on both stores: statistics that count only what a key sees ------------------------------------

# A key that sees the English documents and some Japanese ones: 三行 is in one document it sees
# (ja-summarization) and one it does not (ja-unicode-nfkc), 二文 only in one it sees.
SEEN_JAPANESE = ["ja-summarization.md", "ja-semantic-similarity.md", "ja-sudachi-split-modes.md",
                 "ja-why-no-spaces.md", "ja-hybrid-search.md", "ja-embedding-vectors.md"]
MIXED = {"or": [ENGLISH, {"field": "source", "in": SEEN_JAPANESE}]}
STORE_QUERIES = ["三行", "二文", "形態素解析 辞書", "BM25 keyword search", "ハイブリッド検索 BM25",
                 "Unicode 正規化 NFKC", "文の要約"]


@pytest.fixture(scope="module", params=["embedded", "milvus"])
def views(request: pytest.FixtureRequest, embedder: Embedder, keywords: KeywordTokenizer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Searcher, Searcher]]:
    """(the whole corpus, an index of only what the MIXED filter lets through), on one store."""
    folder = tmp_path_factory.mktemp(f"views-{request.param}")
    seen = folder / "seen"
    seen.mkdir()
    for path in CORPUS.iterdir():
        if path.name.startswith("en-") or path.name in SEEN_JAPANESE:
            shutil.copy(path, seen / path.name)
    searchers = []
    for name, corpus in (("whole", CORPUS), ("seen", seen)):
        target = (IndexDirectory(folder / name) if request.param == "embedded"
                  else MilvusIndex(str(folder / f"{name}.db"), name))
        IndexBuilder(target, embedder, keywords).build(corpus)
        searchers.append(Searcher(target.current(), embedder))
    yield searchers[0], searchers[1]
    for searcher in searchers:
        searcher.close()


def observed(hits: list[Hit]) -> list[tuple[str, int, int]]:
    return [(hit.source, hit.start, hit.end) for hit in hits]


def key_filters(access: bool = True) -> Filters:
    return Filters().restricted(parse(MIXED), access=access)


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_keyword_statistics_under_a_key_count_only_its_documents(views, mode: str) -> None:
    """BM25 (IDF, average length) and the compound boost's IDF, on both stores: equal to an index of the key's
    documents alone; the whole index's statistics give other scores, so hidden documents would show."""
    whole, seen = views
    shifted = 0
    for query in STORE_QUERIES:
        mine = whole.find(query, mode=mode, k=10, offset=0, filters=key_filters(), facets=["language"])
        alone = seen.find(query, mode=mode, k=10, offset=0, facets=["language"])
        assert observed(mine.hits) == observed(alone.hits), query
        assert [h.score for h in mine.hits] == pytest.approx([h.score for h in alone.hits], rel=1e-5), query
        assert (mine.total, mine.facets) == (alone.total, alone.facets), query
        whole_statistics = whole.find(query, mode=mode, k=10, offset=0, filters=key_filters(access=False))
        shifted += [h.score for h in whole_statistics.hits] != pytest.approx([h.score for h in alone.hits], rel=1e-5)
    if mode == "keyword":  # hybrid's scores are RRF's, of ranks: they move less often
        assert shifted >= 3


def test_compound_weights_under_a_key_count_only_its_documents(views) -> None:
    whole, seen = views
    for compound in ("三行", "二文"):
        ranked = [(hit.chunk_id, 0.0) for hit in whole.search(compound, mode="keyword", k=50, filters=key_filters())]
        boosted = dict(whole._boost_compounds(ranked, [compound], key_filters().statistics))
        ranked_alone = [(hit.chunk_id, 0.0) for hit in seen.search(compound, mode="keyword", k=50)]
        alone = dict(seen._boost_compounds(ranked_alone, [compound]))
        assert sorted(boosted.values()) == pytest.approx(sorted(alone.values()), rel=1e-9)
        unscoped = dict(whole._boost_compounds(ranked, [compound]))
        assert sorted(unscoped.values()) != pytest.approx(sorted(alone.values()), rel=1e-6)


def test_fts5_past_the_memory_budget_scores_a_key_alike(views) -> None:
    """An index too big for the in-memory postings scores in FTS5, whose BM25 counts every row: under a key
    it is computed from the visible rows instead, to the same scores."""
    whole, seen = views
    if not isinstance(whole.search_store, EmbeddedStore):
        pytest.skip("the embedded store only")
    big = Searcher(whole.generation, whole.embedder)
    assert isinstance(big.search_store, EmbeddedStore)
    big.search_store.keyword_matrix = None
    try:
        for query in STORE_QUERIES:
            mine = big.find(query, mode="keyword", k=10, offset=0, filters=key_filters())
            alone = seen.find(query, mode="keyword", k=10, offset=0)
            assert observed(mine.hits) == observed(alone.hits), query
            assert [h.score for h in mine.hits] == pytest.approx([h.score for h in alone.hits], rel=1e-6), query
    finally:
        big.close()


@pytest.mark.parametrize("question", ["三行で要約するには？", "What does BM25 use besides term frequency?",
                                      "形態素解析器の辞書はどう違いますか"])
def test_answer_relevance_weighs_terms_by_the_keys_documents(views, question: str) -> None:
    """The relevance that picks answer sentences and decides refusals weighs terms by IDF: the key's own."""
    whole, seen = views
    mine = RelevanceScorer(whole, scope=key_filters().statistics).profile(question)
    alone = RelevanceScorer(seen).profile(question)
    assert mine.words == pytest.approx(alone.words) and mine.grams == pytest.approx(alone.grams)
    everyone = RelevanceScorer(whole).profile(question)
    assert (everyone.words, everyone.grams) != (pytest.approx(alone.words), pytest.approx(alone.grams))


def test_counts_under_a_key_are_those_of_its_documents(views) -> None:
    whole, seen = views
    assert whole.search_store.counts(key_filters()) == seen.search_store.counts()
    assert whole.search_store.vector_count(key_filters()) == seen.search_store.vector_count()
