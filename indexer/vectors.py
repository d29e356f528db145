"""The FAISS side of a generation: normalized vectors keyed by chunk id.

Vectors are L2-normalized, so inner product is cosine similarity. The index
is an `IndexIDMap2` over an exact `IndexFlatIP`: ids are chunk ids, and a
filter is an id selector applied inside the search, before ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np


@dataclass
class VectorIndex:
    index: Any
    dimension: int

    @classmethod
    def create(cls, dimension: int) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), dimension)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = faiss.read_index(str(path))
        return cls(index, index.d)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def settings(self) -> dict[str, object]:
        return {"type": "flat", "metric": "inner_product", "faiss": faiss.__version__}

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        return int(self.index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, (chunk id, cosine) best first; `allowed` restricts to those ids."""
        if self.size == 0 or (allowed is not None and not len(allowed)):
            return [[] for _ in range(len(queries))]
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32),
                                        min(k, self.size), params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]
