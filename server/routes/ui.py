"""The web page: `/` (search and ask), `/view/{id}` (a document with a span highlighted), `/static/*`.

One hand-written page, served by the server itself: the HTML, CSS and JavaScript under
`server/static/` make no request to any other host, and the Content-Security-Policy header
tells the browser to refuse any that a future edit might add.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from litestar import MediaType, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "static"

# Everything from this server and nothing else: no CDN, no web font, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PUBLIC = {"scope": "public"}  # the page holds no data; its requests to the API carry their own checks


@cache
def page_html() -> str:
    """The page, read once from the package's static folder."""
    return (STATIC / "index.html").read_text(encoding="utf-8")


def page() -> Response[str]:
    return Response(page_html(), media_type=MediaType.HTML, headers=PAGE_HEADERS)


@get("/", summary="The web page: search and ask", include_in_schema=False, sync_to_thread=False, opt=PUBLIC)
def index_page() -> Response[str]:
    return page()


@get("/view/{doc_id:str}", summary="The web page showing one document", include_in_schema=False,
     sync_to_thread=False, opt=PUBLIC)
def document_page(doc_id: FromPath[str]) -> Response[str]:
    """The same page; its script sees the path, fetches `/documents/{id}` and marks `#start-end`."""
    del doc_id  # read by the page's script from the URL
    return page()


def _no_nul(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A NUL in a file's name is no file of ours: 404, not the 500 of the file system's ValueError."""
    if "\x00" in connection.url.path:
        raise NotFoundException(f"no file {connection.url.path!r}")


static_files = create_static_files_router(
    path="/static", directories=[STATIC], cache_control=CacheControlHeader(no_cache=True), include_in_schema=False,
    opt=PUBLIC, guards=[_no_nul],
)

router = Router(path="/", route_handlers=[index_page, document_page, static_files])
