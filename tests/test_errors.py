"""One error root: each family answers with its own HTTP status and CLI exit code; anything else is a 500.

The route tests make `Searcher.document` raise (the only fake here: the test is
about how an error is shown, not about what raised it).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

import indexer
import server
from indexer.cli import cli
from indexer.errors import ConflictError, InputError, NotFoundError, UnavailableError, YomitokiError
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from server.app import create_app
from server.settings import ServerSettings


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def client(corpus_index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path, generator=None))) as client:
        yield client


@pytest.fixture
def server_log() -> Iterator[Collect]:
    collect, logger = Collect(), logging.getLogger("yomitoki.server")  # Litestar reconfigures the root logger
    logger.addHandler(collect)
    try:
        yield collect
    finally:
        logger.removeHandler(collect)


def failing_with(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def document(self: Searcher, doc_id: str) -> None:
        raise error

    monkeypatch.setattr(Searcher, "document", document)


@pytest.mark.parametrize(("error", "status"), [
    (InputError("must be a word", "doc_id"), 400),
    (NotFoundError("no such document"), 404),
    (ConflictError("already there"), 409),
])
def test_our_errors_answer_with_their_status_and_message(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int) -> None:
    failing_with(monkeypatch, error)
    response = client.get("/documents/x")
    assert response.status_code == status, response.text
    assert response.json() == {"status_code": status, "detail": str(error)}


@pytest.mark.parametrize("path", ["/documents/kitei/ryohi.md", "/documents/kitei/ryohi.md/related",
                                  "/documents/kitei%2Fryohi.md/file"])
def test_a_key_with_a_slash_in_a_path_is_a_404_that_says_where_such_keys_go(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "/documents?key=KEY" in response.json()["detail"] and "/documents/ID/related" in response.json()["detail"]


def test_an_unknown_address_elsewhere_is_a_plain_404(client: TestClient) -> None:
    response = client.get("/no/such/place")
    assert (response.status_code, response.json()["detail"]) == (404, "Not Found")


def test_unavailable_is_503_with_retry_after(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_with(monkeypatch, UnavailableError("the model is busy", retry_after=7))
    response = client.get("/documents/x")
    assert response.status_code == 503 and response.headers["retry-after"] == "7"
    assert response.json()["detail"] == "the model is busy"


@pytest.mark.parametrize("error", [ValueError("an internal bug"), KeyError("chunk_id"),
                                   YomitokiError("a failure we name but that is ours, not the client's")])
def test_anything_unexpected_is_a_500_with_a_request_id_in_the_log_and_the_response(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, server_log: Collect, error: Exception) -> None:
    failing_with(monkeypatch, error)
    response = client.get("/documents/x")
    assert response.status_code == 500, response.text  # never a 400: the client did nothing wrong
    body = response.json()
    request_id = body["extra"]["request_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id) and request_id in body["detail"]
    assert response.headers["x-request-id"] == request_id
    assert "internal bug" not in body["detail"]  # internals stay in the log
    logged = [r for r in server_log.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[1] is error


def test_every_error_class_of_the_product_has_the_one_root() -> None:
    classes = []
    for package in (indexer, server):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if module.name.endswith("__main__"):
                continue
            loaded = importlib.import_module(module.name)
            classes += [c for _, c in inspect.getmembers(loaded, inspect.isclass)
                        if c.__module__ == module.name and issubclass(c, Exception) and not c.__name__.startswith("_")]
    assert len(classes) >= 20, classes
    strays = [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, YomitokiError)]
    assert not strays, f"not under YomitokiError: {strays}"


def test_the_command_line_exits_with_each_errors_code(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["search", "BM25", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "yomitoki index" in missing.output, missing.output
    misused = CliRunner().invoke(cli, ["info", "--index", str(tmp_path / "none"), "--milvus-collection", "c"])
    assert misused.exit_code == 2 and "--milvus-collection needs --milvus-uri" in misused.output, misused.output
    both = CliRunner().invoke(cli, ["index", str(tmp_path), "--index", str(tmp_path / "i"), "--store", "embedded",
                                    "--milvus-uri", str(tmp_path / "m.db")])
    assert both.exit_code == 2 and "--milvus-uri" in both.output and not (tmp_path / "m.db").exists(), both.output
    lite = tmp_path / "typo.db"
    absent = CliRunner().invoke(cli, ["search", "BM25", "--index", str(tmp_path / "i"), "--milvus-uri", str(lite)])
    assert absent.exit_code == 1 and f"no Milvus Lite file at {lite}" in absent.output, absent.output
    assert not lite.exists()  # a read left no database behind
    described = CliRunner().invoke(cli, ["info", "--index", str(tmp_path / "i"), "--milvus-uri", str(lite)])
    assert described.exit_code == 1 and f"no Milvus Lite file at {lite}" in described.output, described.output
    assert not lite.exists()
    deep = CliRunner().invoke(cli, ["search", "BM25", "--index", str(tmp_path / "none"), "--offset", "995"])
    assert deep.exit_code == 2 and "at most 1000, got 995 + 10" in deep.output, deep.output
