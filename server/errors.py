"""Domain errors mapped to HTTP, in Litestar's one error shape:
``{"status_code": …, "detail": "…", "extra": …}``."""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException

from indexer.search import QueryError

log = logging.getLogger("yomitoki.server")


class NotFoundError(LookupError):
    """A document, classifier or other named thing that does not exist."""


class ConflictError(Exception):
    """A request that contradicts what exists: a name already taken, a model mismatch (409)."""


class UnavailableError(RuntimeError):
    """A model or service that is not loaded or is overloaded (503)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def query_error(_: Request, exc: QueryError) -> Response[dict[str, object]]:
    return error_response(400, str(exc))


def value_error(request: Request, exc: ValueError) -> Response[dict[str, object]]:
    if isinstance(exc, HTTPException):  # Litestar's ValidationException is also a ValueError
        return http_error(request, exc)
    return error_response(400, str(exc))


def http_error(_: Request, exc: HTTPException) -> Response[dict[str, object]]:
    return error_response(exc.status_code, exc.detail, exc.extra or None, exc.headers)


def not_found(_: Request, exc: NotFoundError) -> Response[dict[str, object]]:
    return error_response(404, str(exc))


def conflict(_: Request, exc: ConflictError) -> Response[dict[str, object]]:
    return error_response(409, str(exc))


def unavailable(_: Request, exc: UnavailableError) -> Response[dict[str, object]]:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error_response(503, str(exc), headers=headers)


def upstream_failed(_: Request, exc: UpstreamError) -> Response[dict[str, object]]:
    return error_response(exc.status, str(exc))


def internal_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    if isinstance(exc, HTTPException):
        return http_error(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error")


EXCEPTION_HANDLERS = {
    QueryError: query_error,
    NotFoundError: not_found,
    ConflictError: conflict,
    UnavailableError: unavailable,
    UpstreamError: upstream_failed,
    ValueError: value_error,
    HTTPException: http_error,
    Exception: internal_error,
}
