"""`POST /similarity`: embedding cosine by default, a configured cross-encoder when there is one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.normalize import normalize_query
from server.app import create_app
from server.nlp.similarity import cosine_pairs
from server.settings import ServerSettings
from tests.conftest import start_server
from tests.task_models import save_tiny_cross_encoder, tiny_index


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    return tiny_index(tmp_path_factory.mktemp("similarity"), embedder, keywords)


@pytest.fixture(scope="module")
def client(index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        yield client


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


def test_pairs_score_paraphrases_above_unrelated_texts(client: TestClient) -> None:
    response = client.post("/similarity", json={"pairs": [
        ["A man is playing a guitar.", "A person plays the guitar."],
        ["A man is playing a guitar.", "The stock market fell sharply today."],
    ]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "cosine" and body["model"] == "all-minilm-l6-v2"
    paraphrase, unrelated = body["scores"]
    assert paraphrase > 0.6 > unrelated and -1 <= unrelated <= 1


def test_source_against_targets_keeps_the_order_of_targets(client: TestClient) -> None:
    targets = ["The cat sleeps on the sofa.", "Interest rates rose again.", "A kitten naps on a couch."]
    body = client.post("/similarity", json={"source": "A cat is sleeping on a couch.", "targets": targets}).json()
    assert len(body["scores"]) == 3
    assert body["scores"][1] < min(body["scores"][0], body["scores"][2])


def test_texts_are_normalized_like_queries(client: TestClient) -> None:
    """Half-width katakana and its full-width form are the same text after NFKC."""
    body = client.post("/similarity", json={"source": "ﾄｰｸﾅｲｻﾞの使い方", "targets": ["トークナイザの使い方"]}).json()
    assert body["scores"][0] == pytest.approx(1.0, abs=1e-5)


def test_a_cosine_is_never_past_one(client: TestClient) -> None:
    texts = ["ﾄｰｸﾅｲｻﾞ", "ｶﾞ", "A man is playing a guitar.", "形態素解析", "トークナイザの使い方"]
    body = client.post("/similarity", json={"pairs": [[text, text] for text in texts]}).json()
    assert all(-1.0 <= score <= 1.0 for score in body["scores"]), body  # float32 sums rounded a hair past 1


def test_cosine_pairs_is_the_dot_product_of_normalized_embeddings(embedder: Embedder) -> None:
    pairs = [("東京の天気", "weather in Tokyo"), ("ｶﾀｶﾅ", "カタカナ")]
    vectors = embedder.embed([normalize_query(t) for pair in pairs for t in pair])
    expected = [float(vectors[0] @ vectors[1]), float(vectors[2] @ vectors[3])]
    assert cosine_pairs(embedder, pairs) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "payload,field",
    [
        ({}, "source"),
        ({"source": "a"}, "targets"),
        ({"targets": ["a"]}, "source"),
        ({"pairs": [["a", "b"]], "source": "a", "targets": ["b"]}, "pairs"),
        ({"pairs": []}, "pairs"),
        ({"pairs": [["a", "b", "c"]]}, "pairs[0]"),
        ({"pairs": [["a", ""]]}, "pairs[0][1]"),
        ({"pairs": [["a", "b"]] * 257}, "pairs"),
        ({"source": "a", "targets": []}, "targets"),
        ({"source": "a", "targets": ["x" * 10_001]}, "targets[0]"),
        ({"pairs": [["a", "b"]], "method": "magic"}, "method"),
        ({"pairs": [["a", "b"]], "method": "cross-encoder"}, "method"),
        ({"pairs": [["a", "b"]], "colour": "red"}, "colour"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/similarity", json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    where = " ".join([body["detail"], *(e.get("key", "") + " " + e.get("message", "") for e in body.get("extra", []))])
    assert field in where, body


def test_a_configured_cross_encoder_scores_the_pairs(index: IndexDirectory, cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    pairs = [["ｶﾞｲﾄﾞ", "guide"], ["green tea", "お茶"]]
    settings = ServerSettings(index_dir=index.path, generator=None, sts_model=str(cross_encoder))
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["models"]["sts"]["loaded"] is False  # lazy: not loaded at start
        body = client.post("/similarity", json={"pairs": pairs}).json()
        assert body["method"] == "cross-encoder" and body["model"] == str(cross_encoder.resolve())
        expected = CrossEncoder(str(cross_encoder), device="cpu").predict(
            [(normalize_query(a), normalize_query(b)) for a, b in pairs])
        assert body["scores"] == pytest.approx(np.asarray(expected, dtype=float).tolist(), abs=1e-5)
        cosine = client.post("/similarity", json={"pairs": pairs, "method": "cosine"}).json()
        assert cosine["method"] == "cosine" and cosine["scores"] != body["scores"]


def test_a_cross_encoder_with_several_outputs_is_refused_with_503(index: IndexDirectory, tmp_path: Path) -> None:
    nli = save_tiny_cross_encoder(tmp_path / "nli", outputs=3)
    settings = ServerSettings(index_dir=index.path, generator=None, sts_model=str(nli))
    with TestClient(create_app(settings)) as client:
        response = client.post("/similarity", json={"pairs": [["a", "b"]]})
        assert response.status_code == 503
        assert "3 scores per pair" in response.json()["detail"]
        assert client.post("/similarity", json={"pairs": [["a", "b"]], "method": "cosine"}).status_code == 200


def test_serve_takes_the_cross_encoder_option(index: IndexDirectory, cross_encoder: Path, tmp_path: Path) -> None:
    server = start_server(index.path, tmp_path / "server.log", "--sts-model", str(cross_encoder))
    try:
        body = httpx.post(f"{server.url}/similarity", json={"source": "tea", "targets": ["お茶"]}, timeout=60).json()
        assert body["method"] == "cross-encoder" and len(body["scores"]) == 1
    finally:
        server.stop()
