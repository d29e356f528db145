"""The Litestar application factory.

`create_app(settings)` builds an app whose lifespan opens the index and the
embedding model once, polls for newly published generations, and closes
everything in `finally`. Handlers get what they need through `Provide`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from indexer.embedders import Embedder, load_embedder
from indexer.generations import IndexDirectory
from indexer.search import check_model
from server.errors import EXCEPTION_HANDLERS
from server.live_index import LiveIndex
from server.routes import health, search
from server.services import Services
from server.settings import ServerSettings

log = logging.getLogger("yomitoki.server")


def open_services(settings: ServerSettings) -> Services:
    """Open the index and its embedding model; raise with a clear message when they don't fit."""
    directory = IndexDirectory(settings.index_dir)
    generation = directory.current()
    embedder: Embedder = load_embedder(settings.model or generation.manifest["model"]["name"],
                                       threads=settings.threads)
    check_model(generation, embedder)
    return Services(settings=settings, embedder=embedder, index=LiveIndex(directory, embedder))


async def _watch(services: Services) -> None:
    while True:
        await asyncio.sleep(services.settings.reload_interval)
        try:
            await anyio.to_thread.run_sync(services.index.refresh)
        except Exception:  # the watcher must never die
            log.exception("checking for a new generation failed")


def create_app(settings: ServerSettings, services: Services | None = None) -> Litestar:
    """Build the app; pass `services` to reuse already opened ones (tests, benchmarks)."""
    state: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        opened = services or await anyio.to_thread.run_sync(open_services, settings)
        state["services"] = opened
        watcher = asyncio.create_task(_watch(opened))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if services is None:
                opened.index.close()

    def provide_services() -> Services:
        return state["services"]

    return Litestar(
        route_handlers=[search.router, health.router],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="yomitoki", version="0.1.0",
            description="Search and question answering over Japanese and English documents.",
            path="/schema", render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
    )
