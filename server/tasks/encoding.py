"""Texts to vectors the way the index does it: NFKC first, then the served embedding model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.embedders import Embedder
from indexer.normalize import normalize_query


def embed_texts(embedder: Embedder, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """L2-normalized vectors of `texts` (one row each); repeated texts are embedded once."""
    normalized = [normalize_query(text) for text in texts]
    unique = list(dict.fromkeys(normalized))
    if not unique:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    vectors = embedder.embed(unique, batch_size=batch_size)
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[text] for text in normalized]]


def count_tokens(embedder: Embedder, texts: Sequence[str]) -> list[int]:
    """Tokens of each normalized text, without special tokens."""
    return embedder.count_tokens([normalize_query(text) for text in texts])
