"""Full float32 vectors kept on disk, memory-mapped, sorted by chunk id.

An IVF-PQ index holds only compressed codes in memory; the exact vectors it
re-scores its candidates against live here: `vectors.ids.npy` (sorted int64
chunk ids) and `vectors.full.npy` (one float32 row per id), opened with
`numpy.load(mmap_mode="r")` so only the pages a query touches are read.
Additions wait in memory and removals are remembered until `write`, which
merges them into new files (a generation never changes the files of another).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


class FullVectors:
    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._ids = ids            # sorted, unique; a memory map when loaded from disk
        self._vectors = vectors
        self._removed: set[int] = set()
        self._pending_ids: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self._extra: tuple[np.ndarray, np.ndarray] | None = None  # pending, sorted, built on demand

    @classmethod
    def from_arrays(cls, ids: np.ndarray, vectors: np.ndarray) -> FullVectors:
        order = np.argsort(ids, kind="stable")
        return cls(np.ascontiguousarray(ids[order], dtype=np.int64),
                   np.ascontiguousarray(vectors[order], dtype=np.float32))

    @classmethod
    def open(cls, ids_path: Path, vectors_path: Path) -> FullVectors:
        return cls(np.load(ids_path, mmap_mode="r"), np.load(vectors_path, mmap_mode="r"))

    @property
    def dimension(self) -> int:
        return int(self._vectors.shape[1])

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Keep these vectors (replacing any stored under the same ids) until `write`."""
        ids = np.asarray(ids, dtype=np.int64)
        self.remove(ids)
        self._pending_ids.append(ids)
        self._pending_vectors.append(np.asarray(vectors, dtype=np.float32))
        self._extra = None

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self._removed.update(int(i) for i in ids)
        if self._pending_ids:
            keep = [~np.isin(p, ids) for p in self._pending_ids]
            self._pending_ids = [p[k] for p, k in zip(self._pending_ids, keep, strict=True)]
            self._pending_vectors = [v[k] for v, k in zip(self._pending_vectors, keep, strict=True)]
            self._extra = None

    def _pending(self) -> tuple[np.ndarray, np.ndarray]:
        if self._extra is None:
            ids = np.concatenate([np.zeros(0, dtype=np.int64), *self._pending_ids])
            vectors = np.concatenate([np.zeros((0, self.dimension), dtype=np.float32), *self._pending_vectors])
            order = np.argsort(ids, kind="stable")
            self._extra = (ids[order], vectors[order])
        return self._extra

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found): the vectors of these ids in order, zero rows where `found` is False."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for sorted_ids, vectors in ((self._ids, self._vectors), self._pending()):  # pending ones win
            if not len(sorted_ids) or not len(ids):
                continue
            rows = np.searchsorted(sorted_ids, ids).clip(max=len(sorted_ids) - 1)
            here = np.asarray(sorted_ids[rows]) == ids
            if sorted_ids is self._ids and self._removed:
                here &= ~np.isin(ids, np.fromiter(self._removed, dtype=np.int64, count=len(self._removed)))
            if here.any():
                out[here] = vectors[rows[here]]
                found |= here
        return out, found

    def live(self, block: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) blocks of every stored vector: disk rows not removed, then pending ones."""
        removed = np.fromiter(self._removed, dtype=np.int64, count=len(self._removed))
        for start in range(0, len(self._ids), block):
            ids = np.asarray(self._ids[start : start + block])
            keep = ~np.isin(ids, removed) if len(removed) else slice(None)
            yield ids[keep], np.asarray(self._vectors[start : start + block])[keep]
        pending_ids, pending_vectors = self._pending()
        if len(pending_ids):
            yield pending_ids, pending_vectors

    def count(self) -> int:
        return sum(len(ids) for ids, _ in self.live())

    def write(self, ids_path: Path, vectors_path: Path) -> int:
        """Write the live vectors sorted by id, block by block; returns how many."""
        ids = np.concatenate([np.zeros(0, dtype=np.int64), *(b for b, _ in self.live())])
        order = np.argsort(ids, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        out = np.lib.format.open_memmap(vectors_path, mode="w+", dtype=np.float32,
                                        shape=(len(ids), self.dimension))
        offset = 0
        for _, vectors in self.live():
            out[position[offset : offset + len(vectors)]] = vectors
            offset += len(vectors)
        out.flush()
        del out
        np.save(ids_path, ids[order])
        return len(ids)
