"""Fine-tuned classifiers: any transformers sequence-classification model, by path or hub id.

Labels come from the model's own config (`id2label`). Scores are a softmax over
the labels, or independent sigmoids when the config says the model was trained
for multi-label classification (or the request asks for multi_label).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.embed.locations import ModelLocation, locate_model, reach_hub
from indexer.errors import UnavailableError
from indexer.text.normalize import normalize_query
from server.nlp.predictions import Prediction, rank, sigmoid, softmax


class ClassifierLoadError(UnavailableError):
    """The configured fine-tuned classifier could not be loaded."""


@dataclass
class FineTunedClassifier:
    location: ModelLocation
    model: Any       # a transformers *ForSequenceClassification model
    tokenizer: Any
    max_length: int

    @property
    def labels(self) -> tuple[str, ...]:
        id2label = self.model.config.id2label
        return tuple(str(id2label[i]) for i in sorted(id2label, key=int))

    @property
    def multi_label(self) -> bool:
        return getattr(self.model.config, "problem_type", None) == "multi_label_classification"

    def logits(self, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
        import torch

        rows = []
        for start in range(0, len(texts), batch_size):
            batch = [normalize_query(t) for t in texts[start : start + batch_size]]
            encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
            with torch.inference_mode():
                rows.append(self.model(**encoded).logits.float().numpy())
        return np.concatenate(rows).astype(np.float64)

    def classify(self, texts: Sequence[str], *, multi_label: bool | None = None) -> list[Prediction]:
        independent = self.multi_label if multi_label is None else multi_label
        logits = self.logits(texts)
        scores = sigmoid(logits) if independent else softmax(logits)
        return [rank(self.labels, row, multi_label=independent) for row in scores]


def _max_length(tokenizer: Any, config: Any) -> int:
    limits = [int(getattr(tokenizer, "model_max_length", 0) or 0),
              int(getattr(config, "max_position_embeddings", 0) or 0)]
    sensible = [n for n in limits if 0 < n < 100_000]
    return min(sensible) if sensible else 512


def load_finetuned(name: str) -> FineTunedClassifier:
    """Load a sequence-classification model and its tokenizer from a folder or the hub."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    location = locate_model(name)
    try:
        location = reach_hub(location)
        tokenizer = AutoTokenizer.from_pretrained(location.reference)
        model = AutoModelForSequenceClassification.from_pretrained(location.reference)
    except Exception as exc:
        raise ClassifierLoadError(f"cannot load sequence-classification model {name!r}: {exc}") from exc
    trained_as = [a for a in getattr(model.config, "architectures", None) or [] if "SequenceClassification" not in a]
    if trained_as:  # transformers would put an untrained classification head on it
        raise ClassifierLoadError(f"{name!r} is a {trained_as[0]}, not a sequence-classification model: give a "
                                  "classifier (its labels in its config)")
    model.eval()
    return FineTunedClassifier(location=location, model=model, tokenizer=tokenizer,
                               max_length=_max_length(tokenizer, model.config))
