"""What handlers depend on: opened once per app, kept on `app.state.services`.

`server.app.open_services` opens the index and builds everything here; the
app's lifespan adds what lives as long as the running app (the query batcher
and the search limiter, tied to its event loop). Handlers receive it as the
`services` dependency (`server.app.provide_services`), never from a global.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio

from indexer.build.builder import originals_folder
from indexer.build.writes import DocumentWriter
from indexer.embed.base import Embedder
from indexer.ner.named import EntityModelStore
from indexer.search.rerank import Reranking
from server.batching import QueryBatcher
from server.live_index import LiveIndex
from server.metrics import Metrics
from server.model_registry import ModelRegistry
from server.nlp.classifiers import ClassifierStore
from server.nlp.entities import NamedModels
from server.nlp.few_shot import FewShotCache
from server.nlp.loading import configured_reranking
from server.settings import ServerSettings


@dataclass(kw_only=True)
class Services:
    settings: ServerSettings
    embedder: Embedder
    index: LiveIndex
    writer: DocumentWriter                # PUT and DELETE /documents: writes that wait together share a build
    classifiers: ClassifierStore          # named classifiers, in a SQLite file beside the index
    few_shot: FewShotCache                # models trained from inline examples, kept for a client resending them
    entity_models: NamedModels            # entity models trained beside the index, loaded on first use
    models: ModelRegistry = field(default_factory=ModelRegistry)  # the other models, loaded on first use
    metrics: Metrics = field(default_factory=Metrics)  # what /metrics reports
    started: float = field(default_factory=time.monotonic)
    # Set by the app's lifespan, for as long as it runs (None before and after):
    batcher: QueryBatcher | None = None   # concurrent searches share query-embedding batches
    search_limiter: anyio.CapacityLimiter | None = None  # threads that run searches at once

    @classmethod
    def for_index(cls, settings: ServerSettings, embedder: Embedder, index: LiveIndex) -> Services:
        """The services of an opened index: what is kept beside it in `settings.index_dir`."""
        return cls(
            settings=settings, embedder=embedder, index=index,
            writer=DocumentWriter(index.directory, embedder, originals_folder(index.directory)),
            classifiers=ClassifierStore.for_index(settings.index_dir),
            few_shot=FewShotCache(),
            entity_models=NamedModels(EntityModelStore.for_index(settings.index_dir)),
        )

    def reranking(self, requested: bool | None = None) -> Reranking | None:
        """The configured reranker, unless the request says `rerank: false` (see `configured_reranking`)."""
        return configured_reranking(self.models, self.settings.rerank_depth, requested)
