"""What `/metrics` reports, through `prometheus_client`, for one process or all workers of a server.

    yomitoki_requests_total{method,route,status}        requests answered
    yomitoki_request_duration_seconds{method,route}     latency histogram
    yomitoki_requests_in_flight                         requests being handled now
    yomitoki_batch_size{kind}                           inputs per batch given to a model (kind="query":
                                                        the query-embedding micro-batcher)
    yomitoki_batcher_batch_size{kind}                   micro-batchers' batches (sum = inputs, count = batches)
    yomitoki_index_*                                    the served generation: documents, chunks,
                                                        vectors, bytes on disk, swaps, open generations

Under `yomitoki serve --workers N` the serve command sets
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode) before the
workers start: each worker writes its counters and histograms to files there
and any worker's scrape adds up every worker's, so one scrape covers the
server. The batcher and index figures describe the worker that answered (they
are the same index in every worker).

`route` is the path template (`/documents/{key:str}`), never the raw path,
so a client cannot grow the number of series; requests that match no route
are counted under `route="<unmatched>"`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
UNMATCHED = "<unmatched>"
CONTENT_TYPE = "text/plain; version=0.0.4"  # Litestar adds "; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch, read when it is imported

disable_created_metrics()  # no `*_created` series: Prometheus does not need them and they double the output


def multiprocess_dir() -> str | None:
    """The folder workers share their figures in, when this process is one of `serve --workers N`."""
    return os.environ.get(MULTIPROCESS_ENV) or os.environ.get(MULTIPROCESS_ENV.lower())


class Metrics:
    """What /metrics reports; one per app (its own registry, so two apps in one process keep apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("yomitoki_requests", "HTTP requests answered, by route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("yomitoki_request_duration_seconds", "Time to answer a request.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("yomitoki_requests_in_flight", "Requests being handled now.",
                               registry=self.registry, multiprocess_mode="livesum")
        self.batches = Histogram("yomitoki_batch_size", "Number of inputs in each batch given to a model.",
                                 ["kind"], buckets=BATCH_BUCKETS, registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_batch(self, kind: str, size: int) -> None:
        """Record the size of one batch handed to a model (called by batchers, from any thread)."""
        self.batches.labels(kind).observe(size)

    def render(self, index: dict[str, Any] | None = None, batchers: dict[str, dict[str, float]] | None = None) -> str:
        """The Prometheus text exposition: every worker's requests and batches, this one's index and batchers."""
        registry = self.registry
        if (shared := multiprocess_dir()) is not None:
            forget_dead_workers(shared)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)
        lines = generate_latest(registry).decode("utf-8").splitlines()
        lines += _batcher_lines(batchers or {}) + _index_lines(index or {})
        return "\n".join(lines) + "\n"


def forget_dead_workers(shared: str) -> None:
    """Drop the live gauges (requests in flight) of workers that are gone: one killed mid-request would
    otherwise count its requests in flight forever. Counters and histograms keep their figures."""
    for file in Path(shared).glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), shared)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a worker that died but is not reaped yet is a zombie: gone all the same
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _batcher_lines(batchers: dict[str, dict[str, float]]) -> list[str]:
    """Batchers' running totals (`batches`, `queries`, `largest`) as a summary and a gauge per kind."""
    if not batchers:
        return []
    lines = ["# HELP yomitoki_batcher_batch_size Inputs per batch formed by a micro-batcher (sum and count).",
             "# TYPE yomitoki_batcher_batch_size summary"]
    for kind, stats in sorted(batchers.items()):
        lines += [f'yomitoki_batcher_batch_size_sum{{kind="{_label(kind)}"}} {_number(stats.get("queries", 0))}',
                  f'yomitoki_batcher_batch_size_count{{kind="{_label(kind)}"}} {_number(stats.get("batches", 0))}']
    lines += ["# HELP yomitoki_batcher_largest_batch The largest batch a micro-batcher has formed.",
              "# TYPE yomitoki_batcher_largest_batch gauge"]
    lines += [f'yomitoki_batcher_largest_batch{{kind="{_label(kind)}"}} {_number(stats.get("largest", 0))}'
              for kind, stats in sorted(batchers.items())]
    return lines


def _index_lines(index: dict[str, Any]) -> list[str]:
    if not index:
        return []
    lines = ["# HELP yomitoki_index_info The served generation (value 1).",
             "# TYPE yomitoki_index_info gauge",
             f'yomitoki_index_info{{generation="{_label(str(index.get("generation", "")))}",'
             f'model="{_label(str(index.get("model", "")))}"}} 1']
    gauges = {
        "documents": "Documents in the served generation.",
        "chunks": "Chunks in the served generation.",
        "vectors": "Vectors in the served generation's FAISS index.",
        "bytes": "Bytes on disk of the served generation's files.",
        "swaps": "Generations swapped in since start.",
        "open_generations": "Generations open: the served one and retired ones with requests in flight.",
        "error": "1 when the last check of a generation failed (see /health), else 0.",
    }
    for key, text in gauges.items():
        lines += [f"# HELP yomitoki_index_{key} {text}", f"# TYPE yomitoki_index_{key} gauge",
                  f"yomitoki_index_{key} {_number(float(index.get(key, 0)))}"]
    return lines
