"""`yomitoki serve --workers N`: several server processes on one port over one index directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from indexer.embed.base import Embedder
from indexer.text.keywords import KeywordTokenizer
from server.metrics import MULTIPROCESS_ENV, Metrics
from tests.conftest import CORPUS, build, scraped, start_server


def _health_pids(url: str, wanted: int, deadline_s: float) -> tuple[set[int], int]:
    """The worker pids that answer /health (new connections are spread over the processes), and the calls made."""
    pids: set[int] = set()
    calls = 0
    deadline = time.monotonic() + deadline_s
    while len(pids) < wanted and time.monotonic() < deadline:
        pids.add(httpx.get(f"{url}/health", timeout=30).json()["pid"])
        calls += 1
        time.sleep(0.05)
    return pids, calls


def test_two_workers_share_the_port_and_swap_generations_together(
        tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted(CORPUS.glob("*.md"))[:4]:
        shutil.copy(path, corpus / path.name)
    index = tmp_path / "index"
    build(corpus, index, embedder, keywords)
    server = start_server(index, tmp_path / "server.log", "--workers", "2", "--threads", "1", timeout=300)
    try:
        workers = [p for p in psutil.Process(server.process.pid).children(recursive=True)
                   if "python" in p.name().lower()]
        assert len([p for p in workers if p.cmdline() and "multiprocessing" in " ".join(p.cmdline())]) >= 2
        pids, health_calls = _health_pids(server.url, 2, 240)
        assert len(pids) == 2, f"only {pids} answered"

        def search(_: int) -> tuple[int, str, tuple[str, ...]]:
            answer = httpx.post(f"{server.url}/search", json={"query": "tokenization", "k": 3}, timeout=60)
            body = answer.json()
            return answer.status_code, body["generation"], tuple(h["doc_id"] for h in body["hits"])

        with ThreadPoolExecutor(8) as pool:
            answers = set(pool.map(search, range(40)))
        assert len(answers) == 1 and next(iter(answers))[0] == 200  # identical answers from both processes
        before = next(iter(answers))[1]
        for _ in range(4):  # whichever worker answers the scrape, it counts both workers' requests
            page = httpx.get(f"{server.url}/metrics", timeout=30).text
            health = scraped(page, "yomitoki_requests_total", method="GET", route="/health", status="200")
            assert health == health_calls + 1  # and start_server's first healthy answer
            assert scraped(page, "yomitoki_requests_total", method="POST", route="/search", status="200") == 40
            assert scraped(page, "yomitoki_batch_size_count", kind="query") >= 1  # type: ignore[operator]

        (corpus / "extra.md").write_text("# 追加の文書\n\nworkers swap together: zebrafish quokka.\n", encoding="utf-8")
        build(corpus, index, embedder, keywords)
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while time.monotonic() < deadline:
            with ThreadPoolExecutor(8) as pool:
                latest = {a[1] for a in pool.map(search, range(16))}
            seen |= latest
            if latest == {f"gen-{int(before.split('-')[1]) + 1:06d}"}:
                break
            time.sleep(0.5)
        assert latest != {before} and len(latest) == 1, (seen, latest)
        hits = httpx.get(f"{server.url}/search", params={"q": "zebrafish quokka", "mode": "keyword"},
                         timeout=30).json()["hits"]
        assert hits and "zebrafish" in hits[0]["text"]
        server.process.kill()  # even a SIGKILLed supervisor leaves no worker holding the port
        server.process.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(workers):
            time.sleep(0.2)
        assert not _alive(workers)
    finally:
        server.stop()


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_worker_that_died_mid_request_no_longer_counts_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-request (OOM, a crash) leaves its in-flight gauge behind; a scrape drops it."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    dying = ("from prometheus_client import Gauge; import os; "
             "Gauge('yomitoki_requests_in_flight', '', multiprocess_mode='livesum').inc(2); os._exit(0)")
    subprocess.run([sys.executable, "-c", dying], env={**os.environ, MULTIPROCESS_ENV: str(shared)},
                   check=True, timeout=120)
    assert list(shared.glob("gauge_livesum_*.db"))
    monkeypatch.setenv(MULTIPROCESS_ENV, str(shared))
    in_flight = [line for line in Metrics().render().splitlines() if line.startswith("yomitoki_requests_in_flight ")]
    assert in_flight in ([], ["yomitoki_requests_in_flight 0.0"]), in_flight
    assert not list(shared.glob("gauge_livesum_*.db"))
