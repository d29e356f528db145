"""`/search` (POST for programs, GET for browsers) and `/documents/{id}`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import unquote_to_bytes

import anyio.to_thread
import numpy as np
from litestar import Request, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from indexer.embed.base import embed_for
from indexer.errors import InputError
from indexer.search.rerank import Reranking
from indexer.search.searcher import MAX_RESULTS, Hit, Results
from indexer.store.sqlite import Filters, StoredDocument
from indexer.text.normalize import normalize_query
from server.access import access_filter, scoped
from server.batching import query_vector
from server.routes.documents import find_document, utf8_address
from server.schemas import (
    MAX_QUERY_CHARS,
    FacetCount,
    HitOut,
    Mode,
    RelatedResponse,
    SearchRequest,
    SearchResponse,
    Tag,
    entity_filters,
)
from server.services import Services


async def run_search(services: Services, query: str, mode: str, k: int, filters: Filters,
                     page: Page | None = None, rerank: bool | None = None) -> SearchResponse:
    """A search; `filters` must already hold the key's access filter (`server.access.scoped`).

    `rerank`: use the configured reranker (None: when there is one; see `Services.reranking`).
    """
    page = page or Page()
    started = time.perf_counter()
    batcher = services.batcher
    # An idle model embeds this query in the search's own thread; a busy one batches it with the others.
    release = batcher.claim() if batcher is not None and mode != "keyword" else None

    def work(vector: np.ndarray | None) -> tuple[str, Results, Reranking | None]:
        with services.index.lease() as searcher:
            if release:
                text = normalize_query(query).strip()
                try:
                    vector = embed_for(searcher.embedder, [text], "query")[0] if text else None
                finally:
                    release()
            reranking = services.reranking(rerank)  # loads it on first use, in this worker thread
            results = searcher.find(query, mode=mode, k=k, offset=page.offset, filters=filters,
                                    facets=page.facets, collapse=page.collapse, query_vector=vector,
                                    reranking=reranking)
            return searcher.generation.name, results, reranking

    try:
        vector = None if release else await query_vector(batcher, query, mode)  # batched with other queries
        generation, results, reranking = await anyio.to_thread.run_sync(work, vector,
                                                                        limiter=services.search_limiter)
    finally:
        if release:
            release()  # on every path, cancellation included: the model must never stay claimed
    took = (time.perf_counter() - started) * 1000
    paged = page.offset is not None or bool(page.facets)
    facets = {field: [FacetCount(value, count) for value, count in counts]
              for field, counts in results.facets.items()} if page.facets else None
    return SearchResponse(query=query, mode=mode, k=k, generation=generation,  # type: ignore[arg-type]
                          took_ms=round(took, 3), hits=[HitOut.from_hit(h, page.collapse) for h in results.hits],
                          offset=page.offset or 0, total=results.total if paged else None, facets=facets,
                          reranker=reranking.name if reranking else None, read_as=results.read_as)


@dataclass(frozen=True)
class Page:
    """Which part of a result set to return: `offset`, facet fields, one hit per document."""

    offset: int | None = None
    facets: tuple[str, ...] = ()
    collapse: bool = False


@post("/search", status_code=200, summary="Search the documents (dense, keyword or hybrid)")
async def search_post(data: JSONBody[SearchRequest], services: NamedDependency[Services],
                      request: Request) -> SearchResponse:
    filters = scoped(data.filters.to_filters() if data.filters else Filters(), request)
    page = Page(offset=data.offset, facets=tuple(data.checked_facets()), collapse=data.collapse == "document")
    if (data.offset or 0) + data.k > MAX_RESULTS:
        raise InputError(f"offset + k must be at most {MAX_RESULTS}, got {data.offset} + {data.k}", field="offset")
    return await run_search(services, data.query, data.mode, data.k, filters, page, data.rerank)


GET_PARAMETERS = frozenset({"q", "mode", "k", "source", "language", "tag", "offset", "collapse", "entity", "rerank"})
RELATED_PARAMETERS = frozenset({"k", "source", "language"})


def refuse_unknown_parameters(request: Request, route: str, known: frozenset[str], more: str = "") -> None:
    """A 400 naming a query parameter the route does not take: a typo (tags=, where=) would otherwise look like a
    filter that was applied."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ValidationException(f"unknown query parameter {unknown[0]!r}: {route} takes "
                                  f"{', '.join(sorted(known))}{more}",
                                  extra=[{"key": unknown[0], "message": "unknown query parameter"}])


@get("/search", summary="Search with query parameters (for browsers and quick checks)")
async def search_get(
    services: NamedDependency[Services],
    request: Request,
    # Litestar ignores msgspec `Meta` on query parameters: limits go in QueryParameter(...).
    q: Annotated[str, QueryParameter(min_length=1, max_length=MAX_QUERY_CHARS)],
    mode: FromQuery[Mode] = "hybrid",
    k: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
    source: Annotated[str | None, QueryParameter(min_length=1, max_length=1000)] = None,
    language: Annotated[Literal["ja", "en"] | None, QueryParameter()] = None,
    tag: Annotated[list[Tag] | None, QueryParameter(max_items=50)] = None,
    offset: Annotated[int | None, QueryParameter(ge=0, le=MAX_RESULTS - 1)] = None,
    collapse: Annotated[Literal["document"] | None, QueryParameter()] = None,
    entity: Annotated[list[str] | None, QueryParameter(max_items=50, description="TYPE:NAME")] = None,
    rerank: Annotated[bool | None, QueryParameter(description="false: skip the configured reranker")] = None,
) -> SearchResponse:
    try:  # the parameters arrive decoded with � for bytes that are not UTF-8: searching for � helps nobody
        unquote_to_bytes(request.scope["query_string"]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the query string is not UTF-8 (byte {exc.object[exc.start]:#04x}): percent-encode "
                         "the UTF-8 bytes of the text", field="q") from None
    refuse_unknown_parameters(request, "GET /search", GET_PARAMETERS,
                              " (POST /search takes `where` filters and facets)")
    filters = scoped(Filters(source=source, language=language, tags=tuple(tag or ()),
                              entities=parse_entity_params(entity)), request)
    if (offset or 0) + k > MAX_RESULTS:
        raise InputError(f"offset + k must be at most {MAX_RESULTS}, got {offset} + {k}", field="offset")
    return await run_search(services, q, mode, k, filters, Page(offset=offset, collapse=collapse == "document"),
                            rerank)


def parse_entity_params(values: list[str] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`entity=TYPE:NAME` query parameters, grouped by type (any name of a type, every type)."""
    grouped: dict[str, list[str]] = {}
    for value in values or ():
        entity_type, sep, name = value.partition(":")
        if not sep or not entity_type.strip() or not name.strip():
            raise InputError(f"expected TYPE:NAME (e.g. Person:山田太郎), got {value!r}", field="entity")
        grouped.setdefault(entity_type.strip(), []).append(name)
    return entity_filters(grouped.items())


@get("/documents/{key:str}/related", summary="Documents on the subject of this one, by id or key, in any language")
async def get_related(
    key: FromPath[str],
    services: NamedDependency[Services],
    request: Request,
    k: Annotated[int, QueryParameter(ge=1, le=100)] = 5,
    source: Annotated[str | None, QueryParameter(min_length=1, max_length=1000)] = None,
    language: Annotated[Literal["ja", "en"] | None, QueryParameter()] = None,
) -> RelatedResponse:
    utf8_address(request)
    refuse_unknown_parameters(request, "GET /documents/{id}/related", RELATED_PARAMETERS)
    where = access_filter(request)
    filters = scoped(Filters(source=source, language=language), request)
    started = time.perf_counter()

    def work() -> tuple[str, StoredDocument, list[Hit]]:
        with services.index.lease() as searcher:
            doc = find_document(searcher, key, where)  # hidden from this key: as missing
            return searcher.generation.name, doc, searcher.related(doc.id, k=k, filters=filters)

    generation, doc, hits = await anyio.to_thread.run_sync(work, limiter=services.search_limiter)
    return RelatedResponse(id=doc.id, key=doc.key, title=doc.title, k=k, generation=generation,
                           took_ms=round((time.perf_counter() - started) * 1000, 3),
                           hits=[HitOut.from_hit(hit) for hit in hits])


router = Router(path="/", route_handlers=[search_post, search_get, get_related])
