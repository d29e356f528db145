"""`/health`: ready once the index and the embedding model are loaded.

Public, for probes; the document and chunk counts are those the caller may
see (`server.access`): the whole index's without API keys or with a key
without a filter, a restricted key's own documents', none without a key.
"""

from __future__ import annotations

import os
import time

import anyio.to_thread
import msgspec
from litestar import Request, Router, get, head
from litestar.di import NamedDependency

from indexer.store.sqlite import Filters
from server.access import scoped, whole_index
from server.services import Services


class Health(msgspec.Struct, frozen=True):
    status: str
    generation: str
    documents: int | None  # None: a caller without a key (API keys on) is told no counts
    chunks: int | None
    uptime_s: float
    models: dict[str, dict[str, object]]
    index_error: str | None = None
    pid: int = 0  # the server process that answered (one of several with `serve --workers N`)


@get("/health", summary="Readiness, the served generation and which models are loaded")
async def health(services: NamedDependency[Services], request: Request) -> Health:
    counts = await visible_counts(services, request)
    models: dict[str, dict[str, object]] = {
        "embedding": {"name": services.embedder.describe()["name"], "loaded": True}
    }
    models.update(services.models.states())
    return Health(status="ok", generation=services.index.generation,
                  documents=counts.get("documents"), chunks=counts.get("chunks"),
                  uptime_s=round(time.monotonic() - services.started, 1), models=models,
                  index_error=services.index.last_error, pid=os.getpid())


@head("/health", summary="Readiness for probes that ask with HEAD (uptime monitors): 200 once serving",
      status_code=200)
async def health_head() -> None:
    return None


async def visible_counts(services: Services, request: Request) -> dict[str, int]:
    """The documents and chunks the caller may see: all, its key's (counted per generation), or none."""
    if whole_index(request):
        counts = services.index.manifest.counts
        return {"documents": counts.documents, "chunks": counts.chunks}
    filters = scoped(Filters(), request)
    if filters.empty:  # a caller without a key
        return {}

    def work() -> dict[str, int]:
        with services.index.lease() as searcher:
            return searcher.search_store.counts(filters)

    return await anyio.to_thread.run_sync(work)


router = Router(path="/", route_handlers=[health, health_head])
