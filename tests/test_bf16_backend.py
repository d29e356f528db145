"""The torch-bf16 backend: the float32 model under bfloat16 autocast, where the CPU computes bfloat16 natively."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.build.builder import BuildOptions, IndexBuilder
from indexer.embed.base import Embedder, EmbedderLoadError
from indexer.embed.loading import load_embedder, load_manifest_embedder, native_bf16
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS, MODEL
from tests.test_onnx_backend import corpus_passages

needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16 (AMX / AVX512-BF16)")


@pytest.mark.skipif(native_bf16(), reason="this CPU computes bfloat16 natively")
def test_refused_with_a_reason_where_the_cpu_lacks_bfloat16() -> None:
    with pytest.raises(EmbedderLoadError, match="needs a CPU that computes bfloat16 natively"):
        load_embedder(MODEL, runtime="torch-bf16")


@pytest.fixture(scope="module")
def bf16() -> Embedder:
    return load_embedder(MODEL, runtime="torch-bf16")


@needs_bf16
def test_bf16_vectors_match_float32(embedder: Embedder, bf16: Embedder) -> None:
    passages = corpus_passages()
    vectors = bf16.embed(passages, batch_size=8)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    float32 = embedder.embed(passages)
    cosines = (float32 * vectors).sum(axis=1)
    assert cosines.mean() >= 0.999, cosines
    # ... and bfloat16 really ran: float32 twice agrees to rounding (≈ 1e-7), bfloat16 differs by ≈ 1e-3
    assert np.abs(float32 - vectors).max() > 1e-4
    assert np.abs(float32 - embedder.embed(passages)).max() < 1e-5
    assert cosines.min() >= 0.995, cosines
    assert bf16.describe()["backend"] == "torch-bf16"
    assert embedder.describe()["backend"] == "torch"


@needs_bf16
def test_an_index_built_on_bf16_is_searched_on_bf16(tmp_path, keywords: KeywordTokenizer, bf16: Embedder) -> None:
    directory = IndexDirectory(tmp_path / "index")
    IndexBuilder(directory, bf16, keywords, BuildOptions()).build(CORPUS)
    generation = directory.current()
    assert generation.manifest.model.backend == "torch-bf16"
    loaded = load_manifest_embedder(generation.manifest.model)
    assert loaded.describe()["backend"] == "torch-bf16"
    searcher = Searcher(generation, loaded)
    try:
        hits = searcher.search("reciprocal rank fusion", mode="dense", k=3)
    finally:
        searcher.close()
    assert hits and "fusion" in (hits[0].title + hits[0].text).lower()
