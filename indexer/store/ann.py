"""Building and searching the FAISS index types behind `indexer.store.vectors.VectorIndex`.

Every search returns, per query, (chunk id, cosine) pairs best first. IVF-PQ
scores are approximate, so its candidates (`rescore` × k, at least 100) are
re-scored with the exact vectors and only then cut to k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from indexer.store.full_vectors import FullVectors

Hits = list[list[tuple[int, float]]]


@dataclass(frozen=True)
class VectorParams:
    """Parameters of the approximate types, recorded in the manifest."""

    hnsw_m: int = 48              # graph degree: 48/128/384 reach recall@10 ≈ 0.96 at 1M (see README)
    ef_construction: int = 128
    ef_search: int = 384
    pq_bytes: int = 48            # bytes per PQ code; + 8 bytes of id = 56 bytes per vector in memory
    nlist: int = 0                # inverted lists; 0: about √n, chosen when trained
    nprobe: int = 16
    rescore: int = 20             # candidates re-scored per wanted hit (at least 100)
    compact_ratio: float = 0.2    # HNSW tombstones allowed before the graph is rebuilt


def ivf_shape(count: int, params: VectorParams, dimension: int) -> tuple[int, int, int]:
    """(nlist, PQ sub-quantizers, bits per code) that `count` training vectors can support."""
    nlist = params.nlist or round(math.sqrt(max(count, 1)))
    nlist = max(1, min(nlist, count // 8 or 1, 65_536))
    m = params.pq_bytes
    while dimension % m:  # PQ needs sub-vectors of equal length
        m -= 1
    bits = max(1, min(8, int(math.log2(max(count // 39, 2)))))  # k-means wants ≥ 39 points per centroid
    return nlist, m, bits


def build_index(kind: str, dimension: int, params: VectorParams, train: np.ndarray | None) -> Any:
    """An empty index of this type, trained on `train` when the type needs it (ivfpq)."""
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if kind == "hnsw":
        graph = faiss.IndexHNSWFlat(dimension, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = params.ef_construction
        graph.hnsw.efSearch = params.ef_search
        return faiss.IndexIDMap2(graph)
    if kind == "ivfpq":
        if train is None or not len(train):
            raise ValueError("an ivfpq index needs vectors to train on")
        nlist, m, bits = ivf_shape(len(train), params, dimension)
        # L2 on unit vectors ranks like inner product, and PQ encodes residuals best under L2
        index = faiss.IndexIVFPQ(faiss.IndexFlatL2(dimension), dimension, nlist, m, bits)
        index.cp.niter = 10                        # coarse k-means: 10 rounds on ≤ 64 points per list
        index.cp.max_points_per_centroid = 64
        index.pq.cp.niter = 15                     # one k-means per sub-quantizer: keep them cheap
        index.pq.cp.max_points_per_centroid = 64
        index.nprobe = min(params.nprobe, nlist)
        without_lookup_table(index)
        sample = train
        if len(train) > max(nlist * 64, 256 * 64):
            rng = np.random.default_rng(0)
            sample = train[np.sort(rng.choice(len(train), max(nlist * 64, 256 * 64), replace=False))]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return index
    raise ValueError(f"unknown index type {kind!r}")


def without_lookup_table(index: Any) -> Any:
    """Drop IVF-PQ's precomputed table (nlist × 256 × pq_bytes floats: ≈ 49 bytes per vector at 1M).

    The table only saves computing each probed list's distance table at query
    time, which costs microseconds; without it memory holds codes and ids only.
    """
    index.use_precomputed_table = -1
    index.precompute_table()  # with -1: frees the table
    return index


def _rows(scores: np.ndarray, ids: np.ndarray) -> Hits:
    return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)]


def exact_scores(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> Hits:
    """Exact top-k of `queries` over a small set of (id, vector) rows."""
    if not len(ids):
        return [[] for _ in range(len(queries))]
    scores = queries @ np.asarray(vectors, dtype=np.float32).T
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = []
    for row, cols in zip(scores, top, strict=True):
        cols = cols[np.argsort(-row[cols], kind="stable")]
        out.append([(int(ids[c]), float(row[c])) for c in cols])
    return out


def excluding(ids: set[int]) -> Any:
    """A FAISS selector of every id but these (HNSW's tombstones)."""
    dead = faiss.IDSelectorBatch(np.fromiter(ids, dtype=np.int64, count=len(ids)))
    selector = faiss.IDSelectorNot(dead)
    selector.referenced = dead  # type: ignore[attr-defined]  # keeps the wrapped selector alive with this one
    return selector


def search_hnsw(index: Any, queries: np.ndarray, k: int, params: VectorParams,
                allowed: np.ndarray | None, excluded: Any) -> Hits:
    """`allowed` (ids) or else `excluded` (a selector of tombstones) restrict the search."""
    selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else excluded
    ef = max(params.ef_search, k) * (2 if selector is not None else 1)
    search_params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)  # type: ignore[attr-defined]  # stubs lag
    scores, ids = index.search(queries, k, params=search_params)
    return _rows(scores, ids)


def search_ivfpq(index: Any, full: FullVectors, queries: np.ndarray, k: int, params: VectorParams,
                 allowed: np.ndarray | None) -> Hits:
    depth = min(max(k * params.rescore, 100), int(index.ntotal))
    selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else None
    search_params = faiss.SearchParametersIVF(nprobe=min(params.nprobe, index.nlist), sel=selector)  # type: ignore[call-arg]
    _, candidates = index.search(queries, depth, params=search_params)
    out = []
    for query, row in zip(queries, candidates, strict=True):
        ids = row[row >= 0]
        vectors, _ = full.get(ids)
        out.append(exact_scores(query[None, :], ids, vectors, k)[0])
    return out
