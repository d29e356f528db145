"""`/health`: ready once the index and the embedding model are loaded."""

from __future__ import annotations

import os
import time

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency

from server.services import Services


class Health(msgspec.Struct, frozen=True):
    status: str
    generation: str
    documents: int
    chunks: int
    uptime_s: float
    models: dict[str, dict[str, object]]
    index_error: str | None = None
    pid: int = 0  # the server process that answered (one of several with `serve --workers N`)


@get("/health", summary="Readiness, the served generation and which models are loaded")
async def health(services: NamedDependency[Services]) -> Health:
    counts = services.index.manifest.counts
    models: dict[str, dict[str, object]] = {
        "embedding": {"name": services.embedder.describe()["name"], "loaded": True}
    }
    models.update(services.models.states())
    return Health(status="ok", generation=services.index.generation,
                  documents=counts.documents, chunks=counts.chunks,
                  uptime_s=round(time.monotonic() - services.started, 1), models=models,
                  index_error=services.index.last_error, pid=os.getpid())


router = Router(path="/", route_handlers=[health])
