"""The one root of yomitoki's own errors, and how each family shows itself.

Every error the product raises on purpose is a `YomitokiError`: its message
says what was wrong and what to do, `http_status` is what the server answers
with, and `exit_code` what the command line exits with. Anything else that
escapes (a bug, a library failing) is *not* one of these: the server answers
500 with a request id and logs the traceback, never a 4xx.

    YomitokiError                    500 / 1   (the root; an internal failure we name)
    ├── InputError (ValueError)      400 / 2   bad input: a field, an option, a query
    ├── NotFoundError (LookupError)  404 / 1   a document, classifier or model that does not exist
    ├── ConflictError                409 / 1   contradicts what exists (a name taken, a model mismatch)
    └── UnavailableError             503 / 1   not loaded, not reachable or busy (Retry-After)
"""

from __future__ import annotations

from typing import ClassVar


class YomitokiError(Exception):
    """The root of the product's errors; the message is meant for the user."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1


class InputError(YomitokiError, ValueError):
    """Input that cannot be used; `field` names the request field or option at fault, when there is one."""

    http_status = 400
    exit_code = 2  # click's exit code for a usage error

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFoundError(YomitokiError, LookupError):
    """A document, classifier, model or index that does not exist."""

    http_status = 404


class ConflictError(YomitokiError):
    """A request that contradicts what exists: a name already taken, a model mismatch."""

    http_status = 409


class UnavailableError(YomitokiError):
    """A model, index or service that is not loaded, not reachable or overloaded."""

    http_status = 503

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
