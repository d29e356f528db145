"""Counters and histograms for `/metrics`, in Prometheus' text format (version 0.0.4).

    yomitoki_requests_total{method,route,status}        requests answered
    yomitoki_request_duration_seconds{method,route}     latency histogram
    yomitoki_requests_in_flight                         requests being handled now
    yomitoki_batch_size{kind}                           sizes of model batches, for code that reports them
    yomitoki_batcher_batch_size{kind}                   micro-batchers' batches (sum = inputs, count = batches)
    yomitoki_index_*                                    the served generation: documents, chunks,
                                                        vectors, bytes on disk, swaps, open generations

`route` is the path template (`/documents/{doc_id:str}`), never the raw path,
so a client cannot grow the number of series; requests that match no route
are counted under `route="<unmatched>"`. Everything is thread-safe: batchers
running in worker threads may call `observe_batch`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
UNMATCHED = "<unmatched>"
CONTENT_TYPE = "text/plain; version=0.0.4"  # Litestar adds "; charset=utf-8"


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        counts = self.counts or [0] * len(self.buckets)
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{_number(b)}"}} {c}'
               for b, c in zip(self.buckets, counts, strict=True)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {_number(self.total)}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """What /metrics reports; one per app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.batches: dict[str, Histogram] = {}
        self.in_flight = 0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.latency.setdefault((method, route), Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, kind: str, size: int) -> None:
        """Record the size of one batch handed to a model (called by batchers)."""
        with self._lock:
            self.batches.setdefault(kind, Histogram(BATCH_BUCKETS)).observe(size)

    def render(self, index: dict[str, Any] | None = None, batchers: dict[str, dict[str, float]] | None = None) -> str:
        """The Prometheus text exposition of everything recorded, plus the index's and batchers' figures."""
        with self._lock:
            lines = ["# HELP yomitoki_requests_total HTTP requests answered, by route and status.",
                     "# TYPE yomitoki_requests_total counter"]
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'yomitoki_requests_total{{method="{method}",route="{_label(route)}",'
                             f'status="{status}"}} {count}')
            lines += ["# HELP yomitoki_request_duration_seconds Time to answer a request.",
                      "# TYPE yomitoki_request_duration_seconds histogram"]
            for (method, route), histogram in sorted(self.latency.items()):
                labels = f'method="{method}",route="{_label(route)}"'
                lines += histogram.lines("yomitoki_request_duration_seconds", labels)
            lines += ["# HELP yomitoki_requests_in_flight Requests being handled now.",
                      "# TYPE yomitoki_requests_in_flight gauge", f"yomitoki_requests_in_flight {self.in_flight}",
                      "# HELP yomitoki_batch_size Number of inputs in each batch given to a model.",
                      "# TYPE yomitoki_batch_size histogram"]
            for kind, histogram in sorted(self.batches.items()):
                lines += histogram.lines("yomitoki_batch_size", f'kind="{_label(kind)}"')
        lines += _batcher_lines(batchers or {}) + _index_lines(index or {})
        return "\n".join(lines) + "\n"


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
