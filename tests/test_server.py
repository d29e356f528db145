"""The HTTP API through Litestar's TestClient (the lifespan runs) and one real server process."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from indexer.store.generations import IndexDirectory
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import CORPUS, RunningServer, yomitoki


@pytest.fixture(scope="module")
def client(corpus_index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path))) as client:
        yield client


def test_search_post_returns_hits_with_offsets_into_the_original(client: TestClient) -> None:
    response = client.post("/search", json={"query": "銀座", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "hybrid" and body["generation"].startswith("gen-")
    hit = body["hits"][0]
    original = (CORPUS / hit["source"]).read_text(encoding="utf-8")
    assert original[hit["start"] : hit["end"]] == hit["text"]
    assert any(original[s:e] == "銀座" for s, e in hit["highlights"])


def test_search_get_for_browsers(client: TestClient) -> None:
    response = client.get("/search", params={"q": "special tokens", "mode": "keyword", "k": 2})
    assert response.status_code == 200, response.text
    assert len(response.json()["hits"]) == 2


def test_search_filters(client: TestClient) -> None:
    body = client.post("/search", json={"query": "token", "filters": {"language": "en"}}).json()
    assert body["hits"] and all(h["language"] == "en" for h in body["hits"])


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"query": ""}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({"query": "token", "k": 0}, "k"),
        ({"query": "token", "k": 101}, "k"),
        ({"query": "token", "mode": "fuzzy"}, "mode"),
        ({"query": "token", "filters": {"colour": "red"}}, "colour"),
        ({"k": 3}, "query"),
    ],
)
def test_bad_search_requests_are_400_with_the_field_named(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/search", json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400 and "detail" in body
    assert field in response.text


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status_code"] == 400


def test_query_that_normalizes_to_nothing_is_400(client: TestClient) -> None:
    response = client.post("/search", json={"query": "\u0000\u0001"})
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_documents_by_id(client: TestClient) -> None:
    hit = client.post("/search", json={"query": "東京", "k": 1}).json()["hits"][0]
    doc = client.get(f"/documents/{hit['doc_id']}").json()
    assert doc["text"] == (CORPUS / hit["source"]).read_text(encoding="utf-8")
    missing = client.get("/documents/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_health_and_schema(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["documents"] >= 40
    assert health["models"]["embedding"]["loaded"] is True
    assert client.head("/health").status_code == 200  # uptime monitors that probe with HEAD
    assert client.get("/schema/openapi.json").json()["paths"]["/search"]
    assert client.get("/schema").status_code == 200


def test_no_two_paths_differ_only_in_a_parameters_name(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]  # OpenAPI counts them as one path, defined twice
    shapes = [re.sub(r"\{[^}]*\}", "{}", path) for path in paths]
    assert len(shapes) == len(set(shapes)), sorted(paths)
    assert {"get", "put", "delete"} <= set(paths["/documents/{key}"])


def test_missing_index_refuses_to_start_and_says_what_to_run(tmp_path: Path) -> None:
    result = subprocess.run(yomitoki("serve", "--index", str(tmp_path / "none")),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "yomitoki index" in result.stderr, result.stderr


def test_a_port_in_use_fails_at_once_with_status_1_and_bad_threads_with_2(corpus_index: IndexDirectory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(yomitoki("serve", "--index", str(corpus_index.path), "--port", str(port)),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr  # not uvicorn's 3, which `index` gives skipped files
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr, result.stderr
        assert "Application startup" not in result.stderr  # refused before loading any model
    for threads in ("0", "-1"):
        result = subprocess.run(yomitoki("serve", "--index", str(corpus_index.path), "--threads", threads),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "--threads" in result.stderr, result.stderr


def test_the_real_server_on_loopback_refuses_another_hosts_name(live_server: RunningServer) -> None:
    assert httpx.get(f"{live_server.url}/health", timeout=30).status_code == 200
    refused = httpx.get(f"{live_server.url}/health", headers={"Host": "rebound.example"}, timeout=30)
    assert refused.status_code == 403 and "DNS rebinding" in refused.json()["detail"], refused.text


def test_real_server_process_answers_search(live_server: RunningServer) -> None:
    response = httpx.post(f"{live_server.url}/search", json={"query": "ﾍﾞｸﾄﾙ検索", "k": 3}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["hits"]
