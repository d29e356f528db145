"""A cross-encoder reranker (`--reranker`) re-orders the first results of search and of /ask's retrieval.

No reranker ships offline, so these tests build a real sentence-transformers
CrossEncoder folder with random weights (tests/task_models.py): its scores mean
nothing, but they are real model outputs, and every order below is checked
against `CrossEncoder.predict` itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

import indexer.cli
from indexer.embed.cross_encoder import CrossEncoderLoadError
from indexer.search.rerank import Reranking, load_reranker
from indexer.search.searcher import Hit, Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.chunking import embedding_text
from indexer.text.normalize import normalize_query
from server.app import create_app
from server.settings import ServerSettings
from tests.task_models import save_tiny_cross_encoder

QUERIES = ["reciprocal rank fusion", "What is BM25 used for?", "半角カナの正規化", "IOB2 タグの B は何を表しますか"]


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-reranker")


@pytest.fixture(scope="module")
def reranking(cross_encoder: Path) -> Reranking:
    return Reranking(load_reranker(str(cross_encoder)), depth=6)


def predicted(cross_encoder: Path, searcher: Searcher, query: str, hits: list[Hit]) -> list[float]:
    """The CrossEncoder's own scores for each hit, read as the reranker reads it (title, then text)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(cross_encoder), device="cpu")
    texts = [embedding_text(hit.title, searcher.store.chunk_texts([hit.chunk_id])[hit.chunk_id]) for hit in hits]
    pairs = [(normalize_query(query).strip(), normalize_query(text)) for text in texts]
    return [float(s) for s in model.predict(pairs, show_progress_bar=False)]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_the_first_candidates_come_in_the_cross_encoders_order_and_the_rest_as_before(
        searcher: Searcher, reranking: Reranking, cross_encoder: Path, mode: str) -> None:
    changed = 0
    for query in QUERIES:
        plain = searcher.search(query, mode=mode, k=10)
        reranked = searcher.search(query, mode=mode, k=10, reranking=reranking)
        head, tail = reranked[: reranking.depth], reranked[reranking.depth :]
        assert {h.chunk_id for h in head} == {h.chunk_id for h in plain[: reranking.depth]}, query
        scores = predicted(cross_encoder, searcher, query, head)
        assert [h.rerank_score for h in head] == pytest.approx(scores, abs=1e-5), query
        assert scores == sorted(scores, reverse=True), query
        assert [(h.chunk_id, h.score, h.rerank_score) for h in tail] == [
            (h.chunk_id, h.score, None) for h in plain[reranking.depth :]], query  # untouched
        assert {h.chunk_id: h.score for h in head} == {h.chunk_id: h.score for h in plain[: reranking.depth]}
        changed += [h.chunk_id for h in head] != [h.chunk_id for h in plain[: reranking.depth]]
    assert changed, "the premise: the cross-encoder orders some query's candidates differently"


def test_pages_and_collapsed_results_are_cut_from_the_reranked_order(searcher: Searcher,
                                                                     reranking: Reranking) -> None:
    query = "reciprocal rank fusion"
    whole = searcher.find(query, k=12, offset=0, reranking=reranking).hits
    pages = [searcher.find(query, k=4, offset=start, reranking=reranking).hits for start in (0, 4, 8)]
    assert [h.chunk_id for page in pages for h in page] == [h.chunk_id for h in whole]
    collapsed = searcher.find(query, k=5, collapse=True, reranking=reranking).hits
    firsts: list[str] = []
    for hit in whole:
        if hit.doc_id not in firsts:
            firsts.append(hit.doc_id)
    assert [h.doc_id for h in collapsed] == firsts[:5]


@pytest.mark.parametrize("runtime,tolerance", [("onnx", 1e-5), ("onnx-int8", 5e-3)])
def test_the_onnx_runtimes_give_the_torch_scores(cross_encoder: Path, runtime: str, tolerance: float) -> None:
    """Exported once (graph: the classifier, then CrossEncoder's own activation), read with its tokenizer."""
    from sentence_transformers import CrossEncoder

    pairs = [("What is BM25 used for?", "BM25 Keyword Search\nBM25 is a ranking function for keyword search."),
             ("東京", "東京は日本の首都です。"), ("ﾄｰｸﾅｲｻﾞ", "トークナイザは文を語に分けます。" * 40), ("a", "b")]
    expected = CrossEncoder(str(cross_encoder), device="cpu").predict(
        [(normalize_query(a), normalize_query(b)) for a, b in pairs], show_progress_bar=False)
    scorer = load_reranker(str(cross_encoder), runtime)
    assert scorer.score(pairs) == pytest.approx([float(x) for x in expected], abs=tolerance)
    assert scorer.score([]) == []


@pytest.mark.parametrize("runtime", ["torch", "onnx-int8"])
def test_a_cross_encoder_with_several_outputs_is_refused_by_name(tmp_path: Path, runtime: str) -> None:
    nli = save_tiny_cross_encoder(tmp_path / "nli", outputs=3)
    with pytest.raises(CrossEncoderLoadError, match="gives 3 scores per pair; a reranker needs one"):
        load_reranker(str(nli), runtime)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrossEncoderLoadError, match="cannot load cross-encoder"):
        load_reranker(str(tmp_path / "empty"), runtime)


# ---- the server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(corpus_index: IndexDirectory, cross_encoder: Path) -> Iterator[TestClient]:
    settings = ServerSettings(index_dir=corpus_index.path, generator=None, reranker=str(cross_encoder),
                              rerank_depth=8)
    with TestClient(create_app(settings)) as client:
        yield client


def test_search_is_reranked_by_default_and_says_by_what(client: TestClient, cross_encoder: Path) -> None:
    body = client.post("/search", json={"query": "reciprocal rank fusion", "k": 10}).json()
    assert body["reranker"] == str(cross_encoder.resolve()), body
    scores = [h.get("rerank_score") for h in body["hits"]]
    assert all(s is not None for s in scores[:8]) and scores[8:] == [None, None], scores
    assert scores[:8] == sorted(scores[:8], reverse=True)
    plain = client.post("/search", json={"query": "reciprocal rank fusion", "k": 10, "rerank": False}).json()
    assert "reranker" not in plain and all("rerank_score" not in h for h in plain["hits"])
    assert {h["chunk_id"] for h in plain["hits"][:8]} == {h["chunk_id"] for h in body["hits"][:8]}
    got = client.get("/search", params={"q": "reciprocal rank fusion", "k": 10, "rerank": "false"}).json()
    assert [h["chunk_id"] for h in got["hits"]] == [h["chunk_id"] for h in plain["hits"]]
    health = client.get("/health").json()["models"]["reranker"]
    assert health["loaded"] is True and health["name"] == str(cross_encoder), health
    facts = {m["role"]: m for m in client.get("/models").json()["models"]}
    assert facts["reranker"]["loaded"] is True and facts["reranker"]["source"] == "path", facts["reranker"]


def test_serve_runs_the_reranker_on_onnx_int8_when_told(corpus_index: IndexDirectory, cross_encoder: Path) -> None:
    settings = ServerSettings(index_dir=corpus_index.path, generator=None, reranker=str(cross_encoder),
                              reranker_backend="onnx-int8")
    with TestClient(create_app(settings)) as client:
        hits = client.post("/search", json={"query": "reciprocal rank fusion", "k": 5}).json()["hits"]
        scores = [h["rerank_score"] for h in hits]
        assert scores == sorted(scores, reverse=True), scores
        assert client.app.state.services.models.get("reranker").runtime == "onnx-int8"


def test_ask_retrieves_through_the_reranker(client: TestClient) -> None:
    question = "What does reciprocal rank fusion add up for each document?"
    searched = client.post("/search", json={"query": question, "k": 5}).json()["hits"]
    body = client.post("/ask", json={"question": question, "mode": "extractive", "k": 5}).json()
    shown = {(p["doc_id"], p["start"]) for p in body["citations"] + body["uncited"]}
    assert shown <= {(h["doc_id"], h["start"]) for h in searched}, (shown, searched)


def test_rerank_without_a_reranker_is_a_400_naming_the_field(corpus_index: IndexDirectory) -> None:
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path, generator=None))) as client:
        response = client.post("/search", json={"query": "BM25", "rerank": True})
        assert response.status_code == 400 and "rerank" in response.text and "--reranker" in response.text
        assert "reranker" not in client.post("/search", json={"query": "BM25"}).json()


def test_a_reranker_that_cannot_load_is_a_503_naming_it_and_search_still_works_without(
        corpus_index: IndexDirectory, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-reranker"
    missing.mkdir()
    settings = ServerSettings(index_dir=corpus_index.path, generator=None, reranker=str(missing))
    with TestClient(create_app(settings)) as client:
        failed = client.post("/search", json={"query": "BM25"})
        assert failed.status_code == 503 and "no-such-reranker" in failed.text, failed.text
        assert client.post("/ask", json={"question": "What is BM25?", "mode": "extractive"}).status_code == 503
        unranked = client.post("/search", json={"query": "BM25", "rerank": False})
        assert unranked.status_code == 200 and unranked.json()["hits"], unranked.text


def test_cli_search_with_a_reranker(corpus_index: IndexDirectory, cross_encoder: Path) -> None:
    args = ["search", "reciprocal rank fusion", "--index", str(corpus_index.path), "-k", "5", "--json"]
    result = CliRunner().invoke(indexer.cli.cli, [*args, "--reranker", str(cross_encoder), "--rerank-depth", "5"])
    assert result.exit_code == 0, result.output
    scores = [row["rerank_score"] for row in json.loads(result.stdout)]
    assert None not in scores and scores == sorted(scores, reverse=True), scores
    plain = CliRunner().invoke(indexer.cli.cli, args)
    assert [row["rerank_score"] for row in json.loads(plain.stdout)] == [None] * 5
    broken = CliRunner().invoke(indexer.cli.cli, [*args, "--reranker", str(corpus_index.path)])
    assert broken.exit_code != 0 and "cannot load cross-encoder" in broken.output, broken.output
