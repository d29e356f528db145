"""The task models the server loads lazily, on first use: a cross-encoder and a fine-tuned classifier."""

from __future__ import annotations

from functools import partial

from indexer.embed.cross_encoder import load_cross_encoder
from indexer.search.rerank import load_reranker
from server.model_registry import ModelRegistry
from server.nlp.finetuned import load_finetuned


def register_task_models(registry: ModelRegistry, sts_model: str | None, classifier_model: str | None) -> None:
    """Register the configured models under the roles "sts" and "classifier"; nothing loads yet."""
    if sts_model:
        registry.register("sts", sts_model, partial(load_cross_encoder, sts_model))
    if classifier_model:
        registry.register("classifier", classifier_model, partial(load_finetuned, classifier_model))


def register_reranker(registry: ModelRegistry, reranker: str | None, runtime: str = "torch",
                      threads: int | None = None) -> None:
    """Register the configured cross-encoder under the role "reranker" (search and /ask); nothing loads yet."""
    if reranker:
        registry.register("reranker", reranker, partial(load_reranker, reranker, runtime, threads))
