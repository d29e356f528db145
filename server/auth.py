"""Optional API keys with two scopes, `read` and `admin`.

Keys come from `--api-key` (repeatable), the `YOMITOKI_API_KEYS` variable
(comma- or space-separated) or a keys file that holds only sha256 hashes:

    # sha256 of the key      scope   label (optional, shown in logs instead of the key)   access filter
    sha256:5e884898da28…     read    alice
    sha256:8d969eef6eca…     admin   deploy
    sha256:3c9909afec25…     read    hr-team  where={"field":"tags","eq":"hr"}

A `where=` field holds an access filter (`server.access`): the key sees only
the documents it lets through. It is JSON without spaces or `#` (write them
as \u0020 and \u0023 inside strings; `yomitoki keys add` does).

A plain key is an admin key; prefix it with `read:` to make it a read key.
Only the sha256 of each key is kept in memory; a presented key is hashed and
compared with every stored hash with `hmac.compare_digest`, without stopping
at the first match, so timing says nothing about which key nearly matched.

A running server reads its keys file again whenever the file changes (its
inode, size or modification time), so `yomitoki keys add` and `keys remove`
take effect at the next request, in every worker, without a restart. A file
that becomes unreadable or invalid lets none of its keys in until it is fixed.

Clients send `Authorization: Bearer KEY` or `X-API-Key: KEY`. With no keys
configured (no keys at all and no keys file), everything is open. Otherwise `/health`, the OpenAPI pages and the
web page's files are public, writes (POST/PUT/PATCH/DELETE under /classifiers and /entity-models, any PUT/PATCH/DELETE)
need `admin`, and everything else needs `read` (which `admin` includes). A
route may state its own need with `opt={"scope": "public" | "read" | "admin"}`.
Missing or unknown key: 401; a read key on an admin route: 403. A valid key
sent to a public route is recognised too (an unknown one is ignored there), so
that `/health` can tell who sees what (`server.access.whole_index`).

Only read keys take an access filter: an admin key writes documents and
manages models for the whole index, which a key that must not see some
documents cannot be allowed to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from indexer.errors import InputError
from indexer.store.where import FilterError, Where, parse_json, to_json
from server.access import STATE_KEY, WHOLE_INDEX_KEY

log = logging.getLogger("yomitoki.server")

SCOPES = ("read", "admin")
# /health for probes, the OpenAPI pages, and the web page's own files (they hold no data: the API
# calls the page makes need a key like any other client's).
PUBLIC_PATHS = ("/health", "/")
PUBLIC_PREFIXES = ("/schema", "/static/", "/view/")
ADMIN_PREFIXES = ("/classifiers", "/entity-models")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
WHERE_PREFIX = "where="
ADMIN_FILTER = ("an access filter is for read keys: an admin key writes documents and manages models for the "
                "whole index")
_HEX = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="yomitoki"'}


class KeysFileError(InputError):
    """A keys file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes                      # sha256 of the key; the key itself is never kept
    scope: str                         # "read" or "admin"
    label: str                         # what logs may show: never the key
    # the access filter (an `indexer.store.where.Where`; None sees every document), typed `object` because
    # Litestar converts the settings that hold keys with msgspec, which cannot take a union of dataclasses
    where: object = None

    def __repr__(self) -> str:
        return f"ApiKey(scope={self.scope!r}, label={self.label!r}, restricted={self.where is not None})"


def where_field(where: Where) -> str:
    """The keys-file field of an access filter: one JSON word, its spaces and `#` escaped."""
    text = json.dumps(to_json(where), ensure_ascii=False, separators=(",", ":"))
    return WHERE_PREFIX + re.sub(r"[\s#]", lambda m: f"\\u{ord(m.group()):04x}", text)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def hash_line(key: str, scope: str = "read", label: str = "") -> str:
    """The keys-file line for a key (what `yomitoki` operators put in the file)."""
    return f"sha256:{digest(key).hex()} {scope} {label}".rstrip()


def plain_keys(values: Iterable[str], source: str) -> list[ApiKey]:
    """Keys given in plain text: `KEY` (admin) or `read:KEY` / `admin:KEY`."""
    keys = []
    for number, value in enumerate((v.strip() for v in values if v.strip()), 1):
        scope, _, rest = value.partition(":")
        if scope in SCOPES and not rest.strip():  # `read:$UNSET`: never the admin key "read:"
            raise InputError(f"{source} #{number} is {value!r}: a scope with no key after it; write {scope}:KEY")
        scope, key = (scope, rest) if scope in SCOPES else ("admin", value)
        keys.append(ApiKey(digest(key), scope, f"{source} #{number}"))
    return keys


def env_keys(value: str | None) -> list[ApiKey]:
    """Keys from `YOMITOKI_API_KEYS`: separated by commas or whitespace."""
    return plain_keys(re.split(r"[,\s]+", value or ""), "YOMITOKI_API_KEYS")


def file_keys(path: Path) -> list[ApiKey]:
    """Hashed keys from a keys file; refuses a line that is not a sha256 hash and a scope."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc}") from exc
    return [key for number, line in enumerate(lines, 1) if (key := file_line_key(path, number, line)) is not None]


def file_line_key(path: Path, number: int, line: str) -> ApiKey | None:
    """The key of a keys-file line (None for a blank or comment line); its label is the rest of the line."""
    fields = line.split("#", 1)[0].split()
    if not fields:
        return None
    match = _HEX.fullmatch(fields[0])
    if match is None:
        raise KeysFileError(f"{path}:{number}: expected `sha256:<64 hex digits> SCOPE [label]` "
                            f"(the file holds hashes of keys, never keys)")
    scope = fields[1] if len(fields) > 1 else "read"
    if scope not in SCOPES:
        raise KeysFileError(f"{path}:{number}: unknown scope {scope!r}, use read or admin")
    where = None
    if len(fields) > 2 and fields[-1].startswith(WHERE_PREFIX):
        try:
            where = parse_json(fields.pop()[len(WHERE_PREFIX):], "where")
        except FilterError as exc:
            raise KeysFileError(f"{path}:{number}: bad access filter: {exc}") from exc
        if scope != "read":
            raise KeysFileError(f"{path}:{number}: {ADMIN_FILTER}")
    label = " ".join(fields[2:]) or f"{Path(path).name}:{number}"
    return ApiKey(bytes.fromhex(match.group(1)), scope, label, where)


def collect_keys(cli: Iterable[str] = (), env: Mapping[str, str] | None = None) -> tuple[ApiKey, ...]:
    """The plain keys: command line and environment together (a keys file's are a `KeysFile`'s)."""
    return tuple(plain_keys(cli, "--api-key") + env_keys((env or {}).get("YOMITOKI_API_KEYS")))


class KeysFile:
    """A keys file's keys, read again whenever the file changes (checked at each `current()` call).

    A file that is gone or cannot be parsed any more gives no keys (every key it held is refused)
    until it is back or fixed; the reason is logged once per change.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stamp: tuple[int, int, int] | None = (-1, -1, -1)  # inode, size, mtime of the file last read
        self.keys: tuple[ApiKey, ...] = ()
        # `serve` refuses a bad file before starting; a worker started later (one replacing a worker that
        # died) starts anyway and, like the running ones, admits none of the file's keys until it is fixed
        self.current()

    def stamp_now(self) -> tuple[int, int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return status.st_ino, status.st_size, status.st_mtime_ns

    def current(self) -> tuple[ApiKey, ...]:
        stamp = self.stamp_now()
        if stamp == self.stamp:
            return self.keys
        self.stamp, self.keys = stamp, ()
        if stamp is None:
            log.error("keys file %s is gone: none of its keys is accepted until it is back", self.path)
            return self.keys
        try:
            self.keys = tuple(file_keys(self.path))
        except KeysFileError as exc:
            log.error("%s; none of its keys is accepted until it is fixed", exc)
        else:
            log.info("keys file %s read: %d keys", self.path, len(self.keys))
        return self.keys


def match_key(keys: Iterable[ApiKey], presented: str) -> ApiKey | None:
    """The stored key whose hash equals the presented key's, compared in constant time."""
    wanted = digest(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, wanted):  # no early exit: every key is compared
            found = key
    return found


def required_scope(method: str, path: str, opt: Mapping[str, object]) -> str | None:
    """The scope a route needs; None when it is public."""
    stated = opt.get("scope")
    if stated in (*SCOPES, "public"):
        return None if stated == "public" else str(stated)
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return None
    if method in WRITE_METHODS and path.startswith(ADMIN_PREFIXES):
        return "admin"
    return "admin" if method in ("PUT", "PATCH", "DELETE") else "read"


def presented_key(scope: Scope) -> str | None:
    """The key a request carries in `Authorization: Bearer …` or `X-API-Key`."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            kind, _, credentials = _text(value).strip().partition(" ")
            if kind.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key" and value.strip():
            return _text(value).strip()
    return None


def _text(value: bytes) -> str:
    """A header's text: UTF-8, as clients send a non-ASCII key and as keys are hashed (latin-1, the
    header's nominal charset, when the bytes are not UTF-8)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class ApiKeyAuth(ASGIMiddleware):
    """401 without a valid key, 403 when the key's scope is not enough; public routes pass."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, keys: tuple[ApiKey, ...], keys_file: Path | None = None) -> None:
        self.fixed = keys
        self.file = KeysFile(keys_file) if keys_file is not None else None

    @property
    def required(self) -> bool:
        """Whether keys are checked at all: some were given, or a keys file (even one that now holds none)."""
        return bool(self.fixed) or self.file is not None

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self.fixed + (self.file.current() if self.file is not None else ())

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path_template") or scope.get("path", ""))
        opt = getattr(scope.get("route_handler"), "opt", None) or {}
        needed = required_scope(method, path, opt)
        if self.required and needed is not None:
            self.authorize(scope, method, path, needed)
        elif self.required:  # a public route: a valid key still says what its caller sees, no key sees nothing
            presented = presented_key(scope)
            self.admit(scope, match_key(self.keys, presented) if presented is not None else None)
        await next_app(scope, receive, send)

    def authorize(self, scope: Scope, method: str, path: str, needed: str) -> None:
        presented = presented_key(scope)
        if presented is None:
            raise NotAuthorizedException(
                detail="missing API key: send it as `Authorization: Bearer KEY` or `X-API-Key: KEY`",
                headers=_CHALLENGE)
        key = match_key(self.keys, presented)
        if key is None:
            raise NotAuthorizedException(detail="invalid API key", headers=_CHALLENGE)
        if needed == "admin" and key.scope != "admin":
            raise PermissionDeniedException(
                detail=f"this API key has the '{key.scope}' scope; {method} {path} needs 'admin'")
        self.admit(scope, key)

    @staticmethod
    def admit(scope: Scope, key: ApiKey | None) -> None:
        """Put what the caller's key (None: no valid key) may see in the request's state."""
        state = scope.setdefault("state", {})
        if key is not None:
            state["api_key"] = key.label
        state[STATE_KEY] = key.where if key is not None else None
        state[WHOLE_INDEX_KEY] = key is not None and key.where is None
