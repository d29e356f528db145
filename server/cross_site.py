"""What another site's page must not do: send a body not declared JSON (415), or reach a keyless server on
loopback under its own name (403, `LocalHosts`).

A browser sends a POST whose body is `text/plain`, form-encoded or multipart
to any origin without asking first (no CORS preflight). Were such a body read
as JSON, a page on any site a user opens could make a server without API keys
on their machine create or replace classifiers, train entity models, or spend
its CPU on answers, reading nothing back but doing the work. A body declared
`application/json` (or `…+json`) needs the preflight, which the server only
grants to `--cors-origin`. `PUT /documents/{key}` takes a multipart upload as
well (`opt={"uploads": True}`); a PUT always needs a preflight.
"""

from __future__ import annotations

import ipaddress

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from server.limits import discard_body, send_error

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, if sent twice), or None."""
    return next((value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name), None)


def media_type(scope: Scope) -> str:
    """The request's content type without its parameters, lower-cased ('' when none was sent)."""
    return (header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()


def has_body(scope: Scope) -> bool:
    length = (header(scope, b"content-length") or "").strip()
    return length not in ("0", "") or header(scope, b"transfer-encoding") is not None


def accepted(media: str, uploads: bool) -> bool:
    return media == "application/json" or media.endswith("+json") or (uploads and media == "multipart/form-data")


class JsonBodies(ASGIMiddleware):
    """415 for a body on POST, PUT or PATCH that is not declared JSON (or a multipart upload where a route
    takes one), before the body is read."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") not in WITH_BODY or not has_body(scope):
            await next_app(scope, receive, send)
            return
        opt = getattr(scope.get("route_handler"), "opt", None) or {}
        media = media_type(scope)
        if accepted(media, bool(opt.get("uploads"))):
            await next_app(scope, receive, send)
            return
        wanted = "application/json or multipart/form-data" if opt.get("uploads") else "application/json"
        detail = (f"content-type: {media or 'none'} is not accepted here; send the body as {wanted} "
                  "(e.g. curl -H 'content-type: application/json')")
        await send_error(send, 415, detail, [{"key": "content-type", "message": f"expected {wanted}"}])
        await discard_body(receive)


class LocalHosts(ASGIMiddleware):
    """403 for a request whose Host is not this machine, on a server bound to loopback without API keys.

    DNS rebinding: a page on evil.example has its name re-resolved to 127.0.0.1, and the browser, taking
    the server for evil.example's own, lets the page read every answer: the user's documents. Such a
    request still names evil.example in its Host header. `allowed` names more hosts (a proxy on this
    machine that passes its own public name on).
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = frozenset(name.lower() for name in allowed)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        host = header(scope, b"host") or ""
        name = host_name(host)
        if not host or is_loopback(name) or name in self.allowed:
            await next_app(scope, receive, send)
            return
        detail = (f"Host {host!r} is not this machine: a server on a loopback address without API keys answers "
                  f"only requests addressed to it, so no other site can read it (DNS rebinding). Behind a proxy "
                  f"that passes this name on, start it with --allowed-host {name}")
        await send_error(send, 403, detail)
        await discard_body(receive)


def host_name(host: str) -> str:
    """The name in a Host header, without its port or an IPv6 address's brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """localhost (and any name under it, which browsers resolve to loopback themselves) or a loopback address,
    IPv4-mapped ones included."""
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
