"""The same search behaviour on both backends: FAISS + SQLite (embedded) and Milvus (Lite, in-process).

Milvus Lite admits one process per file, but the process holding it serves it
over gRPC (`lite_endpoint`), so the stateless-serving test runs two real
`yomitoki serve --milvus-uri http://127.0.0.1:PORT` processes against it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from indexer.build.builder import IndexBuilder, document_id
from indexer.embed.base import Embedder
from indexer.search.rerank import Reranking, load_reranker
from indexer.search.searcher import MODES, Searcher
from indexer.store.factory import open_target
from indexer.store.generations import KEEP_GENERATIONS, IndexDirectory
from indexer.store.milvus import (
    MilvusIndex,
    MilvusUnavailableError,
    collection_name,
    connect,
    filter_expression,
    lite_endpoint,
    release,
    string_literal,
)
from indexer.store.sqlite import Filters
from indexer.store.where import parse
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.cli import cli
from server.settings import ServerSettings
from tests.conftest import CORPUS, start_server
from tests.task_models import save_tiny_cross_encoder

STORES = ["embedded", "milvus"]


def files_containing(word: str) -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.md") if word in p.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def milvus_corpus(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                  keywords: KeywordTokenizer) -> MilvusIndex:
    """The default corpus indexed into a Milvus Lite file (read-only for tests)."""
    target = MilvusIndex(str(tmp_path_factory.mktemp("milvus") / "corpus.db"), "corpus")
    IndexBuilder(target, embedder, keywords).build(CORPUS)
    return target


@pytest.fixture(scope="module", params=STORES)
def backend_searcher(request: pytest.FixtureRequest, embedder: Embedder) -> Iterator[Searcher]:
    source = request.getfixturevalue("corpus_index" if request.param == "embedded" else "milvus_corpus")
    searcher = Searcher(source.current(), embedder)
    yield searcher
    searcher.close()


def small_target(kind: str, tmp_path: Path) -> IndexDirectory | MilvusIndex:
    if kind == "embedded":
        return IndexDirectory(tmp_path / "index")
    return MilvusIndex(str(tmp_path / "small.db"), "small")


def write_corpus(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


SMALL = {
    "a_b.md": "# Walrus notes\n\nThe walrus sleeps on floating ice near Svalbard.\n",
    "aXb.md": "# Penguin notes\n\nEmperor penguins huddle through the polar winter.\n",
    'q"uote%.md': "---\ntags: birds\n---\n# 渡り鳥\n\n銀座の空を渡り鳥が飛ぶ。ツバメは春に来る。\n",
    'q"uoteZ.md': "# Owls\n\nThe barn owl hunts voles at night.\n",
}


# ---- the default corpus, on each backend ---------------------------------------------------------------------


@pytest.mark.parametrize("word", ["銀座", "東京"])
def test_a_word_in_one_document_finds_it_first(backend_searcher: Searcher, word: str) -> None:
    owners = files_containing(word)
    assert len(owners) == 1
    for mode in ("keyword", "hybrid"):
        hits = backend_searcher.search(word, mode=mode, k=5)
        assert hits and hits[0].source == owners[0], (mode, [h.source for h in hits])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", ["reciprocal rank fusion", "ＮＦＫＣ 正規化", "how are chunks embedded"])
def test_hits_point_into_the_original_text(backend_searcher: Searcher, mode: str, query: str) -> None:
    hits = backend_searcher.search(query, mode=mode, k=5)
    assert hits
    for hit in hits:
        original = (CORPUS / hit.source).read_text(encoding="utf-8")
        assert original[hit.start : hit.end] == hit.text
        document = backend_searcher.document(hit.doc_id)
        assert document is not None and document.text == original
        for start, end in hit.highlights:
            assert hit.start <= start < end <= hit.end


@pytest.mark.parametrize("filters", [Filters(language="ja"), Filters(language="en"), Filters(source="ja-"),
                                     Filters(tags=("bm25",)), Filters(source="en-", tags=("search",))])
@pytest.mark.parametrize("mode", MODES)
def test_filters_hold_on_every_hit(backend_searcher: Searcher, filters: Filters, mode: str) -> None:
    hits = backend_searcher.search("search index 検索", mode=mode, k=10, filters=filters)
    assert hits
    for hit in hits:
        assert filters.language is None or hit.language == filters.language
        assert filters.source is None or hit.source.startswith(filters.source)
        assert not filters.tags or set(filters.tags) & set(hit.metadata.get("tags", []))


def test_both_backends_rank_alike(searcher: Searcher, milvus_corpus: MilvusIndex, embedder: Embedder) -> None:
    milvus = Searcher(milvus_corpus.current(), embedder)
    assert milvus.search_store.counts() == searcher.search_store.counts()
    for query in ["hybrid search with reciprocal rank fusion", "東京の銀座", "offset mapping after NFKC"]:
        dense = [h.chunk_id for h in searcher.search(query, mode="dense", k=10)]
        assert [h.chunk_id for h in milvus.search(query, mode="dense", k=10)] == dense  # exact search on both
        for mode in ("keyword", "hybrid"):
            ours = [h.chunk_id for h in searcher.search(query, mode=mode, k=5)]
            theirs = [h.chunk_id for h in milvus.search(query, mode=mode, k=5)]
            assert ours[0] == theirs[0] and len(set(ours) & set(theirs)) >= 3, (query, mode, ours, theirs)
    ids = [h.chunk_id for h in searcher.search("BM25", mode="keyword", k=5)]
    embedded_vectors = searcher.search_store.stored_vectors(ids)
    milvus_vectors = milvus.search_store.stored_vectors(ids)
    assert embedded_vectors is not None and milvus_vectors is not None
    assert np.allclose(embedded_vectors, milvus_vectors, atol=1e-6)
    for term in ("index", "bm25", "銀座"):
        column = "words"
        frequency = searcher.search_store.document_frequency(column, term)
        assert milvus.search_store.document_frequency(column, term) == frequency


def test_a_reranker_reads_the_same_passages_from_milvus(searcher: Searcher, milvus_corpus: MilvusIndex,
                                                        embedder: Embedder, tmp_path: Path) -> None:
    """Reranking reads chunks and titles through the store protocol: Milvus gives the same order and scores."""
    reranking = Reranking(load_reranker(str(save_tiny_cross_encoder(tmp_path / "reranker"))), depth=8)
    milvus = Searcher(milvus_corpus.current(), embedder)
    for query in ["hybrid search with reciprocal rank fusion", "東京の銀座"]:
        ours = searcher.search(query, mode="dense", k=10, reranking=reranking)  # dense: exact on both stores
        theirs = milvus.search(query, mode="dense", k=10, reranking=reranking)
        assert [(h.chunk_id, h.rerank_score) for h in theirs] == [(h.chunk_id, h.rerank_score) for h in ours]
        assert all(h.rerank_score is not None for h in theirs[:8]), theirs


def test_related_documents_are_the_same_from_milvus(searcher: Searcher, milvus_corpus: MilvusIndex,
                                                    embedder: Embedder) -> None:
    """`related` reads a document's chunk ids and vectors through the store protocol (dense search is exact)."""
    milvus = Searcher(milvus_corpus.current(), embedder)
    for key in ("en-bm25.md", "ja-hybrid-search.md"):
        doc = document_id(key)
        assert milvus.search_store.document_chunk_ids(doc) == searcher.search_store.document_chunk_ids(doc) != []
        ours = [(h.doc_id, h.chunk_id) for h in searcher.related(doc, k=5)]
        assert [(h.doc_id, h.chunk_id) for h in milvus.related(doc, k=5)] == ours
    assert milvus.search_store.document_chunk_ids("0000000000000000") == []


def test_filter_expressions_escape_user_strings() -> None:
    assert string_literal('a"b\\c') == '"a\\"b\\\\c"'
    expression = filter_expression(Filters(source='q"u_%', language="ja", tags=("x", 'y"')))
    assert expression == ('(source >= "q\\"u_%" and source < "q\\"u_&") and language == "ja" and '
                          'array_contains_any(tags, ["x", "y\\""])')
    assert filter_expression(Filters()) == ""


# ---- small corpora: building, filters with odd names, generations ---------------------------------------------


@pytest.mark.parametrize("kind", STORES)
def test_source_prefix_is_literal(kind: str, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = write_corpus(tmp_path / "corpus", SMALL)
    target = small_target(kind, tmp_path)
    IndexBuilder(target, embedder, keywords).build(corpus)
    searcher = Searcher(target.current(), embedder)
    try:
        for prefix, expected in (("a_b", {"a_b.md"}), ('q"uote%', {'q"uote%.md'}), ("q", {'q"uote%.md', 'q"uoteZ.md'})):
            for mode in MODES:
                hits = searcher.search("notes walrus penguin owl 渡り鳥", mode=mode, k=10,
                                       filters=Filters(source=prefix))
                assert {h.source for h in hits} <= expected and hits, (prefix, mode, [h.source for h in hits])
        assert {h.source for h in searcher.search("渡り鳥", k=5, filters=Filters(tags=("birds",)))} == {'q"uote%.md'}
    finally:
        searcher.close()


ODD_SOURCES = {"back\\slash.md": "Harbour seals.", "back\\\\two.md": "Grey seals.", "backXslash.md": "Fur seals.",
               "bs\\_x.md": "Elephant seals.", "bsX_x.md": "Monk seals.", "p%q.md": "Leopard seals.",
               "pXq.md": "Ringed seals.", "end\\.md": "Bearded seals."}


@pytest.mark.parametrize("kind", STORES)
def test_source_prefixes_with_backslashes_match_alike(kind: str, tmp_path: Path, embedder: Embedder,
                                                      keywords: KeywordTokenizer) -> None:
    """Every character of a prefix is literal, a backslash too, in `source` and in a `where` prefix."""
    target = small_target(kind, tmp_path)
    IndexBuilder(target, embedder, keywords).build(write_corpus(tmp_path / "corpus", ODD_SOURCES))
    searcher = Searcher(target.current(), embedder)
    try:
        for prefix in ("back\\s", "back\\slash", "back\\\\", "back\\", "bs\\_", "p%", "end\\", "\\"):
            expected = {name for name in ODD_SOURCES if name.startswith(prefix)}
            for filters in (Filters(source=prefix), Filters(expression=parse({"field": "source", "prefix": prefix}))):
                hits = searcher.search("seals", mode="dense", k=20, filters=filters)
                assert {h.source for h in hits} == expected, (prefix, filters)
    finally:
        searcher.close()


@pytest.mark.parametrize("kind", STORES)
def test_incremental_rebuild_and_generations(kind: str, tmp_path: Path, embedder: Embedder,
                                             keywords: KeywordTokenizer) -> None:
    corpus = write_corpus(tmp_path / "corpus", SMALL)
    target = small_target(kind, tmp_path)
    first = IndexBuilder(target, embedder, keywords).build(corpus)
    assert (first.generation, first.added, first.documents) == ("gen-000001", 4, 4)
    changed = {**SMALL, "aXb.md": "# Penguin notes\n\nKing penguins dive for lanternfish.\n",
               "new.md": "# Seals\n\nHarbour seals rest on sandbanks.\n"}
    del changed['q"uoteZ.md']
    second = IndexBuilder(target, embedder, keywords).build(write_corpus(corpus, changed))
    assert (second.generation, second.added, second.changed, second.removed, second.unchanged) == \
        ("gen-000002", 1, 1, 1, 2)
    assert second.chunks_embedded == 2 and second.documents == 4
    searcher = Searcher(target.current(), embedder)
    try:
        assert searcher.generation.name == "gen-000002"
        assert not searcher.search("barn owl voles", mode="keyword", k=5)           # removed
        assert not searcher.search("emperor huddle", mode="keyword", k=5)           # changed away
        assert searcher.search("lanternfish", mode="keyword", k=5)[0].source == "aXb.md"
        assert searcher.search("sandbanks", mode="hybrid", k=5)[0].source == "new.md"
        assert searcher.search("walrus", mode="dense", k=1)[0].source == "a_b.md"  # carried over
    finally:
        searcher.close()
    for number in range(2):
        IndexBuilder(target, embedder, keywords).build(write_corpus(corpus, {**changed, "log.md": f"Entry {number}."}))
    unchanged = IndexBuilder(target, embedder, keywords).build(corpus)  # nothing to publish: the live one stays
    assert (unchanged.generation, unchanged.published, unchanged.unchanged) == ("gen-000004", False, 5)
    assert target.current_name() == "gen-000004"
    if isinstance(target, MilvusIndex):
        assert target.generations() == ["gen-000002", "gen-000003", "gen-000004"]
    else:
        assert target.generations()[-KEEP_GENERATIONS:] == ["gen-000002", "gen-000003", "gen-000004"]


def test_milvus_lite_file_reopened_serves_the_same(tmp_path: Path, embedder: Embedder,
                                                   keywords: KeywordTokenizer) -> None:
    uri = str(tmp_path / "reopen.db")
    IndexBuilder(MilvusIndex(uri, "notes"), embedder, keywords).build(write_corpus(tmp_path / "corpus", SMALL))
    before = [h.chunk_id for h in Searcher(MilvusIndex(uri, "notes").current(), embedder).search("walrus ice")]
    release(uri)  # as if the process ended: Milvus Lite forgets which collections were loaded
    reopened = MilvusIndex(uri, "notes")
    assert reopened.current_name() == "gen-000001"
    assert [h.chunk_id for h in Searcher(reopened.current(), embedder).search("walrus ice")] == before
    release(uri)


def test_milvus_target_from_the_command_line_options(tmp_path: Path) -> None:
    assert isinstance(open_target(tmp_path / "my-index"), IndexDirectory)
    target = open_target(tmp_path / "my-index", None, str(tmp_path / "m.db"))
    assert isinstance(target, MilvusIndex) and target.prefix == "my_index_6ee9d5c2"
    with pytest.raises(ValueError, match="--milvus-uri"):
        open_target(tmp_path / "x", "milvus")
    with pytest.raises(ValueError, match="needs --milvus-uri"):
        open_target(tmp_path / "x", None, None, "coll")
    result = CliRunner().invoke(cli, ["search", "walrus", "--milvus-uri", str(tmp_path / "m.db")])
    assert result.exit_code == 1 and "no index 'index' in Milvus" in result.output, result.output
    assert "yomitoki index CORPUS --milvus-uri" in result.output
    release(str(tmp_path / "m.db"))


def test_collection_names_that_differ_stay_apart(tmp_path: Path, embedder: Embedder,
                                                keywords: KeywordTokenizer) -> None:
    """Names Milvus takes are kept; others get a hash of the name given, so cleaning merges none of them."""
    assert [collection_name(n) for n in ("index", "my_docs", "Notes2024")] == ["index", "my_docs", "Notes2024"]
    assert collection_name("my-docs") != collection_name("my_docs")
    assert collection_name("---").startswith("yomitoki_")
    uri = str(tmp_path / "names.db")
    corpus = {"議事録2024": {"minutes.md": "The committee approved the walrus budget."},
              "報告書2024": {"report.md": "Penguins huddle through the polar winter."}}
    try:
        for name, files in corpus.items():
            IndexBuilder(MilvusIndex(uri, name), embedder, keywords).build(write_corpus(tmp_path / name, files))
        for name, files in corpus.items():
            searcher = Searcher(MilvusIndex(uri, name).current(), embedder)
            assert searcher.search_store.counts()["documents"] == 1, name
            assert [h.source for h in searcher.search("walrus penguins", k=5)] == list(files), name
    finally:
        release(uri)


def test_a_collection_name_too_long_for_milvus_is_bad_input(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", SMALL)
    result = CliRunner().invoke(cli, ["index", str(corpus), "--milvus-uri", str(tmp_path / "long.db"),
                                      "--milvus-collection", "c" * 250])
    assert result.exit_code == 2, result.output
    assert "--milvus-collection" in result.output and "at most 235" in result.output, result.output
    assert "Traceback" not in result.output


HOLD_LITE_FILE = """
import sys, time
from indexer.store.milvus import connect
connect(sys.argv[1])
open(sys.argv[2], "w").close()
time.sleep(120)
"""


def test_only_a_held_lite_file_blames_the_one_process_rule(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    uri, ready = str(tmp_path / "held.db"), tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LITE_FILE, uri, str(ready)], cwd=Path(__file__).parents[1],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the other process did not open the file"
        capfd.readouterr()
        with pytest.raises(MilvusUnavailableError, match=r"another process holds the lock.*admits one process"):
            connect(uri)
        assert "Traceback" not in capfd.readouterr().err  # milvus_lite's own logged traceback stays quiet
    finally:
        holder.kill()
        holder.wait(timeout=30)
    for other in ("foo://bar", str(tmp_path / "nodir" / "x.db")):
        with pytest.raises(MilvusUnavailableError) as raised:
            connect(other)
        assert "one process" not in str(raised.value), raised.value


def test_a_document_with_more_tags_than_milvus_holds_is_skipped(tmp_path: Path) -> None:
    """Skipped and listed as an unreadable file is (exit 3); the rest of the corpus is built and published."""
    many = "---\ntags: [" + ", ".join(f"t{i}" for i in range(300)) + "]\n---\n# Many\n\nTagged walruses.\n"
    corpus = write_corpus(tmp_path / "corpus", {**SMALL, "many.md": many})
    uri = str(tmp_path / "tags.db")
    try:
        result = CliRunner().invoke(cli, ["index", str(corpus), "--milvus-uri", uri, "--milvus-collection", "tags",
                                          "--model", "all-minilm-l6-v2"])
        assert result.exit_code == 3, result.output
        assert "many.md" in result.output and "at most 256 tags" in result.output, result.output
        assert MilvusIndex(uri, "tags").current().manifest.counts.documents == len(SMALL)
    finally:
        release(uri)


def test_index_and_search_commands_on_milvus(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", SMALL)
    uri = str(tmp_path / "cli.db")
    runner = CliRunner()
    result = runner.invoke(cli, ["index", str(corpus), "--index", str(tmp_path / "notes"), "--milvus-uri", uri,
                                 "--model", "all-minilm-l6-v2"])
    assert result.exit_code == 0, result.output
    assert "gen-000001: 4 added" in result.output
    result = runner.invoke(cli, ["search", "walrus", "--index", str(tmp_path / "notes"), "--milvus-uri", uri,
                                 "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    assert '"source": "a_b.md"' in result.output
    result = runner.invoke(cli, ["info", "--index", str(tmp_path / "notes"), "--milvus-uri", uri])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["generation"] == "gen-000001" and info["generations"] == ["gen-000001"]
    assert info["manifest"]["store"]["kind"] == "milvus" and info["manifest"]["counts"]["documents"] == 4
    release(uri)


def test_entity_facets_and_filters_on_milvus_are_a_400_that_says_why(tmp_path: Path, embedder: Embedder,
                                                                    keywords: KeywordTokenizer) -> None:
    uri = str(tmp_path / "facets.db")
    IndexBuilder(MilvusIndex(uri, "facets"), embedder, keywords).build(write_corpus(tmp_path / "corpus", SMALL))
    settings = ServerSettings(index_dir=tmp_path / "unused", milvus_uri=uri, milvus_collection="facets",
                              generator=None)
    try:
        with TestClient(create_app(settings)) as client:
            facets = client.get("/entities/facets")
            assert facets.status_code == 400, facets.text
            assert "Milvus holds no entities" in facets.json()["detail"], facets.text
            filtered = client.post("/search", json={"query": "walrus", "filters": {"entities": {"人名": ["山田"]}}})
            assert filtered.status_code == 400, filtered.text
            assert filtered.json()["detail"].startswith("filters.entities: an index kept in Milvus holds no "
                                                        "entities"), filtered.text
    finally:
        release(uri)


def test_files_uploaded_to_a_lite_index_are_kept_beside_its_file(tmp_path: Path, embedder: Embedder,
                                                                 keywords: KeywordTokenizer) -> None:
    """They went to `--index`'s folder (./index by default), which no other server of the index reads and an
    unrelated embedded build of ./index emptied."""
    import docx

    uri = str(tmp_path / "docs.db")
    IndexBuilder(MilvusIndex(uri, "docs"), embedder, keywords).build(write_corpus(tmp_path / "corpus", SMALL))
    settings = ServerSettings(index_dir=tmp_path / "index", milvus_uri=uri, milvus_collection="docs", generator=None)
    document = docx.Document()
    document.add_heading("Backups", level=1)
    document.add_paragraph("Backups run every night at three.")
    upload = io.BytesIO()
    document.save(upload)
    kept = tmp_path / "docs.db.originals" / "docs"
    try:
        with TestClient(create_app(settings)) as client:
            put = client.put("/documents/backups", files={"file": ("backups.docx", upload.getvalue())})
            assert put.status_code == 200, put.text
            assert [path.suffix for path in kept.iterdir()] == [".docx"]
            original = client.get(client.get("/documents/backups").json()["file"])
            assert original.status_code == 200 and original.content == upload.getvalue()
            assert not (tmp_path / "index").exists()
            assert client.delete("/documents/backups").status_code == 200
            assert list(kept.iterdir()) == []
    finally:
        release(uri)


def test_serve_refuses_several_workers_on_a_lite_file(tmp_path: Path) -> None:
    """Each worker would open the file and all but one fail on its lock (the parent then hung): refused at once."""
    uri = str(tmp_path / "docs.db")
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--port", "0", "--milvus-uri", uri])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output and "admits one process" in result.output, result.output
    assert "http://HOST:19530" in result.output and not Path(uri).exists()


# ---- stateless serving: two server processes against one Milvus ------------------------------------------------


def _search(url: str, query: str) -> dict:
    response = httpx.get(f"{url}/search", params={"q": query, "k": 5}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_servers_on_one_milvus_answer_alike_and_follow_publishes(
        tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = write_corpus(tmp_path / "corpus", SMALL)
    uri = str(tmp_path / "shared.db")
    target = MilvusIndex(uri, "shared")
    IndexBuilder(target, embedder, keywords).build(corpus)
    endpoint = lite_endpoint(uri)  # this process holds the Lite file and serves it over gRPC
    servers = [start_server(tmp_path / "unused-index", tmp_path / f"server{i}.log", "--milvus-uri", endpoint,
                            "--milvus-collection", "shared", "--generator", "none") for i in range(2)]
    try:
        answers = [_search(s.url, "walrus on ice") for s in servers]
        assert answers[0]["hits"] and answers[0]["hits"][0]["source"] == "a_b.md"
        assert [a["hits"] for a in answers[1:]] == [answers[0]["hits"]]
        assert {a["generation"] for a in answers} == {"gen-000001"}
        doc_id = answers[0]["hits"][0]["doc_id"]
        document = httpx.get(f"{servers[1].url}/documents/{doc_id}", timeout=30).json()
        assert document["text"] == SMALL["a_b.md"]

        IndexBuilder(target, embedder, keywords).build(
            write_corpus(corpus, {**SMALL, "new.md": "# Seals\n\nHarbour seals rest on sandbanks.\n"}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answers = [_search(s.url, "sandbanks seals") for s in servers]
            if all(a["generation"] == "gen-000002" for a in answers):
                break
            time.sleep(0.5)
        assert [a["generation"] for a in answers] == ["gen-000002"] * 2, [s.log.read_text()[-2000:] for s in servers]
        assert answers[0]["hits"][0]["source"] == "new.md" and answers[0]["hits"] == answers[1]["hits"]
    finally:
        for server in servers:
            server.stop()
        release(uri)
