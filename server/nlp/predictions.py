"""What every classifier returns: a score per label, best first."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.nlp.errors import TaskInputError


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float                  # a probability: softmax over labels, or an independent sigmoid
    cosine: float | None = None   # zero-shot only: cosine similarity of the text and the label prompt
    threshold: float | None = None  # zero-shot multi-label only: the cosine at which `score` is 0.5


@dataclass(frozen=True)
class Prediction:
    label: str                    # the best label
    scores: tuple[LabelScore, ...]  # every label, best first
    predicted: tuple[str, ...]    # multi-label: labels scoring at least 0.5; otherwise the best label


def label_identity(name: str, field: str) -> str:
    """What a label is compared as: NFKC with single spaces (texts are read so, so `ｓｐｏｒｔｓ` is `sports`).
    A 400 naming `field` for a label with a control character (NUL, a line break), which no reply could show."""
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise TaskInputError(field, f"label {name!r} holds a control character")
    return " ".join(unicodedata.normalize("NFKC", name).split())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # = 1 / (1 + e^-x), without overflow warnings


def rank(labels: Sequence[str], scores: np.ndarray, *, cosines: np.ndarray | None = None,
         multi_label: bool = False, thresholds: np.ndarray | None = None) -> Prediction:
    """One text's prediction from its per-label scores (and cosines and thresholds, for zero-shot)."""
    order = np.argsort(-scores, kind="stable")
    ranked = tuple(
        LabelScore(labels[i], float(scores[i]), None if cosines is None else float(cosines[i]),
                   None if thresholds is None else float(thresholds[i]))
        for i in order
    )
    top = ranked[0].label
    predicted = tuple(s.label for s in ranked if s.score >= 0.5) if multi_label else (top,)
    return Prediction(label=top, scores=ranked, predicted=predicted)
