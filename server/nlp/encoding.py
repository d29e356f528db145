"""Texts to vectors the way the index does it: NFKC first, then the served embedding model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexer.embed.base import Embedder, embed_for
from indexer.text.normalize import normalize_query


def embed_texts(embedder: Embedder, texts: Sequence[str], *, batch_size: int = 32,
                kind: str = "symmetric") -> np.ndarray:
    """L2-normalized vectors of `texts` (one row each); repeated texts are embedded once.

    `kind` is what the texts are to the model (`embed_for`): similarity and
    classification compare texts symmetrically, the embeddings API says per request.
    """
    normalized = [normalize_query(text) for text in texts]
    unique = list(dict.fromkeys(normalized))
    if not unique:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    vectors = embed_for(embedder, unique, kind, batch_size=batch_size)
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[text] for text in normalized]]


def count_tokens(embedder: Embedder, texts: Sequence[str]) -> list[int]:
    """Tokens of each normalized text, without special tokens."""
    return embedder.count_tokens([normalize_query(text) for text in texts])
