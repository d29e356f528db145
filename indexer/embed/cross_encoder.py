"""Cross-encoders: models that read two texts at once and give one score for the pair.

One loader serves both of their uses: a reranker for search (`--reranker`,
`indexer.search.rerank`) and an STS model for `/similarity` (`--sts-model`).
Any sentence-transformers CrossEncoder with a single output works, by local path
or hub id; none ships offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, Protocol

import numpy as np

from indexer.embed.locations import ModelLocation, locate_model
from indexer.errors import UnavailableError
from indexer.text.normalize import normalize_query

BATCH_SIZE = 32


class PairScorer(Protocol):
    """A model that scores text pairs directly (a cross-encoder)."""

    location: ModelLocation

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


class CrossEncoderLoadError(UnavailableError):
    """The configured cross-encoder could not be loaded or does not give one score per pair."""


@dataclass
class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder with a single output (a relevance or similarity score)."""

    location: ModelLocation
    model: Any
    _lock: Lock = field(default_factory=Lock, repr=False)  # one forward pass at a time per model

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score per pair, both texts NFKC-normalized as search normalizes them."""
        if not pairs:
            return []
        inputs = [(normalize_query(a), normalize_query(b)) for a, b in pairs]
        with self._lock:
            scores = self.model.predict(inputs, batch_size=BATCH_SIZE, show_progress_bar=False,
                                        convert_to_numpy=True)
        return [float(s) for s in np.asarray(scores, dtype=np.float64).reshape(-1)]


def load_cross_encoder(name: str, purpose: str = "/similarity needs a model with one similarity score "
                                              "(an STS cross-encoder, not an NLI one)") -> CrossEncoderScorer:
    """Load a CrossEncoder by local path or hub id; refuse one that gives several scores per pair.

    `purpose` ends the refusal's message: what the caller needs the one score for.
    """
    from sentence_transformers import CrossEncoder

    location = locate_model(name)
    try:
        model = CrossEncoder(location.reference, device="cpu")
    except Exception as exc:
        raise CrossEncoderLoadError(f"cannot load cross-encoder {name!r}: {exc}") from exc
    outputs = int(getattr(model, "num_labels", 1))
    if outputs != 1:
        raise CrossEncoderLoadError(f"cross-encoder {name!r} gives {outputs} scores per pair; {purpose}")
    return CrossEncoderScorer(location=location, model=model)
