"""`/search` over HTTP against its in-process floor, for benchmarks/performance.py.

The floor is the same hybrid search called in this process (`Searcher.search`,
query embedding included), one query after another. The server is the real
`yomitoki serve` process; the load comes from benchmarks/loadgen.py in a third
process, with 1, 8 and 32 closed-loop clients for a bounded time each.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from indexer.search.opening import open_index

HERE = Path(__file__).resolve().parent


def scifact_queries(data: Path) -> list[str]:
    return [json.loads(line)["text"] for line in (data / "scifact" / "queries.jsonl").open(encoding="utf-8")]


def summarize(latencies_ms: list[float], seconds: float) -> dict[str, float]:
    values = np.asarray(latencies_ms)
    return {"requests": len(values), "median_ms": float(np.median(values)),
            "p99_ms": float(np.percentile(values, 99)), "requests_per_s": len(values) / seconds}


def in_process_floor(index: Path, queries: list[str], limit: int = 300) -> dict[str, float]:
    searcher = open_index(index)
    try:
        for query in queries[:20]:  # warm-up
            searcher.search(query, mode="hybrid", k=10)
        latencies = []
        started = time.perf_counter()
        for query in queries[:limit]:
            began = time.perf_counter()
            searcher.search(query, mode="hybrid", k=10)
            latencies.append((time.perf_counter() - began) * 1000)
        return summarize(latencies, time.perf_counter() - started)
    finally:
        searcher.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(index: Path, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--index", str(index), "--port", str(port),
         "--log-level", "warning", *extra], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{log.read_text()[-3000:]}")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children (serve's workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def run_load(url: str, clients: int, seconds: float, queries_file: Path, workdir: Path,
             server_pid: int) -> dict[str, float]:
    """One closed-loop load run, with the CPU time it cost: the server's and the load generator's."""
    out = workdir / f"load-{clients}.json"
    server_before, children_before = process_tree_cpu(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, str(HERE / "loadgen.py"), "--url", f"{url}/search", "--clients",
                    str(clients), "--seconds", str(seconds), "--queries", str(queries_file), "--out", str(out)],
                   check=True, timeout=seconds + 120)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = process_tree_cpu(server_pid) - server_before
    loadgen_cpu = (children_after.ru_utime + children_after.ru_stime
                   - children_before.ru_utime - children_before.ru_stime)
    result = json.loads(out.read_text())
    # the generator runs its warm-up second too: count its requests as well when dividing CPU time
    served = max(1, result.get("sent", len(result["latencies_ms"])))
    return {**summarize(result["latencies_ms"], seconds), "errors": result["errors"],
            "server_cpu_ms_per_request": server_cpu * 1000 / served,
            "loadgen_cpu_ms_per_request": loadgen_cpu * 1000 / served}


def ceiling(one: dict[str, float], most: dict[str, float], clients: int, cores: int) -> dict[str, float]:
    """What this machine allows at the CPU cost measured under the heaviest load.

    With every core busy, requests/s cannot pass cores / (CPU per request),
    server and load generator together; a closed loop of `clients` then
    waits at least clients / that rate per request, on average.
    """
    cpu_ms = most["server_cpu_ms_per_request"] + most["loadgen_cpu_ms_per_request"]
    most_per_s = cores * 1000 / cpu_ms
    return {"cores": cores, "cpu_ms_per_request": cpu_ms, "max_requests_per_s": most_per_s,
            "max_throughput_ratio": most_per_s / one["requests_per_s"],
            "min_mean_latency_ms": clients * 1000 / most_per_s}


WORKERS = ("--workers", "2", "--threads", "1")  # the second configuration: one process per core


def measure_http(index: Path, data: Path, workdir: Path, seconds: float,
                 concurrency: tuple[int, ...] = (1, 8, 32)) -> dict[str, Any]:
    queries = scifact_queries(data)
    floor = in_process_floor(index, queries)
    queries_file = workdir / "queries.json"
    queries_file.write_text(json.dumps(queries))
    runs = {}
    for name, extra in (("one process", ()), ("two workers", WORKERS)):
        process, url = start_server(index, workdir / f"server-{len(runs)}.log", *extra)
        try:
            for query in queries[:60]:  # warm-up of the server's caches and models (of every worker)
                httpx.post(f"{url}/search", json={"query": query, "k": 10}, timeout=60).raise_for_status()
            loads = {c: run_load(url, c, seconds, queries_file, workdir, process.pid) for c in concurrency}
        finally:
            process.terminate()
            process.wait(30)
        one, most = loads[concurrency[0]], loads[concurrency[-1]]
        runs[name] = {
            "serve_args": list(extra), "http": {str(c): v for c, v in loads.items()},
            "targets": {
                "one_client_median_ms": one["median_ms"],
                "one_client_limit_ms": 1.3 * floor["median_ms"] + 1.0,
                "throughput_ratio": most["requests_per_s"] / one["requests_per_s"],
                "most_clients_p99_ms": most["p99_ms"],
            },
            "ceiling": ceiling(one, most, concurrency[-1], os.cpu_count() or 1),
        }
    return {"floor": floor, **runs["one process"], "configurations": runs}
