"""The task models the server loads lazily, on first use: a cross-encoder and a fine-tuned classifier."""

from __future__ import annotations

from functools import partial

from server.model_registry import ModelRegistry
from server.nlp.finetuned import load_finetuned
from server.nlp.similarity import load_cross_encoder


def register_task_models(registry: ModelRegistry, sts_model: str | None, classifier_model: str | None) -> None:
    """Register the configured models under the roles "sts" and "classifier"; nothing loads yet."""
    if sts_model:
        registry.register("sts", sts_model, partial(load_cross_encoder, sts_model))
    if classifier_model:
        registry.register("classifier", classifier_model, partial(load_finetuned, classifier_model))
