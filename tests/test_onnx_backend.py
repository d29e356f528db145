"""The ONNX backends of the bundled model: same vectors (within int8 error), same tokens, cached export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import indexer.cli
import indexer.embed.onnx_export as onnx_export
from indexer.build.builder import BuildOptions, IndexBuilder
from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder, load_manifest_embedder
from indexer.embed.onnx_export import export_folder
from indexer.errors import InputError
from indexer.search.searcher import IndexMismatchError, Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS, MODEL, start_server, yomitoki


def corpus_passages(limit: int = 24) -> list[str]:
    """Paragraphs of the default corpus, English and Japanese, as they would be embedded."""
    passages = []
    for path in sorted(CORPUS.glob("*.md")):
        paragraphs = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n")]
        passages += [p for p in paragraphs if len(p) > 80 and not p.startswith("---")][:2]
    return passages[:limit]


@pytest.fixture(scope="module")
def int8() -> Embedder:
    return load_embedder(MODEL, runtime="onnx-int8")


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return load_embedder(MODEL, runtime="onnx")


def test_int8_vectors_stay_within_cosine_099_of_torch(embedder: Embedder, int8: Embedder) -> None:
    passages = corpus_passages()
    assert len(passages) >= 20
    cosines = (embedder.embed(passages) * int8.embed(passages)).sum(axis=1)
    assert cosines.mean() >= 0.99, f"mean cosine int8 vs torch {cosines.mean():.4f}"
    assert cosines.min() >= 0.97, f"worst passage {passages[int(cosines.argmin())][:60]!r}: {cosines.min():.4f}"


def test_fp32_onnx_matches_torch(embedder: Embedder, fp32: Embedder) -> None:
    passages = corpus_passages(8)
    cosines = (embedder.embed(passages) * fp32.embed(passages)).sum(axis=1)
    assert cosines.min() > 0.9999


def test_vectors_are_normalized_and_in_input_order(int8: Embedder) -> None:
    passages = corpus_passages(10)
    together = int8.embed(passages, batch_size=4)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([int8.embed([p]) for p in passages])
    # int8 activations are quantized with one scale per batch, so a passage's vector moves a little
    # with its batch-mates; the order and the meaning must not
    agreement = (together * alone).sum(axis=1)
    assert agreement.min() > 0.98 and agreement.mean() > 0.99, agreement
    assert (agreement > (together @ alone.T - np.eye(len(passages)) * 2).max(axis=1)).all()
    assert int8.embed([]).shape == (0, 384)


def test_a_long_text_runs_alone_so_its_int8_vector_does_not_depend_on_its_batch(int8: Embedder) -> None:
    """Batches hold about BATCH_TOKENS tokens: a chunk longer than that is embedded on its own."""
    from indexer.embed.onnx import BATCH_TOKENS

    long = " ".join(corpus_passages(10))
    assert int8.count_tokens([long])[0] > BATCH_TOKENS
    mixed = int8.embed(["Tokenizers split text.", long, "形態素解析"], batch_size=8)
    assert np.array_equal(mixed[1], int8.embed([long])[0])


def test_tokens_spans_and_coverage_are_the_torch_backends(embedder: Embedder, int8: Embedder) -> None:
    texts = ["Reciprocal rank fusion merges ranked lists.", "東京の銀座でデパートに行った。", "ｶﾀｶﾅ ㈱"]
    assert int8.count_tokens(texts) == embedder.count_tokens(texts)
    for text in texts:
        assert int8.token_spans(text) == embedder.token_spans(text)
        assert int8.coverage(text) == embedder.coverage(text)
    assert int8.max_tokens == embedder.max_tokens == 256


def test_export_happens_once(int8: Embedder) -> None:
    folder = export_folder(int8.location.path)  # type: ignore[arg-type]
    model_file = folder / "model-int8.onnx"
    before = model_file.stat().st_mtime_ns
    assert export_folder(int8.location.path) == folder  # type: ignore[arg-type]
    assert model_file.stat().st_mtime_ns == before


def test_describe_names_the_backend_and_bad_backends_are_refused(embedder: Embedder, int8: Embedder) -> None:
    assert embedder.describe()["backend"] == "torch"
    assert int8.describe()["backend"] == "onnx-int8"
    assert {k: v for k, v in int8.describe().items() if k != "backend"} == {
        k: v for k, v in embedder.describe().items() if k != "backend"}
    with pytest.raises(InputError, match="backend 'onnx-int8' does not apply"):  # bad input, not a failure
        load_embedder("use-multilingual-v3", runtime="onnx-int8")


def test_index_records_backend_and_search_loads_it(
    tmp_path: Path, embedder: Embedder, int8: Embedder, keywords: KeywordTokenizer
) -> None:
    directory = IndexDirectory(tmp_path / "index")
    IndexBuilder(directory, int8, keywords, BuildOptions()).build(CORPUS)
    generation = directory.current()
    assert generation.manifest.model.backend == "onnx-int8"
    with pytest.raises(IndexMismatchError, match="'onnx-int8' backend"):
        Searcher(generation, embedder)
    loaded = load_manifest_embedder(generation.manifest.model)
    assert loaded.describe()["backend"] == "onnx-int8"
    searcher = Searcher(generation, loaded)
    try:
        hits = searcher.search("reciprocal rank fusion of ranked lists", mode="dense", k=3)
    finally:
        searcher.close()
    assert hits[0].source == "en-reciprocal-rank-fusion.md"


@pytest.mark.slow
def test_cli_builds_with_onnx_int8_and_the_server_serves_that_backend(tmp_path: Path) -> None:
    index = tmp_path / "index"
    built = subprocess.run(yomitoki("index", str(CORPUS), "--index", str(index), "--backend", "onnx-int8",
                                    "--index-type", "hnsw"), capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    info = subprocess.run(yomitoki("info", "--index", str(index)), capture_output=True, text=True, timeout=300)
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["model"]["backend"] == "onnx-int8"
    assert manifest["vectors"]["type"] == "hnsw"
    server = start_server(index, tmp_path / "server.log")
    try:
        import httpx

        response = httpx.post(f"{server.url}/search", json={"query": "reciprocal rank fusion", "k": 3}, timeout=60)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    assert response.json()["hits"][0]["source"] == "en-reciprocal-rank-fusion.md"


def test_bulk_sessions_spin_and_serving_sessions_sleep(int8: Embedder) -> None:
    """Indexing keeps the runtime's threads spinning between operators; a serving session lets them sleep."""
    bulk = load_embedder(MODEL, runtime="onnx-int8", bulk=True)

    assert (spinning(bulk), spinning(int8)) == ("1", "0")
    probe = corpus_passages(4)
    assert np.allclose(bulk.embed(probe), int8.embed(probe), atol=1e-6)  # the same vectors either way


def spinning(embedder: Embedder) -> str:
    options = embedder.session.get_session_options()  # type: ignore[attr-defined]
    return str(options.get_session_config_entry("session.intra_op.allow_spinning"))


def test_the_index_command_loads_its_model_for_bulk_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`yomitoki index` asks for the spinning session (the loader is the real one, only watched)."""
    loaded: list[Embedder] = []

    def watched(*args: object, **kwargs: object) -> Embedder:
        loaded.append(load_embedder(*args, **kwargs))  # type: ignore[arg-type]
        return loaded[-1]

    monkeypatch.setattr(indexer.cli, "load_embedder", watched)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "note.md").write_text("# Tea\n\nGreen tea is harvested in spring.\n", encoding="utf-8")
    result = CliRunner().invoke(indexer.cli.cli, ["index", str(tmp_path / "corpus"), "--index", str(tmp_path / "index"),
                                                  "--model", MODEL, "--backend", "onnx-int8"])
    assert result.exit_code == 0, result.output
    assert [spinning(e) for e in loaded] == ["1"], loaded


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_residual_adds_stay_apart_from_their_layernorms_in_the_graph_that_runs(backend: str, tmp_path: Path) -> None:
    """onnxruntime's fused SkipLayerNormalization is several times slower than Add + LayerNormalization on CPU."""
    import onnx

    from indexer.embed.onnx import open_session, session_options

    embedder = load_embedder(MODEL, runtime=backend)
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")  # the graph after onnxruntime's own fusions
    open_session(embedder.model_file, options)  # type: ignore[attr-defined]

    ops = {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx"), load_external_data=False).graph.node}
    assert "SkipLayerNormalization" not in ops
    assert "LayerNormalization" in ops and ("QAttention" if backend == "onnx-int8" else "Attention") in ops


def test_an_export_damaged_in_place_is_exported_again_when_loading_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "default_cache_dir", lambda: tmp_path)
    sound = load_embedder(MODEL, runtime="onnx-int8")
    folder = sound.model_file.parent  # type: ignore[attr-defined]
    model_file = folder / "model-int8.onnx"
    size = model_file.stat().st_size
    with model_file.open("r+b") as handle:  # the protobuf header zeroed; the size, which is checked each time, kept
        handle.write(bytes(4096))
    assert model_file.stat().st_size == size and onnx_export.damaged_files(folder) == ["model-int8.onnx"]
    healed = load_embedder(MODEL, runtime="onnx-int8")
    assert onnx_export.damaged_files(folder) == []
    texts = ["Reciprocal rank fusion combines rankings.", "東京は日本の首都です。"]
    assert np.allclose(healed.embed(texts), sound.embed(texts), atol=1e-6)
    with model_file.open("r+b") as handle:  # truncated: the size check alone sees it, before anything loads
        handle.truncate(size // 2)
    assert not onnx_export._complete(folder)
