"""The answering models in the server's lazy model registry."""

from __future__ import annotations

from functools import partial

from server.answering.generation import load_generator
from server.answering.qa_reader import load_qa_reader
from server.model_registry import ModelRegistry

DEFAULT_GENERATOR = "smollm2-135m-instruct"


def generator_name(name: str | None) -> str | None:
    """The configured generator, or None when it is switched off ("none", "off" or empty)."""
    if name is None or name.strip().lower() in ("", "none", "off", "false"):
        return None
    return name


def register_models(registry: ModelRegistry, qa_model: str | None, generator: str | None) -> None:
    """Register the answering models for lazy loading (nothing loads until first used)."""
    if qa_model:
        registry.register("qa", qa_model, partial(load_qa_reader, qa_model))
    if name := generator_name(generator):
        registry.register("generator", name, partial(load_generator, name))
