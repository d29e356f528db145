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

from indexer.embedders import Embedder, load_manifest_embedder
from indexer.generations import IndexDirectory
from indexer.integrity import ensure_openable
from indexer.search import check_model
from server.answering import register_models
from server.auth import ApiKeyAuth
from server.batching import BATCHER_KEY, QueryBatcher
from server.errors import EXCEPTION_HANDLERS
from server.limits import InFlightLimit
from server.live_index import LiveIndex
from server.metrics import Metrics
from server.request_log import RequestObserver
from server.routes import ask, classify, embeddings, health, search, similarity, ui
from server.routes import metrics as metrics_route
from server.routes import models as models_route
from server.services import Services
from server.settings import ServerSettings
from server.tasks.loading import register_task_models

log = logging.getLogger("yomitoki.server")


def open_services(settings: ServerSettings) -> Services:
    """Open the index and its embedding model; raise with a clear message when they don't fit."""
    directory = IndexDirectory(settings.index_dir)
    generation = directory.current()
    ensure_openable(generation)  # a truncated or overwritten file stops us before the slow model load
    embedder: Embedder = load_manifest_embedder(generation.manifest["model"], threads=settings.threads,
                                                override=settings.model)  # on the index's backend
    check_model(generation, embedder)
    services = Services(settings=settings, embedder=embedder, index=LiveIndex(directory, embedder))
    register_models(services.models, settings.qa_model, settings.generator)  # loaded on first use
    register_task_models(services.models, settings.sts_model, settings.classifier_model)  # likewise
    return services


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
    metrics = services.metrics if services is not None else Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        opened = services or await anyio.to_thread.run_sync(open_services, settings)
        opened.metrics = metrics
        state["services"] = opened
        watcher = asyncio.create_task(_watch(opened))
        batcher = opened.extras[BATCHER_KEY] = QueryBatcher.for_embedder(opened.embedder)
        try:
            async with batcher.running():  # concurrent searches share query-embedding batches
                yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if services is None:
                opened.index.close()

    def provide_services() -> Services:
        return state["services"]

    app = Litestar(
        route_handlers=[search.router, health.router, ui.router, ask.router, metrics_route.router,
                        similarity.router, classify.router, embeddings.router, models_route.router],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[ApiKeyAuth(settings.api_keys), InFlightLimit(settings.max_in_flight)],
        request_max_body_size=settings.max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="yomitoki", version="0.1.0",
            description="Search and question answering over Japanese and English documents.",
            path="/schema", render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
    )
    # Outside routing, CORS and error handling, so every request is logged and counted.
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
    return app
