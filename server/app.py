"""The Litestar application factory.

`create_app(settings)` builds an app whose lifespan opens the index and the
embedding model once (`open_services`), keeps them on `app.state.services`,
polls for newly published generations, and closes everything in `finally`.
Handlers get them through the `services` dependency (`provide_services`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from indexer import __version__
from indexer.search.opening import index_source, open_index
from server.answering import register_models
from server.answering.relevance import warm_up
from server.auth import ApiKeyAuth
from server.batching import QueryBatcher
from server.cross_site import JsonBodies, LocalHosts
from server.errors import EXCEPTION_HANDLERS
from server.limits import InFlightLimit
from server.live_index import LiveIndex
from server.metrics import Metrics
from server.nlp.entities import register_entity_models
from server.nlp.loading import register_reranker, register_task_models
from server.request_log import RequestObserver
from server.routes import ask, chat, classify, documents, embeddings, entities, health, search, similarity, ui
from server.routes import metrics as metrics_route
from server.routes import models as models_route
from server.services import Services
from server.settings import ServerSettings

log = logging.getLogger("yomitoki.server")


def open_services(settings: ServerSettings) -> Services:
    """Open the index and its embedding model; raise with a clear message when they don't fit."""
    source = index_source(settings.index_dir, settings.milvus_uri, settings.milvus_collection)
    searcher = open_index(source, model=settings.model, threads=settings.threads)
    services = Services.for_index(settings, searcher.embedder, LiveIndex(source, searcher.embedder, searcher))
    register_models(services.models, settings.qa_model, settings.generator,  # loaded on first use
                    settings.generator_options())
    register_task_models(services.models, settings.sts_model, settings.classifier_model)  # likewise
    register_reranker(services.models, settings.reranker, settings.reranker_backend, settings.threads)  # likewise
    register_entity_models(services.models, dict(settings.ner_models))  # likewise
    return services


async def _watch(services: Services) -> None:
    while True:
        await asyncio.sleep(services.settings.reload_interval)
        try:
            await anyio.to_thread.run_sync(services.index.refresh)
        except Exception:  # the watcher must never die
            log.exception("checking for a new generation failed")


def provide_services(state: State) -> Services:
    """The `services` dependency: what the running app's lifespan opened."""
    services: Services = state.services
    return services


def create_app(settings: ServerSettings, services: Services | None = None) -> Litestar:
    """Build the app; pass `services` to reuse already opened ones (tests, benchmarks)."""
    metrics = services.metrics if services is not None else Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        opened: Services = services if services is not None else await anyio.to_thread.run_sync(
            open_services, settings)
        opened.metrics = metrics
        await anyio.to_thread.run_sync(warm_up, opened.embedder)  # healthy means the first question is fast
        await anyio.to_thread.run_sync(opened.index.prepare)  # and the first one typed in kana
        batcher = opened.batcher = QueryBatcher.for_embedder(
            opened.embedder, on_batch=lambda size: metrics.observe_batch("query", size))
        # more search threads than cores only fight over the GIL and the caches (32 clients on 2 cores
        # ran at half the throughput of 8 with one thread each)
        opened.search_limiter = anyio.CapacityLimiter(max(2, 2 * settings.threads))
        app.state.services = opened
        watcher = asyncio.create_task(_watch(opened))
        try:
            async with batcher.running():  # concurrent searches share query-embedding batches
                yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            opened.batcher = opened.search_limiter = None
            del app.state.services
            if services is None:
                opened.index.close()

    app = Litestar(
        route_handlers=[search.router, health.router, ui.router, ask.router, metrics_route.router,
                        similarity.router, classify.router, embeddings.router, models_route.router,
                        documents.router, chat.router, entities.router],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[*local_hosts(settings), ApiKeyAuth(settings.api_keys, settings.api_keys_file), JsonBodies(),
                    InFlightLimit(settings.max_in_flight)],
        request_max_body_size=settings.max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="yomitoki", version=__version__,
            description="Search and question answering over Japanese and English documents.",
            path="/schema", render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
    )
    # Outside routing, CORS and error handling, so every request is logged and counted.
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
    return app


def local_hosts(settings: ServerSettings) -> list[LocalHosts]:
    """The Host check of a server that `yomitoki serve` bound to loopback without API keys (none otherwise: with
    keys, another site's page gets 401 however it reaches the server)."""
    if settings.allowed_hosts is None or settings.api_keys or settings.api_keys_file is not None:
        return []
    return [LocalHosts(settings.allowed_hosts)]


def app_from_environment() -> Litestar:
    """The app of one worker of `yomitoki serve --workers N` (uvicorn's factory, in each process)."""
    import torch

    _exit_with_parent()
    settings = ServerSettings.from_env(os.environ)
    torch.set_num_threads(settings.threads)
    return create_app(settings)


def _exit_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when its supervisor dies, even by SIGKILL (no orphans on the port)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: uvicorn's supervisor still stops its workers normally
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
