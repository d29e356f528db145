"""Errors mapped to HTTP, in Litestar's one error shape: ``{"status_code": …, "detail": "…", "extra": …}``.

The product's own errors (`indexer.errors.YomitokiError` and its families)
answer with their `http_status`; Litestar's own (validation, 404, 405, 401)
keep theirs. Anything else is a bug or a failing library: a 500 whose body
and `X-Request-ID` header carry a request id that the logged traceback
carries too, so a user's report can be found in the log.
"""

from __future__ import annotations

import logging
import uuid

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from indexer.errors import ConflictError, InputError, NotFoundError, UnavailableError, YomitokiError

__all__ = ["EXCEPTION_HANDLERS", "ConflictError", "InputError", "NotFoundError", "UnavailableError",
           "UpstreamError", "YomitokiError", "client_status", "error_response", "log_internal"]

log = logging.getLogger("yomitoki.server")


class UpstreamError(UnavailableError):
    """An upstream service (an OpenAI-compatible generator) that is down (503), slow (504) or
    answered something unusable (502); the message names the upstream's reason."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


def _body(status: int, detail: str, extra: object = None) -> dict[str, object]:
    body: dict[str, object] = {"status_code": status, "detail": detail}
    if extra is not None:
        body["extra"] = extra
    return body


def error_response(status: int, detail: str, extra: object = None,
                   headers: dict[str, str] | None = None) -> Response[dict[str, object]]:
    return Response(_body(status, detail, extra), status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def http_error(request: Request, exc: HTTPException) -> Response[dict[str, object]]:
    detail = exc.detail
    if isinstance(exc, RequestEntityTooLarge):  # Litestar's own, raised as a body streams past the limit
        limit = request.route_handler.resolve_request_max_body_size()
        if limit:
            detail = f"the body is larger than the {limit:,}-byte limit of {request.method} {request.url.path}"
    elif isinstance(exc, NotFoundException) and _unrouted_document(request.url.path):
        detail = ("no such address: a document key with a slash cannot stand in a path (%2F is read as one). "
                  "Read the document at /documents?key=KEY, and its related documents and original file at "
                  "/documents/ID/related and /documents/ID/file, with the `id` that answer (and every hit) gives")
    return error_response(exc.status_code, detail, exc.extra or None, exc.headers)


def _unrouted_document(path: str) -> bool:
    """Whether a path no route took is a document's address with a slash in its key (/documents/kitei/a.md/…)."""
    return path.startswith("/documents/") and path.rstrip("/").count("/") >= 3


def client_status(exc: BaseException) -> int | None:
    """The status a client is told for `exc` with its message, or None: an internal failure (500)."""
    if isinstance(exc, UpstreamError):
        return exc.status
    if isinstance(exc, YomitokiError) and (exc.http_status < 500 or isinstance(exc, UnavailableError)):
        return exc.http_status
    return None


def log_internal(exc: BaseException, where: str) -> str:
    """Log an internal failure with its traceback under a new request id; returns the id."""
    request_id = uuid.uuid4().hex[:16]
    log.error("request %s: unhandled error on %s", request_id, where, exc_info=exc)
    return request_id


def domain_error(request: Request, exc: YomitokiError) -> Response[dict[str, object]]:
    """One of ours: its status and message; one that names an internal failure is a 500 like any other."""
    status = client_status(exc)
    if status is None:
        return internal_error(request, exc)
    retry_after = exc.retry_after if isinstance(exc, UnavailableError) else None
    return error_response(status, str(exc), headers={"Retry-After": str(retry_after)} if retry_after else None)


def internal_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    if isinstance(exc, HTTPException):
        return http_error(request, exc)
    if isinstance(exc, RecursionError) and _reading_the_body(exc):
        return error_response(400, "the JSON body is nested too deeply to read")
    request_id = log_internal(exc, f"{request.method} {request.url.path}")
    return error_response(500, f"internal server error (request id {request_id})", {"request_id": request_id},
                          headers={"X-Request-ID": request_id})


def _reading_the_body(exc: BaseException) -> bool:
    """Whether `exc` was raised while Litestar decoded the request's JSON body (the decoder recurses once
    per level of nesting, so a body of a thousand nested lists is the client's error, not ours)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is Request.json.__code__:
            return True
        tb = tb.tb_next
    return False


EXCEPTION_HANDLERS = {
    YomitokiError: domain_error,
    HTTPException: http_error,
    Exception: internal_error,
}
