"""Bounded in-flight work per endpoint: past the bound, an immediate 503 with Retry-After.

Each route (method + path template) may have at most `max_in_flight`
requests being handled at once; the next one is refused at once instead of
queueing without bound, so memory and latency stay bounded under a flood.
The middleware runs before the request body is read: a refused request gets
its 503 at once and its body, if any, is read and dropped chunk by chunk, so
it costs almost nothing and no memory. A route handler may set its own bound with
`opt={"max_in_flight": N}` (e.g. a slow generation endpoint), or `0` for none.

Body size (413) is Litestar's `request_max_body_size`; lengths, batch sizes
and `k` are constraints in the request schemas.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import anyio
import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

DEFAULT_MAX_IN_FLIGHT = 32
DRAIN_SECONDS = 5.0               # at most this long, and at most this much, reading a refused request's body
DRAIN_BYTES = 4_000_000
UNLIMITED_PATHS = ("/health", "/metrics")


@dataclass
class Gate:
    """In-flight count and a moving average of durations for one route."""

    limit: int
    in_flight: int = 0
    rejected: int = 0
    average_s: float = 0.0

    def try_enter(self) -> bool:
        if self.limit and self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def leave(self, seconds: float) -> None:
        self.in_flight -= 1
        self.average_s = seconds if self.average_s == 0 else 0.9 * self.average_s + 0.1 * seconds

    @property
    def retry_after(self) -> int:
        """Seconds until a slot is likely free: about one request's duration, 1 to 60."""
        return min(60, max(1, math.ceil(self.average_s)))


async def refuse(send: Send, detail: str, retry_after: int) -> None:
    """Answer 503 in the one error shape (see server/errors.py), before reading the request body."""
    await send_error(send, 503, detail, headers=[(b"retry-after", str(retry_after).encode())])


async def send_error(send: Send, status: int, detail: str, extra: object = None,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """An error answered by a middleware, before routing's exception handlers, in the one error shape."""
    body = msgspec.json.encode({"status_code": status, "detail": detail,
                                **({"extra": extra} if extra is not None else {})})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def discard_body(receive: Receive) -> None:
    """Read and drop what the client is still uploading, a chunk at a time (memory stays flat).

    Closing a connection with unread data makes the kernel reset it, and the client may then
    lose the 503 it was already sent; draining briefly lets it read the answer.
    """
    with anyio.move_on_after(DRAIN_SECONDS):
        received = 0
        while received <= DRAIN_BYTES:
            message = await receive()
            received += len(message.get("body", b""))  # type: ignore[arg-type]
            if message["type"] != "http.request" or not message.get("more_body"):
                return


def route_key(scope: Scope) -> str:
    """'METHOD /path/{template}' of a routed request (the raw path if it was not routed)."""
    return f"{scope.get('method', '')} {scope.get('path_template') or scope.get('path', '')}"


class InFlightLimit(ASGIMiddleware):
    """Refuses a request with 503 + Retry-After when its route already has the maximum in flight."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, default_limit: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self.default_limit = default_limit
        self.gates: dict[str, Gate] = {}

    def gate(self, scope: Scope) -> Gate | None:
        path = scope.get("path_template") or scope.get("path", "")
        if path in UNLIMITED_PATHS or path.startswith("/schema"):
            return None
        key = route_key(scope)
        gate = self.gates.get(key)
        if gate is None:
            handler = scope.get("route_handler")
            opt = getattr(handler, "opt", None) or {}
            gate = self.gates[key] = Gate(limit=int(opt.get("max_in_flight", self.default_limit)))
        return gate

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        gate = self.gate(scope)
        if gate is None:
            await next_app(scope, receive, send)
            return
        if not gate.try_enter():
            await refuse(send, f"server busy: {gate.limit} {route_key(scope)} requests already in flight; "
                               f"retry in {gate.retry_after} s", gate.retry_after)
            await discard_body(receive)
            return
        started = time.monotonic()
        try:
            await next_app(scope, receive, send)
        finally:
            gate.leave(time.monotonic() - started)
