"""Documents like this one: `Searcher.related` and `GET /documents/{id}/related` (cross-lingual pairs: test_e5)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from indexer.build.builder import document_id
from indexer.cli import cli
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import Filters
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import RunningServer, build


def test_each_other_document_once_by_its_closest_chunk(searcher: Searcher) -> None:
    source = document_id("en-bm25.md")
    hits = searcher.related(source, k=8)
    assert len(hits) == 8
    assert source not in {hit.doc_id for hit in hits}  # never the document itself
    assert len({hit.doc_id for hit in hits}) == 8
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert hits[0].source == "en-reciprocal-rank-fusion.md", [hit.source for hit in hits]  # keyword + dense fusion
    assert all(hit.highlights == () for hit in hits)  # there is no query to mark


def test_filters_apply_and_an_unknown_document_has_none(searcher: Searcher) -> None:
    source = document_id("en-bm25.md")
    assert all(hit.source.startswith("en-") for hit in searcher.related(source, k=5, filters=Filters(language="en")))
    assert searcher.related("0000000000000000") == []


def test_an_index_that_cannot_give_vectors_back_embeds_the_chunks_again(searcher: Searcher,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = document_id("en-bm25.md")
    stored = [(hit.doc_id, hit.chunk_id) for hit in searcher.related(source, k=5)]
    monkeypatch.setattr(searcher.search_store, "stored_vectors", lambda ids: None)
    assert [(hit.doc_id, hit.chunk_id) for hit in searcher.related(source, k=5)] == stored


def test_the_server_lists_related_documents_by_id_or_key(live_server: RunningServer) -> None:
    by_key = httpx.get(f"{live_server.url}/documents/en-bm25.md/related", params={"k": 3}, timeout=60)
    assert by_key.status_code == 200, by_key.text
    body = by_key.json()
    assert body["key"] == "en-bm25.md" and body["k"] == 3 and len(body["hits"]) == 3
    assert {"doc_id", "title", "source", "text", "start", "end", "score"} <= set(body["hits"][0])
    by_id = httpx.get(f"{live_server.url}/documents/{body['id']}/related", params={"k": 3}, timeout=60)
    assert [h["doc_id"] for h in by_id.json()["hits"]] == [h["doc_id"] for h in body["hits"]]
    english = httpx.get(f"{live_server.url}/documents/en-bm25.md/related", params={"language": "en"}, timeout=60)
    assert english.json()["hits"] and all(h["language"] == "en" for h in english.json()["hits"])


def test_a_missing_document_is_404_and_a_bad_k_a_400_naming_it(live_server: RunningServer) -> None:
    missing = httpx.get(f"{live_server.url}/documents/no-such-key/related", timeout=60)
    assert missing.status_code == 404 and "no-such-key" in missing.json()["detail"]
    bad = httpx.get(f"{live_server.url}/documents/en-bm25.md/related", params={"k": 0}, timeout=60)
    assert bad.status_code == 400 and "k" in bad.text
    for params, named in (({"tag": "x"}, "'tag'"), ({"source": ""}, "source")):  # not a filter it silently skips
        refused = httpx.get(f"{live_server.url}/documents/en-bm25.md/related", params=params, timeout=60)
        assert refused.status_code == 400 and named in refused.text, refused.text


def test_the_command_line_lists_related_documents_by_key(corpus_index: IndexDirectory) -> None:
    result = CliRunner().invoke(cli, ["related", "en-bm25.md", "--index", str(corpus_index.path), "-k", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and all(row["key"] != "en-bm25.md" for row in rows)
    missing = CliRunner().invoke(cli, ["related", "no-such-key", "--index", str(corpus_index.path)])
    assert missing.exit_code == 1 and "no document with id or key 'no-such-key'" in missing.output


def test_a_long_document_that_fills_the_ranking_does_not_crowd_out_the_others(
        tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "walrus.md").write_text("# Walruses\n\nThe walrus rests on the sea ice near Svalbard and eats clams.\n")
    long_text = "\n\n".join(f"## Walrus colony {i}\n\nWalruses of colony {i} rest on the sea ice near Svalbard, "
                            f"dive for clams and haul out on the beach in summer." for i in range(200))
    (corpus / "colonies.md").write_text(f"# Walrus colonies\n\n{long_text}\n")
    (corpus / "penguins.md").write_text("# Penguins\n\nEmperor penguins huddle through the Antarctic winter.\n")
    (corpus / "owls.md").write_text("# Owls\n\nThe barn owl hunts voles over the fields at night.\n")
    build(corpus, tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        colonies = searcher.search_store.document_chunk_ids(document_id("colonies.md"))
        assert len(colonies) > 20 * 3 + 1  # more chunks than the first ranking for k=3 reads
        hits = searcher.related(document_id("walrus.md"), k=3)
        assert hits and hits[0].key == "colonies.md"
        assert {hit.key for hit in hits} == {"colonies.md", "penguins.md", "owls.md"}
    finally:
        searcher.close()
