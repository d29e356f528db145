"""A selective filter (about 1% of documents) over many vectors: latency per index type and strategy.

    python benchmarks/filters.py [--size 1000000] [--queries 200] [--selectivity 0.01] [--cache DIR]

For each index type (flat, HNSW, IVF-PQ), built through `VectorIndex` as the
indexer builds it (its default parameters; every core, as `yomitoki index`
does), then searched one query at a time on one FAISS thread, p50 / p99 in ms of:

- unfiltered        `VectorIndex.search` with no filter: the baseline, same run;
- filtered          `VectorIndex.search` with the allowed ids: what a filtered search
                    does (exact scores over the subset when it holds ≤ EXACT_SUBSET ids,
                    FAISS id selectors otherwise);
- selector          FAISS's own search with an `IDSelectorBatch` (pre-filtering in the graph
                    or the inverted lists), for comparison;
- over-fetch        an unfiltered search 1/selectivity × deeper, cut to the allowed ids.

Each filtered strategy also reports how many of the k hits came back and recall@k
against exact search over the allowed vectors. The allowed ids themselves come from
SQLite in the product: `sql` is the time `SqliteStore.filtered_chunk_ids` takes for a
`where` filter selecting the same share of a store of `--size` one-chunk documents
(`--sql-size` to use fewer rows, 0 to skip).

The vectors are synthetic but clustered like text embeddings (unit vectors around
1,000 random centres), 384-d like all-MiniLM-L6-v2 and multilingual-e5-small.
Timings on a shared machine are distorted by its other work: `uptime` is printed
beside them.

Building HNSW over 1M vectors is the long pole (minutes on 2 cores; each build's
time is printed). `--cache DIR` keeps each built index there (about 1.7 GB per
type at 1M) and loads it on the next run with the same size and parameters, so
the searches can be timed again, on a quiet machine, without building again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.store.ann import VectorParams, exact_scores
from indexer.store.sqlite import Filters, SqliteStore
from indexer.store.vectors import EXACT_SUBSET, VectorIndex
from indexer.store.where import parse

DIMENSION = 384
CENTRES = 1000
K = 10
DATA_VERSION = "clustered-seed0-v1"  # names cached indexes: change it when the vectors change


def clustered(count: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.04, (n, DIMENSION)).astype(np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(run: Callable[[np.ndarray], list[tuple[int, float]]], queries: np.ndarray,
          truth: list[list[int]] | None) -> dict[str, float]:
    times, found, recall = [], [], []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        hits = run(query)
        times.append((time.perf_counter() - started) * 1000)
        found.append(len(hits))
        if truth is not None:
            recall.append(len({i for i, _ in hits} & set(truth[number])) / max(len(truth[number]), 1))
    out = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
           "hits": float(np.mean(found))}
    if truth is not None:
        out["recall"] = float(np.mean(recall))
    return out


def strategies(index: VectorIndex, vectors: np.ndarray, allowed: np.ndarray, queries: np.ndarray,
               selectivity: float) -> dict[str, dict[str, float]]:
    truth = [[i for i, _ in row] for row in exact_scores(queries, allowed, vectors[allowed - 1], K)]
    allowed_set = set(allowed.tolist())
    native = index.index

    def selector(query: np.ndarray) -> list[tuple[int, float]]:
        sel = faiss.IDSelectorBatch(allowed)
        if index.kind == "hnsw":
            params: object = faiss.SearchParametersHNSW(efSearch=max(index.params.ef_search, K) * 2, sel=sel)
        elif index.kind == "ivfpq":
            params = faiss.SearchParametersIVF(nprobe=index.params.nprobe, sel=sel)
        else:
            params = faiss.SearchParameters(sel=sel)
        scores, ids = native.search(query[None, :], K, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def over_fetch(query: np.ndarray) -> list[tuple[int, float]]:
        deep = index.search(query[None, :], min(int(K / selectivity), index.size))[0]
        return [hit for hit in deep if hit[0] in allowed_set][:K]

    return {
        "unfiltered": timed(lambda q: index.search(q[None, :], K)[0], queries, None),
        "filtered": timed(lambda q: index.search(q[None, :], K, allowed)[0], queries, truth),
        "selector": timed(selector, queries, truth),
        "over-fetch": timed(over_fetch, queries, truth),
    }


def built_index(kind: str, ids: np.ndarray, vectors: np.ndarray, cache: Path | None,
                threads: int) -> tuple[VectorIndex, str]:
    """The index of `kind` over these vectors, as the indexer builds it, and "built" or "loaded from cache"."""
    params = VectorParams()
    name = f"{kind}-{len(ids)}-{DATA_VERSION}-{hashlib.sha256(repr(params).encode()).hexdigest()[:12]}.faiss"
    path = cache / name if cache is not None else None
    if path is not None and path.exists():
        return VectorIndex.load(path), "loaded from cache"
    faiss.omp_set_num_threads(threads)
    index = VectorIndex.create(DIMENSION, params=params)
    index.add(ids, vectors)
    index = index.converted(kind, params)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
    return index, f"built with {threads} threads"


def sql_filter_time(size: int, selectivity: float, repeats: int = 5) -> dict[str, float]:
    """Seconds `SqliteStore.filtered_chunk_ids` takes for a metadata filter that keeps `selectivity` of `size` docs."""
    groups = round(1 / selectivity)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite")
        rows = ((f"d{i}", f"k{i}", f"s{i}", "", "", "en", json.dumps({"group": i % groups}), "") for i in range(size))
        store.db.conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        store.db.conn.executemany("INSERT INTO chunks (doc_id, ordinal, start, end, text, section, tokens) "
                                  "VALUES (?, 0, 0, 0, '', '[]', 0)", ((f"d{i}",) for i in range(size)))
        store.commit()
        filters = Filters(expression=parse({"field": "metadata.group", "eq": 0}))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            ids = store.filtered_chunk_ids(filters)
            times.append((time.perf_counter() - started) * 1000)
        store.close()
    return {"p50_ms": float(np.percentile(times, 50)), "max_ms": float(max(times)), "ids": float(len(ids))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="vectors (and documents)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--selectivity", type=float, default=0.01, help="share of documents the filter keeps")
    parser.add_argument("--types", default="flat,hnsw,ivfpq")
    parser.add_argument("--sql-size", type=int, default=None, help="documents in the SQLite part (default --size)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep built indexes here and reuse them (same size, data and parameters)")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1,
                        help="FAISS threads while building (searches use one)")
    args = parser.parse_args()
    run_started = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (CENTRES, DIMENSION)).astype(np.float32)
    vectors = clustered(args.size, rng, centres)
    queries = clustered(args.queries, rng, centres)
    ids = np.arange(1, args.size + 1, dtype=np.int64)
    allowed = np.sort(rng.choice(ids, max(1, round(args.size * args.selectivity)), replace=False))
    print(f"{args.size:,} vectors × {DIMENSION}, filter keeps {len(allowed):,} ({args.selectivity:.1%}); "
          f"exact over the subset up to {EXACT_SUBSET:,} ids; load: {os.getloadavg()}", flush=True)
    report: dict[str, object] = {"size": args.size, "allowed": len(allowed), "load": os.getloadavg()}
    for kind in args.types.split(","):
        started = time.perf_counter()
        index, how = built_index(kind, ids, vectors, args.cache, args.build_threads)
        built = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        results = strategies(index, vectors, allowed, queries, args.selectivity)
        report[kind] = {**results, "build_s": built, "build": how}
        print(f"\n{kind} ({how} in {built:.0f} s)  load {os.getloadavg()[0]:.1f}")
        print(f"{'':12}{'p50 ms':>10}{'p99 ms':>10}{'hits':>8}{'recall':>8}")
        for name, row in results.items():
            recall = f"{row['recall']:>8.3f}" if "recall" in row else f"{'':>8}"
            print(f"{name:12}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['hits']:>8.1f}{recall}", flush=True)
        del index
    sql_size = args.size if args.sql_size is None else args.sql_size
    if sql_size:
        sql = sql_filter_time(sql_size, args.selectivity)
        report["sql"] = {**sql, "documents": sql_size}
        print(f"\nsql: SqliteStore.filtered_chunk_ids over {sql_size:,} documents: p50 {sql['p50_ms']:.1f} ms "
              f"(max {sql['max_ms']:.1f}), {sql['ids']:.0f} ids  (SQLite {sqlite3.sqlite_version})")
    total = time.perf_counter() - run_started
    report["total_s"] = total
    print(f"\ntotal {total:.0f} s; load {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
