"""Request bodies must say they are JSON (415 otherwise): no write from another site's page.

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

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from server.limits import discard_body

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def media_type(scope: Scope) -> str:
    """The request's content type without its parameters, lower-cased ('' when none was sent)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", ()))
    return headers.get(b"content-length", b"0").strip() not in (b"0", b"") or b"transfer-encoding" in headers


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
        body = msgspec.json.encode({"status_code": 415, "detail": detail,
                                    "extra": [{"key": "content-type", "message": f"expected {wanted}"}]})
        await send({"type": "http.response.start", "status": 415,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        await discard_body(receive)
