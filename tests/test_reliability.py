"""Keep serving while re-indexing; drain on SIGTERM; one log line and metrics per request.

The main test runs concurrent searches against the real server process while
`yomitoki index` adds and removes documents several times. Each generation
holds exactly one marker document (`marker-N.md`, containing "zqxmarker"), so
every answer can be checked against the generation it says served it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.live_index import LiveIndex
from server.settings import ServerSettings
from tests.conftest import RunningServer, build, scraped, start_server, yomitoki

LIGHT_MODEL = "use-multilingual-v3"
ROUNDS = 3          # re-indexes while the load runs
CLIENTS = 4         # concurrent client threads
BASE_DOCS = {
    "tokenizers.md": "# Tokenizers\n\nWordPiece and SentencePiece split text into subword tokens.\n",
    "fusion.md": "# Fusion\n\nReciprocal rank fusion merges dense and keyword rankings.\n",
    "tokyo.md": "# 東京\n\n東京と銀座の検索について書いた文書です。\n",
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The bundled USE model (numpy): its command line starts in a third of MiniLM's time, which
    matters when `yomitoki index` runs many times; what is tested does not depend on the model."""
    return load_embedder(LIGHT_MODEL)

def write_round(corpus: Path, round_: int) -> None:
    """The corpus of one round: the base documents, marker-N alone, and two changing extras."""
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in BASE_DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    for path in corpus.glob("marker-*.md"):
        path.unlink()
    (corpus / f"marker-{round_}.md").write_text(
        f"# Marker {round_}\n\nzqxmarker belongs to round {round_} only.\n", encoding="utf-8")
    (corpus / f"extra-{round_}.md").write_text(f"# Extra {round_}\n\nAdded in round {round_}.\n", encoding="utf-8")
    stale = corpus / f"extra-{round_ - 2}.md"
    stale.unlink(missing_ok=True)


class Load:
    """Client threads searching until stopped, keeping what each answer said for checking later."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[str, frozenset[str]]] = []  # (generation, marker documents found)
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()

    def client(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            for count in range(10**9):
                if self.stop.is_set():
                    return
                self.one(http, marker=count % 4 != 3)
                time.sleep(0.01)  # steady load, leaving CPU for the builds

    def one(self, http: httpx.Client, marker: bool) -> None:
        body = ({"query": "zqxmarker", "mode": "keyword", "k": 10} if marker
                else {"query": "subword tokens", "mode": "hybrid", "k": 5})
        problem, answer = None, {}
        try:
            response = http.post("/search", json=body)
            if response.status_code != 200:
                problem = f"{response.status_code}: {response.text[:200]}"
            else:
                answer = response.json()
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.requests += 1
            if problem:
                self.failures.append(problem)
                return
            self.served[answer["generation"]] += 1
            if marker:
                found = frozenset(h["source"] for h in answer["hits"] if h["source"].startswith("marker-"))
                self.answers.append((answer["generation"], found))

    def inconsistent(self, expected: dict[str, str]) -> list[str]:
        """Answers whose marker documents are not exactly those of the generation they name."""
        return [f"{generation} answered with {sorted(found)}, it holds {expected.get(generation)}"
                for generation, found in self.answers if found != {expected.get(generation)}]


def wait_for_generation(url: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/health", timeout=10).json()["generation"] == name:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server did not switch to {name} within {timeout}s")


@pytest.fixture(scope="module")
def served_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                 keywords: KeywordTokenizer) -> Iterator[tuple[Path, Path, RunningServer, dict[str, str]]]:
    root = tmp_path_factory.mktemp("reindex")
    corpus, index = root / "corpus", root / "index"
    write_round(corpus, 1)
    first = build(corpus, index, embedder, keywords).generation
    server = start_server(index, root / "server.log", "--threads", "1")
    try:
        yield corpus, index, server, {first: "marker-1.md"}
    finally:
        server.stop()


def test_reindexing_while_serving_fails_no_request(
    served_index: tuple[Path, Path, RunningServer, dict[str, str]]
) -> None:
    corpus, index, server, expected = served_index
    load = Load(server.url)
    threads = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(2, ROUNDS + 2):
            write_round(corpus, round_)
            command = yomitoki("index", str(corpus), "--index", str(index), "--model", LIGHT_MODEL, "--json")
            result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            assert report["added"] >= 2 and report["removed"] >= 1, report
            expected[report["generation"]] = f"marker-{round_}.md"
            wait_for_generation(server.url, report["generation"])
            time.sleep(0.5)  # some load on the new generation before the next build
    finally:
        load.stop.set()
        for thread in threads:
            thread.join()
    print(f"\nre-index under load: {load.requests} requests, {len(load.failures)} failed; "
          f"answers per generation: {dict(sorted(load.served.items()))}")
    assert load.failures == []
    assert load.inconsistent(expected) == []
    assert load.requests >= 100
    assert len(load.served) >= ROUNDS, load.served  # the load really saw the swaps
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert "yomitoki_index_open_generations 1" in metrics  # retired generations were closed
    assert f"yomitoki_index_swaps {ROUNDS}" in metrics
    log = server.log.read_text()
    for name in list(expected)[:-1]:
        assert f"closed generation {name}" in log


def test_sigterm_drains_in_flight_requests_and_exits(
    served_index: tuple[Path, Path, RunningServer, dict[str, str]]
) -> None:
    _, _, server, _ = served_index
    query = " ".join(["tokenizers and reciprocal rank fusion over 東京"] * 40)[:600]

    def search(n: int) -> int:
        return httpx.post(f"{server.url}/search", json={"query": f"{n} {query}", "mode": "hybrid", "k": 20},
                          timeout=60).status_code

    def reached() -> tuple[int, int]:
        """(searches answered, searches in flight) by the server's own count (the metrics request is in flight)."""
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        answered = sum(float(n) for n in re.findall(r'^yomitoki_requests_total\{[^}]*route="/search"[^}]*\} (\S+)$',
                                                     metrics, re.M))
        in_flight = int(re.search(r"^yomitoki_requests_in_flight (\d+)\.0$", metrics, re.M).group(1)) - 1
        return int(answered), in_flight

    answered_before, _ = reached()
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(search, n) for n in range(10)]
        # SIGTERM once every search has reached the app: a connection still in the listen queue when the
        # server stops listening is reset, which is not a request dropped in flight
        deadline = time.monotonic() + 60
        answered, in_flight = reached()
        while answered - answered_before + in_flight < 10:
            assert time.monotonic() < deadline, f"only {answered - answered_before + in_flight} of 10 searches " \
                                                f"reached the server within 60 s"
            time.sleep(0.02)
            answered, in_flight = reached()
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        statuses = [future.result() for future in futures]
    server.process.wait(30)
    print(f"\nSIGTERM with {in_flight} of 10 searches in flight: {statuses.count(200)} answered 200, "
          f"exit after {time.monotonic() - sent:.1f}s")
    assert statuses == [200] * len(statuses)
    assert time.monotonic() - sent < 15
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()


def test_old_generation_stays_open_until_its_last_lease_ends(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_round(corpus, 1)
    first = build(corpus, index, embedder, keywords).generation
    live = LiveIndex(IndexDirectory(index), embedder)
    try:
        with live.lease() as old:
            write_round(corpus, 2)
            second = build(corpus, index, embedder, keywords).generation
            assert live.refresh() is True and live.generation == second
            assert live.open_generations == [first, second]
            assert not old.readings.ready  # built on first use, or by prepare() as the server starts
            with live.lease() as new:
                assert new.readings.ready  # built before the swap, so no query waits for it
            hits = old.search("zqxmarker", mode="keyword")  # the request in flight still works
            assert [h.source for h in hits] == ["marker-1.md"]
        assert live.open_generations == [second]
        with live.lease() as new:
            assert [h.source for h in new.search("zqxmarker", mode="keyword")] == ["marker-2.md"]
    finally:
        live.close()
    assert live.open_generations == []


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_one_log_line_per_request_and_prometheus_metrics(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    write_round(tmp_path / "corpus", 1)
    generation = build(tmp_path / "corpus", tmp_path / "index", embedder, keywords).generation
    access, collect = logging.getLogger("yomitoki.access"), Collect()  # Litestar reconfigures the root logger
    access.addHandler(collect)
    access.setLevel(logging.INFO)
    try:
        with TestClient(create_app(ServerSettings(index_dir=tmp_path / "index"))) as client:
            assert client.post("/search", json={"query": "zqxmarker", "mode": "keyword"}).status_code == 200
            assert client.get("/search", params={"q": "fusion", "k": 0}).status_code == 400
            assert client.post("/search", json={"query": "fusion", "mode": "dense"}).status_code == 200
            assert client.get("/no/such/page").status_code == 404
            metrics = client.get("/metrics")
    finally:
        access.removeHandler(collect)
    lines = collect.lines
    assert len(lines) == 5, lines
    assert re.fullmatch(rf"method=POST path=/search status=200 duration_ms=[\d.]+ generation={generation}", lines[0])
    assert lines[1].startswith("method=GET path=/search status=400") and lines[1].endswith("generation=-")
    assert "status=404" in lines[3]
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert scraped(text, "yomitoki_requests_total", method="POST", route="/search", status="200") == 2
    assert scraped(text, "yomitoki_requests_total", method="GET", route="/search", status="400") == 1
    assert scraped(text, "yomitoki_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert scraped(text, "yomitoki_request_duration_seconds_count", method="POST", route="/search") == 2
    assert scraped(text, "yomitoki_request_duration_seconds_bucket", method="POST", route="/search", le="+Inf") == 2
    assert f'yomitoki_index_info{{generation="{generation}",model="{LIGHT_MODEL}"}} 1' in text
    assert re.search(r"^yomitoki_index_documents 5$", text, re.M)
    assert re.search(r"^yomitoki_index_vectors [1-9]\d*$", text, re.M)
    assert re.search(r"^yomitoki_index_bytes [1-9]\d*$", text, re.M)
    assert 'yomitoki_batcher_batch_size_count{kind="query_batcher"} 1' in text  # the dense search's query
    assert scraped(text, "yomitoki_batch_size_count", kind="query") == 1  # ... given to the model alone
    assert scraped(text, "yomitoki_batch_size_bucket", kind="query", le="1.0") == 1
