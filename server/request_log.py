"""One structured log line per request, and the request counts and latencies for /metrics.

    method=POST path=/search status=200 duration_ms=12.4 generation=gen-000007 key=alice

`RequestObserver` wraps the whole ASGI application (outside routing, CORS and
error handling), so every request is seen: 404s, 413s, 503s from the
in-flight limit and CORS preflights included. `generation` is the generation
the request leased (`-` when it touched none). Query strings, bodies and
headers are never logged, so neither API keys nor `Authorization` headers can
reach the log; `key` is the label of the API key used, never the key.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.live_index import served_generations
from server.metrics import UNMATCHED, Metrics

log = logging.getLogger("yomitoki.access")


def logfmt(fields: dict[str, object]) -> str:
    """key=value pairs; values with spaces, quotes or control characters are JSON-quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class RequestObserver:
    """ASGI wrapper: times each HTTP request, records it in `metrics` and logs one line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()
        served: list[str] = []
        token = served_generations.set(served)
        self.metrics.in_flight.inc()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.in_flight.dec()
            served_generations.reset(token)
            self._record(scope, status, time.perf_counter() - started, served)

    def _record(self, scope: Scope, status: int, seconds: float, served: list[str]) -> None:
        method = str(scope.get("method", ""))
        route = str(scope.get("path_template") or UNMATCHED)
        self.metrics.observe_request(method, route, status, seconds)
        fields: dict[str, object] = {
            "method": method, "path": scope.get("path", ""), "status": status,
            "duration_ms": round(seconds * 1000, 1), "generation": ",".join(dict.fromkeys(served)) or "-",
        }
        label = (scope.get("state") or {}).get("api_key")
        if label:
            fields["key"] = label
        log.info(logfmt(fields))


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration with yomitoki's loggers added (to stderr, at `level`)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["yomitoki"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
