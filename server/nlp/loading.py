"""The task models the server loads lazily, on first use: a cross-encoder and a fine-tuned classifier."""

from __future__ import annotations

from functools import partial

from indexer.embed.cross_encoder import load_cross_encoder
from indexer.errors import InputError
from indexer.search.rerank import Reranking, load_reranker
from server.model_registry import ModelRegistry
from server.nlp.finetuned import load_finetuned


def register_task_models(registry: ModelRegistry, sts_model: str | None, classifier_model: str | None) -> None:
    """Register the configured models under the roles "sts" and "classifier"; nothing loads yet."""
    if sts_model:
        registry.register("sts", sts_model, partial(load_cross_encoder, sts_model))
    if classifier_model:
        registry.register("classifier", classifier_model, partial(load_finetuned, classifier_model))


def configured_reranking(registry: ModelRegistry, depth: int, requested: bool | None = None) -> Reranking | None:
    """The configured reranker (loaded on first use) unless `requested` is False.

    `requested` True without one configured is a 400 naming the field `rerank`; one that
    cannot load is a 503 naming it (the registry's UnavailableError).
    """
    if requested is False:
        return None
    if not registry.has("reranker"):
        if requested:
            raise InputError("no reranker is configured (start the server with --reranker)", field="rerank")
        return None
    return Reranking(registry.get("reranker"), depth)


def register_reranker(registry: ModelRegistry, reranker: str | None, runtime: str = "torch",
                      threads: int | None = None) -> None:
    """Register the configured cross-encoder under the role "reranker" (search and /ask); nothing loads yet."""
    if reranker:
        registry.register("reranker", reranker, partial(load_reranker, reranker, runtime, threads))
