"""Shared fixtures: the real bundled model, loaded once, and the default corpus indexed once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.build.builder import BuildOptions, IndexBuilder
from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer, load_keyword_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SHARED_DATA = ROOT.parent / "shared" / "data"
MODEL = "all-minilm-l6-v2"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(MODEL)


@pytest.fixture(scope="session")
def keywords() -> KeywordTokenizer:
    return load_keyword_tokenizer()


def build(corpus: Path, index: Path, embedder: Embedder, keywords: KeywordTokenizer, **options: object):
    return IndexBuilder(IndexDirectory(index), embedder, keywords, BuildOptions(**options)).build(corpus)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                 keywords: KeywordTokenizer) -> IndexDirectory:
    """The default corpus, indexed once for the whole session (read-only for tests)."""
    index = tmp_path_factory.mktemp("corpus-index")
    build(CORPUS, index, embedder, keywords)
    return IndexDirectory(index)


@pytest.fixture(scope="session")
def searcher(corpus_index: IndexDirectory, embedder: Embedder) -> Iterator[Searcher]:
    searcher = Searcher(corpus_index.current(), embedder)
    yield searcher
    searcher.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def yomitoki(*args: str) -> list[str]:
    """The command line, run as a real subprocess of this interpreter's environment."""
    return [sys.executable, "-m", "server", *args]


class RunningServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(index: Path, log: Path, *extra: str, timeout: float = 120) -> RunningServer:
    """Start `yomitoki serve` as a real process on a free port and wait until /health answers."""
    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        yomitoki("serve", "--index", str(index), "--port", str(port), *extra),
        stdout=handle, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return RunningServer(process, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{log.read_text()}")


@pytest.fixture(scope="session")
def live_server(corpus_index: IndexDirectory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real server process over the corpus index, shared by end-to-end tests."""
    server = start_server(corpus_index.path, tmp_path_factory.mktemp("logs") / "server.log")
    yield server
    server.stop()


def scraped(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample (name and exactly these labels) of a /metrics page; None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


@pytest.fixture(scope="session")
def document_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PDF and Word files made once per session by real producers (benchmarks/document_files.py)."""
    from benchmarks.document_files import make_test_documents

    return make_test_documents(tmp_path_factory.mktemp("document-files"))
