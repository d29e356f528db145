"""Vector index types: flat, HNSW and IVF-PQ with exact re-scoring; deletion, filters, auto choice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.build.builder import BuildOptions, IndexBuilder
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.ann import VectorParams
from indexer.store.generations import IndexDirectory
from indexer.store.vectors import AUTO_HNSW_FROM, AUTO_IVFPQ_FROM, VectorIndex, choose_type
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS

DIM = 64
SMALL_PQ = VectorParams(pq_bytes=8)  # fewer sub-quantizers to train: the mechanics, not the compression


def clustered(count: int) -> np.ndarray:
    """Unit vectors around 200 centres: neighbourhoods like real embeddings have, unlike uniform noise."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, count)] + 0.35 * rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    everything = clustered(6_040)
    vectors, queries = everything[:6_000], everything[6_000:]  # queries held apart from the index
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    return ids, vectors, queries


def flat_of(ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    index = VectorIndex.create(DIM)
    index.add(ids, vectors)
    return index


def recall(found: list[list[tuple[int, float]]], truth: list[list[tuple[int, float]]]) -> float:
    return float(np.mean([len({i for i, _ in a} & {i for i, _ in b}) / len(b) for a, b in zip(found, truth,
                                                                                            strict=True)]))


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_types_find_what_exact_search_finds(data, kind: str, tmp_path: Path) -> None:
    ids, vectors, queries = data
    exact = flat_of(ids, vectors)
    truth = exact.search(queries, 10)
    index = exact.converted(kind, SMALL_PQ)
    assert index.kind == kind and index.size == len(ids)
    assert recall(index.search(queries, 10), truth) >= 0.95
    index.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss")
    assert loaded.kind == kind and loaded.settings().type == kind
    assert recall(loaded.search(queries, 10), truth) >= 0.95


def test_ivfpq_rescores_exactly_from_memory_mapped_full_vectors(data, tmp_path: Path) -> None:
    ids, vectors, queries = data
    exact = flat_of(ids, vectors)
    exact.converted("ivfpq", SMALL_PQ).save(tmp_path / "vectors.faiss")
    index = VectorIndex.load(tmp_path / "vectors.faiss")
    settings = index.settings()
    assert settings.bytes_per_vector_in_memory is not None and settings.bytes_per_vector_in_memory <= 64
    assert settings.full_vectors == "memory-mapped"
    assert isinstance(index.full._vectors, np.memmap)  # type: ignore[union-attr]
    found = index.search(queries, 5)
    assert recall(found, exact.search(queries, 5)) >= 0.95
    for query, row in zip(queries, found, strict=True):  # re-scored: each hit carries its exact cosine
        for chunk_id, score in row:
            assert score == pytest.approx(float(vectors[chunk_id - 1000] @ query), abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_removed_vectors_are_never_found_and_filters_hold(data, kind: str, tmp_path: Path) -> None:
    ids, vectors, queries = data
    index = flat_of(ids, vectors).converted(kind, SMALL_PQ)
    top = [i for i, _ in index.search(queries[:1], 5)[0]]
    assert index.remove(np.array(top[:3])) == 3
    assert index.size == len(ids) - 3
    assert not set(top[:3]) & {i for i, _ in index.search(queries[:1], 10)[0]}
    allowed = ids[::5]
    for row in index.search(queries[:5], 5, allowed=np.concatenate([allowed, top[:3]])):
        assert row and all(i in set(allowed.tolist()) for i, _ in row)
    index.save(tmp_path / "vectors.faiss")
    reloaded = VectorIndex.load(tmp_path / "vectors.faiss")
    assert reloaded.size == len(ids) - 3
    assert not set(top[:3]) & {i for i, _ in reloaded.search(queries[:1], 10)[0]}


def test_hnsw_tombstones_until_compaction(data) -> None:
    ids, vectors, queries = data
    index = flat_of(ids, vectors).converted("hnsw", VectorParams(compact_ratio=0.1))
    index.remove(ids[:500])
    assert len(index.tombstones) == 500 and index.index.ntotal == len(ids)  # the graph still holds them
    assert index.converted("hnsw", index.params) is index  # under the ratio: kept as is
    index.remove(ids[500:1500])
    compacted = index.converted("hnsw", index.params)
    assert compacted.tombstones == set() and compacted.index.ntotal == len(ids) - 1500
    assert min(i for row in compacted.search(queries, 10) for i, _ in row) >= ids[1500]


def test_auto_chooses_by_size_with_a_margin() -> None:
    assert choose_type(5_000) == "flat"
    assert choose_type(AUTO_HNSW_FROM) == "hnsw"
    assert choose_type(AUTO_IVFPQ_FROM) == "ivfpq"
    assert choose_type(int(AUTO_HNSW_FROM * 0.9), current="hnsw") == "hnsw"  # no flip-flop at the boundary
    assert choose_type(int(AUTO_HNSW_FROM * 0.5), current="hnsw") == "flat"
    with pytest.raises(ValueError, match="unknown index type"):
        VectorIndex.create(DIM).converted("annoy")


def test_incremental_builds_convert_types_and_delete_from_each(
    tmp_path: Path, corpus_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(CORPUS, corpus)
    shutil.copytree(corpus_index.path, index)  # the session's flat index of the same corpus
    directory = IndexDirectory(index)
    deleted = ["en-reciprocal-rank-fusion.md", "en-bm25.md", "en-faiss-indexes.md"]
    for kind, gone in (("hnsw", None), ("hnsw", deleted[0]), ("ivfpq", deleted[1]), ("ivfpq", deleted[2])):
        if gone:
            (corpus / gone).unlink()
        options = BuildOptions(index_type=kind, vector_params=SMALL_PQ)
        report = IndexBuilder(directory, embedder, keywords, options).build(corpus)
        assert report.chunks_embedded == 0 and report.removed == (1 if gone else 0)
        generation = directory.current()
        assert generation.manifest.vectors is not None and generation.manifest.vectors.type == kind
        assert generation.manifest.vectors.count == generation.manifest.counts.chunks
        searcher = Searcher(generation, embedder)
        try:
            sources = {h.source for query in ("reciprocal rank fusion", "BM25 term frequency", "FAISS index")
                       for h in searcher.search(query, mode="dense", k=10)}
        finally:
            searcher.close()
        removed_so_far = set(deleted[: deleted.index(gone) + 1]) if gone else set()
        assert sources and not sources & removed_so_far
