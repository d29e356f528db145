"""Answering questions over the documents: extractive (QA model or best sentence) and generative."""

from __future__ import annotations

from server.answering.loading import DEFAULT_GENERATOR, generator_name, register_models
from server.answering.local import ask_locally
from server.answering.pipeline import Answerer, AnswerSettings, Question

__all__ = ["DEFAULT_GENERATOR", "AnswerSettings", "Answerer", "Question", "ask_locally", "generator_name",
           "register_models"]
