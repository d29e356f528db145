"""`POST /v1/embeddings`: OpenAI-compatible, checked with the official `openai` client against the
real server process, and every bad input through Litestar's TestClient."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import openai
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.normalize import normalize_query
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import RunningServer, start_server
from tests.task_models import tiny_index

MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    return tiny_index(tmp_path_factory.mktemp("embeddings"), embedder, keywords)


@pytest.fixture(scope="module")
def client(index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        yield client


@pytest.fixture(scope="module")
def server(index: IndexDirectory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(index.path, tmp_path_factory.mktemp("logs") / "server.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def openai_client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)


def test_float_vectors_are_the_models_normalized_embeddings(client: TestClient, embedder: Embedder) -> None:
    texts = ["東京の天気", "ｶﾀｶﾅ", "weather in Tokyo"]
    response = client.post("/v1/embeddings", json={"input": texts, "model": MODEL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and body["data"][0]["object"] == "embedding"
    vectors = np.array([d["embedding"] for d in body["data"]])
    expected = embedder.embed([normalize_query(t) for t in texts])
    assert vectors.shape == (3, 384) and vectors == pytest.approx(expected, abs=1e-6)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 3


def test_base64_is_little_endian_float32(client: TestClient) -> None:
    floats = client.post("/v1/embeddings", json={"input": "hello", "model": MODEL}).json()
    packed = client.post("/v1/embeddings", json={"input": "hello", "model": MODEL, "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert decoded == pytest.approx(np.array(floats["data"][0]["embedding"]), abs=1e-7)


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"])
def test_the_model_answers_to_its_aliases(client: TestClient, name: str) -> None:
    response = client.post("/v1/embeddings", json={"input": "x", "model": name})
    assert response.status_code == 200 and response.json()["model"] == MODEL


def test_over_long_inputs_are_refused_unless_truncated(client: TestClient) -> None:
    long = "tokenization " * 300
    refused = client.post("/v1/embeddings", json={"input": ["short", long], "model": MODEL})
    assert refused.status_code == 400
    assert "input[1]" in refused.json()["detail"] and "truncate" in refused.json()["detail"]
    cut = client.post("/v1/embeddings", json={"input": ["short", long], "model": MODEL, "truncate": True})
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] <= 2 * 256


@pytest.mark.parametrize(
    "payload,status,field",
    [
        ({"input": "x", "model": "text-embedding-3-small"}, 404, "text-embedding-3-small"),
        ({"input": "x"}, 400, "model"),
        ({"model": MODEL}, 400, "input"),
        ({"input": [], "model": MODEL}, 400, "input"),
        ({"input": "", "model": MODEL}, 400, "input"),
        ({"input": ["x"] * 257, "model": MODEL}, 400, "input"),
        ({"input": [[101, 2023]], "model": MODEL}, 400, "input"),
        ({"input": ["x", 3], "model": MODEL}, 400, "input"),
        ({"input": "x" * 20_001, "model": MODEL}, 400, "input"),
        ({"input": "x", "model": MODEL, "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "x", "model": MODEL, "dimensions": 128}, 400, "dimensions"),
    ],
)
def test_bad_embedding_requests(client: TestClient, payload: dict, status: int, field: str) -> None:
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert field in body["error"]["message"] and body["error"]["type"] == "invalid_request_error"
    assert body["detail"] in body["error"]["message"]  # the server's own shape is kept beside OpenAI's


def test_openai_client_against_the_real_server(openai_client: openai.OpenAI, embedder: Embedder) -> None:
    texts = ["読み解き", "A sentence in English."]
    floats = openai_client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and floats.model == MODEL
    expected = embedder.embed([normalize_query(t) for t in texts])
    assert np.array([d.embedding for d in floats.data]) == pytest.approx(expected, abs=1e-6)
    packed = openai_client.embeddings.create(model=MODEL, input=texts, encoding_format="base64")
    decoded = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in packed.data]  # type: ignore[arg-type]
    assert np.array(decoded) == pytest.approx(expected, abs=1e-6)
    default = openai_client.embeddings.create(model=MODEL, input="読み解き")  # the client asks for base64 itself
    assert np.array(default.data[0].embedding) == pytest.approx(expected[0], abs=1e-6)
    assert default.usage.prompt_tokens > 0
    assert [m.id for m in openai_client.models.list()] == [MODEL, "yomitoki-rag", "smollm2-135m-instruct"]


def test_openai_client_sees_clear_errors(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not served here") as missing:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert missing.value.param == "model" and missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="length <= 256") as oversize:
        openai_client.embeddings.create(model=MODEL, input=["x"] * 257)
    assert oversize.value.param == "input"
    with pytest.raises(openai.BadRequestError, match="truncate") as too_long:
        openai_client.embeddings.create(model=MODEL, input=["fine", "word " * 300])
    assert too_long.value.param == "input[1]"
