"""How alike two texts are: cosine similarity of embeddings, or a cross-encoder's score.

Cosine similarity uses the served embedding model (the index's), with the same
NFKC normalization as search. A sentence-transformers CrossEncoder (`--sts-model`,
by path or hub id) reads both texts at once and is usually more accurate; when
one is configured it is used unless the request asks for `cosine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from indexer.embed.base import Embedder
from indexer.embed.cross_encoder import PairScorer
from server.nlp.encoding import embed_texts
from server.nlp.errors import TaskInputError

Method = Literal["auto", "cosine", "cross-encoder"]


@dataclass(frozen=True)
class Similarities:
    scores: list[float]
    method: Literal["cosine", "cross-encoder"]
    model: str


def cosine_pairs(embedder: Embedder, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each pair's embeddings (texts shared between pairs are embedded once)."""
    vectors = embed_texts(embedder, [text for pair in pairs for text in pair])
    left, right = vectors[0::2], vectors[1::2]
    # float32 rounding can put a text and itself a hair past 1: clipped, a cosine stays a cosine
    return [float(s) for s in np.clip(np.einsum("ij,ij->i", left, right), -1.0, 1.0)]


def choose_method(method: Method, scorer: PairScorer | None) -> Literal["cosine", "cross-encoder"]:
    if method == "cosine" or (method == "auto" and scorer is None):
        return "cosine"
    if scorer is None:
        raise TaskInputError("method", "no cross-encoder is configured (start the server with --sts-model)")
    return "cross-encoder"


def similarities(embedder: Embedder, pairs: Sequence[tuple[str, str]], *, method: Method = "auto",
                 scorer: PairScorer | None = None) -> Similarities:
    """Scores for text pairs by the chosen method; `scorer` is the configured cross-encoder, if any."""
    chosen = choose_method(method, scorer)
    if chosen == "cross-encoder" and scorer is not None:
        return Similarities(scorer.score(pairs), "cross-encoder", scorer.location.name)
    return Similarities(cosine_pairs(embedder, pairs), "cosine", embedder.describe()["name"])


def one_to_many(source: str, targets: Sequence[str]) -> list[tuple[str, str]]:
    """`source` paired with each target, so both request shapes share one code path."""
    return [(source, target) for target in targets]
