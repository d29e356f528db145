"""The FAISS side of a generation: normalized vectors keyed by chunk id, in one of three index types.

    flat   exact inner product (`IndexFlatIP`); right below ~100k vectors
    hnsw   a graph over the full vectors (`IndexHNSWFlat`); removals are tombstones,
           compacted (the graph rebuilt) once they pass `compact_ratio` of the index
    ivfpq  inverted lists of PQ codes in memory (`pq_bytes` + 8 bytes of id per vector);
           candidates are re-scored exactly against full vectors memory-mapped from disk

Vectors are L2-normalized, so inner product is cosine similarity; ids are
chunk ids; a filter is a set of allowed ids. `auto` picks the type by size.
Files beside `vectors.faiss`: `vectors.json` (type, parameters), and where
needed `vectors.tombstones.npy`, `vectors.ids.npy` + `vectors.full.npy`.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import msgspec
import numpy as np

from indexer.store.ann import (
    VectorParams,
    build_index,
    exact_scores,
    excluding,
    search_hnsw,
    search_ivfpq,
    without_lookup_table,
)
from indexer.store.full_vectors import FullVectors
from indexer.store.generations import CorruptIndexError
from indexer.store.manifest import VectorsEntry

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
AUTO_HNSW_FROM = 100_000      # flat search costs ≈ 9 ms per query at 100k vectors on 2 cores
AUTO_IVFPQ_FROM = 2_000_000   # past this, HNSW's 1.5 kB per vector of RAM is too much for one machine
EXACT_SUBSET = 10_000         # a filter allowing at most this many ids is searched exactly


KEEP = "keep"  # a build's default: the previous generation's type when it was chosen, else `auto`


def kept_type(kind: str, count: int) -> str:
    """What `keep` means for a generation of `kind` holding `count` vectors: its type when auto would not have
    chosen it there (so it was asked for: hnsw on a small index, flat on a large one), else `auto` again."""
    return kind if choose_type(count, kind) != kind else "auto"


def choose_type(count: int, current: str = "flat") -> str:
    """The index type for `count` vectors; moving down needs a margin, so sizes near a boundary don't flip."""
    margin = 0.8
    if count >= AUTO_IVFPQ_FROM or (current == "ivfpq" and count >= AUTO_IVFPQ_FROM * margin):
        return "ivfpq"
    if count >= AUTO_HNSW_FROM or (current != "flat" and count >= AUTO_HNSW_FROM * margin):
        return "hnsw"
    return "flat"


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """FAISS's OpenMP threads for this thread only: a few queries search fastest on one (no team to wake)."""
    if count is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.stem + suffix)


@dataclass
class VectorIndex:
    index: Any
    dimension: int
    kind: str = "flat"
    params: VectorParams = field(default_factory=VectorParams)
    tombstones: set[int] = field(default_factory=set)
    full: FullVectors | None = None   # ivfpq only
    _excluded: Any = field(default=None, repr=False, compare=False)  # selector of tombstones, built once

    @classmethod
    def create(cls, dimension: int, kind: str = "flat", params: VectorParams | None = None) -> VectorIndex:
        """An empty index; `ivfpq` needs training data, so it is made with `converted` from vectors."""
        if kind == "ivfpq":
            raise ValueError("an ivfpq index is trained on its vectors: create flat, add, then convert")
        params = params or VectorParams()
        return cls(build_index(kind, dimension, params, None), dimension, kind, params)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        index = faiss.read_index(str(path))
        meta_path = _sidecar(path, ".json")
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {"type": "flat"}
            params, kind = VectorParams(**meta.get("params", {})), str(meta["type"])
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise CorruptIndexError(f"{meta_path} is damaged ({exc}): run `yomitoki check`, or rebuild with "
                                    "`yomitoki index … --rebuild`") from exc
        tombstones_path = _sidecar(path, ".tombstones.npy")
        tombstones = set(np.load(tombstones_path).tolist()) if tombstones_path.exists() else set()
        full = None
        if kind == "ivfpq":
            without_lookup_table(index)  # reading rebuilds it
            full = FullVectors.open(_sidecar(path, ".ids.npy"), _sidecar(path, ".full.npy"))
        return cls(index, index.d, kind, params, tombstones, full)

    def save(self, path: Path) -> None:
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as exc:  # FAISS's own write error, for a full disk: as the OSError it stands for
            raise OSError(errno.EIO, f"FAISS could not write it ({str(exc).strip().splitlines()[-1]})",
                          str(path)) from exc
        meta = {"type": self.kind, "params": asdict(self.params)}
        _sidecar(path, ".json").write_text(json.dumps(meta, indent=2))
        if self.tombstones:
            np.save(_sidecar(path, ".tombstones.npy"), np.array(sorted(self.tombstones), dtype=np.int64))
        if self.full is not None:
            self.full.write(_sidecar(path, ".ids.npy"), _sidecar(path, ".full.npy"))

    @property
    def size(self) -> int:
        """Vectors that can be found (tombstoned ones excluded)."""
        return int(self.index.ntotal) - len(self.tombstones)

    def settings(self) -> VectorsEntry:
        """The manifest's `vectors` entry: the type and the parameters that shape it."""
        common = VectorsEntry(type=self.kind, metric="inner_product", faiss=faiss.__version__, count=self.size)
        if self.kind == "hnsw":
            return msgspec.structs.replace(
                common, m=self.params.hnsw_m, ef_construction=self.params.ef_construction,
                ef_search=self.params.ef_search, tombstones=len(self.tombstones),
                compact_ratio=self.params.compact_ratio)
        if self.kind == "ivfpq":
            return msgspec.structs.replace(
                common, nlist=int(self.index.nlist), nprobe=self.params.nprobe, pq_bytes=int(self.index.pq.M),
                pq_bits=int(self.index.pq.nbits), rescore=self.params.rescore,
                bytes_per_vector_in_memory=int(self.index.code_size) + 8, full_vectors="memory-mapped")
        return common

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.tombstones and not self.tombstones.isdisjoint(ids.tolist()):
            self.compact()  # a tombstoned id comes back: drop its old vector first
        self.index.add_with_ids(vectors, ids)
        if self.full is not None:
            self.full.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; HNSW cannot, so it tombstones them until `compact`."""
        if not len(ids):
            return 0
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind != "hnsw":
            if self.full is not None:
                self.full.remove(ids)
            return int(self.index.remove_ids(ids))
        present = self._present(ids)
        new = {int(i) for i in present} - self.tombstones
        self.tombstones |= new
        self._excluded = None
        return len(new)

    def _present(self, ids: np.ndarray) -> np.ndarray:
        stored = faiss.vector_to_array(self.index.id_map)
        return ids[np.isin(ids, stored)]

    def live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every findable vector, e.g. to rebuild as another type."""
        if self.full is not None:
            blocks = list(self.full.live())
            return (np.concatenate([np.zeros(0, dtype=np.int64), *(b[0] for b in blocks)]),
                    np.concatenate([np.zeros((0, self.dimension), dtype=np.float32), *(b[1] for b in blocks)]))
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.index.index.reconstruct_n(0, len(ids)) if len(ids) else np.zeros((0, self.dimension))
        keep = ~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64)) if self.tombstones else slice(None)
        return ids[keep], np.asarray(vectors, dtype=np.float32)[keep]

    def converted(self, kind: str, params: VectorParams | None = None) -> VectorIndex:
        """This index rebuilt as `kind` (`auto`: chosen by size) with its live vectors."""
        params = params or self.params
        if kind == "auto":
            kind = choose_type(self.size, self.kind)
        if kind not in INDEX_TYPES:
            raise ValueError(f"unknown index type {kind!r}: use one of auto, {', '.join(INDEX_TYPES)}")
        if kind == self.kind and params == self.params and not self.needs_compaction():
            return self
        return self._rebuilt(kind, params)

    def _rebuilt(self, kind: str, params: VectorParams) -> VectorIndex:
        ids, vectors = self.live_vectors()
        index = build_index(kind, self.dimension, params, vectors)
        full = FullVectors.from_arrays(ids, vectors) if kind == "ivfpq" else None
        if len(ids):
            index.add_with_ids(vectors, ids)
        return VectorIndex(index, self.dimension, kind, params, set(), full)

    def needs_compaction(self) -> bool:
        """True when tombstones pass `compact_ratio` of the stored vectors."""
        return len(self.tombstones) > self.params.compact_ratio * max(1, int(self.index.ntotal))

    def compact(self) -> None:
        """Drop tombstoned vectors for good by rebuilding the graph from the live ones."""
        if self.tombstones:
            rebuilt = self._rebuilt(self.kind, self.params)
            self.index, self.full, self.tombstones, self._excluded = rebuilt.index, rebuilt.full, set(), None

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, (chunk id, cosine) best first; `allowed` restricts to those ids."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None and self.tombstones:
            allowed = np.setdiff1d(allowed, np.fromiter(self.tombstones, dtype=np.int64))
        if self.size == 0 or (allowed is not None and not len(allowed)):
            return [[] for _ in range(len(queries))]
        k = min(k, self.size)
        with _threads(1 if len(queries) < 8 else None):
            return self._search(queries, k, allowed)

    def _search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[tuple[int, float]]]:
        if allowed is not None and self.kind != "flat" and len(allowed) <= EXACT_SUBSET:
            return exact_scores(queries, *self._subset(np.unique(np.asarray(allowed, dtype=np.int64))), k)
        if self.kind == "hnsw":
            return search_hnsw(self.index, queries, k, self.params, allowed, self._tombstone_selector())
        if self.kind == "ivfpq":
            assert self.full is not None
            return search_ivfpq(self.index, self.full, queries, k, self.params, allowed)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))  # type: ignore[call-arg]
        scores, found = self.index.search(queries, k, params=params)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(found, scores, strict=True)]

    def _tombstone_selector(self) -> Any:
        if self.tombstones and self._excluded is None:
            self._excluded = excluding(self.tombstones)
        return self._excluded if self.tombstones else None

    def _subset(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, vectors) of those ids that are stored."""
        if self.full is not None:
            vectors, found = self.full.get(ids)
            return ids[found], vectors[found]
        ids = self._present(ids)
        if not len(ids):
            return ids, np.zeros((0, self.dimension), dtype=np.float32)
        return ids, self.index.reconstruct_batch(ids)
