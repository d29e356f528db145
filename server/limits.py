"""Bounded in-flight work per endpoint: past the bound, an immediate 503 with Retry-After.

Each route (method + path template) may have at most `max_in_flight`
requests being handled at once; the next one is refused at once instead of
queueing without bound, so memory and latency stay bounded under a flood.
The middleware runs before the request body is read, so a refused request
costs almost nothing. A route handler may set its own bound with
`opt={"max_in_flight": N}` (e.g. a slow generation endpoint), or `0` for none.

Body size (413) is Litestar's `request_max_body_size`; lengths, batch sizes
and `k` are constraints in the request schemas.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from server.errors import UnavailableError

DEFAULT_MAX_IN_FLIGHT = 32
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
            raise UnavailableError(
                f"server busy: {gate.limit} {route_key(scope)} requests already in flight; "
                f"retry in {gate.retry_after} s",
                retry_after=gate.retry_after,
            )
        started = time.monotonic()
        try:
            await next_app(scope, receive, send)
        finally:
            gate.leave(time.monotonic() - started)
