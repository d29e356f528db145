"""Sentence-transformers models on PyTorch: the `torch` and `torch-bf16` runtimes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.embed.base import TokenizerMethods, normalize_rows
from indexer.embed.locations import ModelLocation


@dataclass
class SentenceTransformerEmbedder(TokenizerMethods):
    """Any sentence-transformers model: bundled, a local folder, or a hub id.

    `runtime` is `torch` (float32) or `torch-bf16`: the same weights run under
    bfloat16 autocast, which CPUs with AMX or AVX512-BF16 execute natively
    (≈ 1.7–1.8× float32 when indexing on such a CPU, cosine to float32 ≈ 0.99998; see README).
    """

    location: ModelLocation
    model: Any
    runtime: str = "torch"  # or torch-bf16
    prompts: dict[str, str] = field(default_factory=dict)  # per kind of text, see `embed_for`

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.runtime == "torch-bf16"):
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalize_rows(vectors)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.location.name,
            "family": "sentence-transformers",
            "backend": self.runtime,  # the manifest's name for the runtime
            "source": self.location.kind,
            "package": self.location.package,
            "revision": self.revision,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            **({"prompts": self.prompts} if self.prompts else {}),
        }
