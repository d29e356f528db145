"""`/search` (POST for programs, GET for browsers) and `/documents/{id}`."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Literal

import anyio.to_thread
import numpy as np
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from indexer.embedders import embed_for
from indexer.normalize import normalize_query
from indexer.search import Hit
from indexer.store import Filters
from server.batching import BATCHER_KEY, SEARCH_LIMITER_KEY, QueryBatcher, query_vector
from server.errors import NotFoundError
from server.schemas import MAX_QUERY_CHARS, DocumentOut, HitOut, Mode, SearchRequest, SearchResponse, Tag
from server.services import Services


async def run_search(services: Services, query: str, mode: str, k: int, filters: Filters) -> SearchResponse:
    started = time.perf_counter()
    batcher: QueryBatcher | None = services.extras.get(BATCHER_KEY)
    # An idle model embeds this query in the search's own thread; a busy one batches it with the others.
    release = batcher.claim() if batcher is not None and mode != "keyword" else None

    def work(vector: np.ndarray | None) -> tuple[str, list[Hit]]:
        with services.index.lease() as searcher:
            if release:
                text = normalize_query(query).strip()
                try:
                    vector = embed_for(searcher.embedder, [text], "query")[0] if text else None
                finally:
                    release()
            hits = searcher.search(query, mode=mode, k=k, filters=filters, query_vector=vector)
            return searcher.generation.name, hits

    try:
        vector = None if release else await query_vector(batcher, query, mode)  # batched with other queries
        limiter = services.extras.get(SEARCH_LIMITER_KEY)
        generation, hits = await anyio.to_thread.run_sync(work, vector, limiter=limiter)
    finally:
        if release:
            release()  # on every path, cancellation included: the model must never stay claimed
    took = (time.perf_counter() - started) * 1000
    return SearchResponse(query=query, mode=mode, k=k, generation=generation,  # type: ignore[arg-type]
                          took_ms=round(took, 3), hits=[HitOut.from_hit(h) for h in hits])


@post("/search", status_code=200, summary="Search the documents (dense, keyword or hybrid)")
async def search_post(data: JSONBody[SearchRequest], services: NamedDependency[Services]) -> SearchResponse:
    filters = data.filters.to_filters() if data.filters else Filters()
    return await run_search(services, data.query, data.mode, data.k, filters)


@get("/search", summary="Search with query parameters (for browsers and quick checks)")
async def search_get(
    services: NamedDependency[Services],
    # Litestar ignores msgspec `Meta` on query parameters: limits go in QueryParameter(...).
    q: Annotated[str, QueryParameter(min_length=1, max_length=MAX_QUERY_CHARS)],
    mode: FromQuery[Mode] = "hybrid",
    k: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
    source: Annotated[str | None, QueryParameter(max_length=1000)] = None,
    language: Annotated[Literal["ja", "en"] | None, QueryParameter()] = None,
    tag: Annotated[list[Tag] | None, QueryParameter(max_items=50)] = None,
) -> SearchResponse:
    filters = Filters(source=source, language=language, tags=tuple(tag or ()))
    return await run_search(services, q, mode, k, filters)


@get("/documents/{doc_id:str}", summary="A document's original text and metadata")
async def get_document(doc_id: FromPath[str], services: NamedDependency[Services]) -> DocumentOut:
    def work() -> DocumentOut:
        with services.index.lease() as searcher:
            doc = searcher.document(doc_id)
            if doc is None:
                raise NotFoundError(f"no document with id {doc_id!r}")
            return DocumentOut(id=doc.id, source=doc.source, title=doc.title, language=doc.language,
                               text=doc.text, metadata=doc.metadata, generation=searcher.generation.name)

    return await anyio.to_thread.run_sync(partial(work))


router = Router(path="/", route_handlers=[search_post, search_get, get_document])
