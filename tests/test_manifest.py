"""The manifest as typed structs, on disk in the shape every earlier version wrote.

An index built before a manifest entry existed must open, pass its checks and
serve; one written by a newer version, with keys this one does not know, too.
The old shapes are written here key by key, as the earlier builders wrote them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.search.opening import open_index
from indexer.store.generations import MANIFEST_FILE, CorruptIndexError, IndexDirectory
from indexer.store.integrity import check_generation
from indexer.store.manifest import Manifest, MilvusStoreEntry, decode_manifest, encode_manifest
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import CORPUS, build

QUESTION = "What kind of function is BM25?"


@pytest.fixture()
def index_copy(corpus_index: IndexDirectory, tmp_path: Path) -> IndexDirectory:
    """A copy of the session's corpus index that a test may rewrite."""
    shutil.copytree(corpus_index.path, tmp_path / "index")
    return IndexDirectory(tmp_path / "index")


def manifest_json(directory: IndexDirectory) -> dict[str, Any]:
    return json.loads((directory.path / str(directory.current_name()) / MANIFEST_FILE).read_text())


def rewrite(directory: IndexDirectory, manifest: dict[str, Any]) -> None:
    path = directory.path / str(directory.current_name()) / MANIFEST_FILE
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2))


def first_version(written: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the same generation as the first version wrote it: no runtime in `model`,
    fusion without per-language weights or model coverage, no corpus and no store entry."""
    model = written["model"]
    return {
        "model": {key: model[key] for key in ("name", "family", "source", "package", "revision", "dimension",
                                               "max_tokens")},
        "normalizer": written["normalizer"],
        "chunker": written["chunker"],
        "keywords": written["keywords"],
        "fusion": {"method": "coverage-weighted-rrf", "k": 60, "keyword_weight": 1.0, "coverage_floor": 0.5,
                   "candidates": 100},
        "vectors": {"type": "flat", "metric": "inner_product", "faiss": written["vectors"]["faiss"]},
        "counts": written["counts"],
        "created": written["created"],
        "versions": written["versions"],
        "last_build": written["last_build"],
        "format_version": 1,
        "generation": written["generation"],
        "files": written["files"],
    }


def assert_serves(directory: IndexDirectory) -> None:
    """The index opens, passes `yomitoki check`'s checks, and answers through the library and the server."""
    assert check_generation(directory.current()) == []
    searcher = open_index(directory.path, threads=1)
    try:
        assert searcher.search(QUESTION, k=1)[0].source == "en-bm25.md"
    finally:
        searcher.close()
    with TestClient(create_app(ServerSettings(index_dir=directory.path))) as client:
        health = client.get("/health").json()
        assert health["documents"] == directory.current().manifest.counts.documents > 0, health
        response = client.post("/search", json={"query": QUESTION, "k": 1})
        assert response.status_code == 200, response.text
        assert response.json()["hits"][0]["source"] == "en-bm25.md"


def test_a_build_writes_the_keys_earlier_versions_wrote(corpus_index: IndexDirectory) -> None:
    written = manifest_json(corpus_index)
    assert set(written) == {"model", "normalizer", "chunker", "keywords", "fusion", "vectors", "counts", "corpus",
                            "created", "versions", "last_build", "format_version", "generation", "files"}
    assert set(written["model"]) >= {"name", "family", "backend", "source", "revision", "dimension", "max_tokens"}
    assert set(written["fusion"]) == {"method", "k", "keyword_weight", "coverage_floor", "candidates",
                                      "language_weights", "model_coverage"}
    assert written["vectors"]["type"] == "flat" and written["vectors"]["metric"] == "inner_product"
    assert written["chunker"] == {"strategy": "sentences", "max_tokens": 200, "overlap": 40, "title_context": True,
                                  "version": 1}
    assert set(written["files"]["store.sqlite"]) == {"bytes", "sha256"}
    # read and written again, it is the same JSON
    assert json.loads(encode_manifest(decode_manifest(json.dumps(written)))) == written


def test_an_index_in_the_first_version_shape_opens_and_serves(index_copy: IndexDirectory) -> None:
    rewrite(index_copy, first_version(manifest_json(index_copy)))
    manifest = index_copy.current().manifest
    assert manifest.store is None and manifest.store_kind == "embedded"
    assert manifest.model.backend is None and manifest.corpus is None
    assert manifest.fusion is not None and manifest.fusion.model_coverage is None
    assert_serves(index_copy)


def test_keys_a_newer_version_adds_are_ignored(index_copy: IndexDirectory, embedder: Embedder,
                                               keywords: KeywordTokenizer) -> None:
    written = manifest_json(index_copy)
    written["model"]["quantization"] = {"bits": 4}
    written["vectors"]["graph"] = "something new"
    written["files"]["store.sqlite"]["compression"] = None
    written["summary"] = {"languages": ["en", "ja"]}
    rewrite(index_copy, written)
    assert_serves(index_copy)
    # an update still reuses every document of that generation: nothing it needs changed
    report = build(CORPUS, index_copy.path, embedder, keywords)
    assert report.unchanged == report.documents and report.chunks_embedded == 0 and not report.rebuilt


def test_a_manifest_of_the_wrong_shape_names_the_entry(index_copy: IndexDirectory) -> None:
    written = manifest_json(index_copy)
    written["counts"]["chunks"] = "many"
    rewrite(index_copy, written)
    with pytest.raises(CorruptIndexError, match=r"\$\.counts\.chunks.*rebuild"):
        index_copy.current()


def test_a_milvus_store_entry_reads_back_as_the_previous_version_wrote_it() -> None:
    written = {
        "model": {"name": "all-minilm-l6-v2", "backend": "torch", "dimension": 384},
        "vectors": {"type": "flat", "metric": "inner_product", "backend": "milvus", "count": 12},
        "counts": {"documents": 3, "chunks": 12},
        "store": {"kind": "milvus", "uri": "notes.db", "collection": "notes", "chunks": "notes__gen_000001__chunks",
                  "documents": "notes__gen_000001__docs", "next_chunk_id": 13, "dimension": 384},
    }
    manifest = decode_manifest(json.dumps(written))
    assert isinstance(manifest.store, MilvusStoreEntry) and manifest.store_kind == "milvus"
    assert manifest.store.next_chunk_id == 13 and manifest.vectors is not None and manifest.vectors.count == 12
    assert json.loads(encode_manifest(manifest)) == written
    with pytest.raises(msgspec.ValidationError, match=r"\$\.store\.kind"):
        decode_manifest(json.dumps({**written, "store": {"kind": "elsewhere"}}))
    assert Manifest(model=manifest.model).store_kind == "embedded"
