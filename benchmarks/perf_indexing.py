"""Indexing speed and the int8 quality guard, for benchmarks/performance.py.

`yomitoki index` (the real command, one process per backend) indexes SciFact;
its chunks are then read back from the index and encoded by plain
`SentenceTransformer.encode` (torch, batch 32): the baseline. The same chunks'
vectors from each backend are compared with torch's (mean cosine), and
SciFact nDCG@10 is computed from each set of chunk vectors with one ranking
rule (exact inner product, a document ranks by its best chunk).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.retrieval import RetrievalSet, load_scifact, ndcg_at
from indexer.build.builder import document_id
from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder
from indexer.embed.locations import locate_embedder
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import SqliteStore
from indexer.store.vectors import VectorIndex
from indexer.text.chunking import embedding_text
from indexer.text.normalize import normalize_query

MODEL = "all-minilm-l6-v2"
CORPUS_FILE = "scifact.jsonl"


def write_corpus(retrieval: RetrievalSet, folder: Path) -> Path:
    """SciFact as one JSON-lines file, as a user would hand it to `yomitoki index`."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / CORPUS_FILE).open("w", encoding="utf-8") as handle:
        for doc in retrieval.documents:
            handle.write(json.dumps({"id": doc["id"], "title": doc["title"] or doc["text"][:80],
                                     "text": doc["text"]}, ensure_ascii=False) + "\n")
    return folder


def run_index_command(corpus: Path, index: Path, backend: str) -> dict[str, Any]:
    """`yomitoki index --backend B --json` in its own process; its build report plus the wall time."""
    command = [sys.executable, "-m", "server", "index", str(corpus), "--index", str(index), "--rebuild",
               "--backend", backend, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    seconds, embed = report["seconds"], report["embed_seconds"]
    return {"backend": backend, "chunks": report["chunks_embedded"], "build_seconds": seconds,
            "embed_seconds": embed, "process_seconds": time.perf_counter() - started,
            "passages_per_s": report["chunks_embedded"] / seconds, "outside_embedding_share": 1 - embed / seconds}


def indexed_chunks(index: Path) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """(chunk ids, embedded texts, document ids, vectors) of the live generation, in id order."""
    generation = IndexDirectory(index).current()
    store = SqliteStore(generation.store_path, readonly=True)
    try:
        chunks = list(store.iter_chunks())
        titles = {d: store.documents_brief([d])[d][0] for d in {c.doc_id for c in chunks}}
    finally:
        store.close()
    ids, vectors = VectorIndex.load(generation.vectors_path).live_vectors()
    order = np.argsort(ids)
    by_id = dict(zip(ids[order].tolist(), vectors[order], strict=True))
    chunk_ids = np.array([c.id for c in chunks], dtype=np.int64)
    texts = [embedding_text(titles[c.doc_id], c.text) for c in chunks]
    return chunk_ids, texts, [c.doc_id for c in chunks], np.vstack([by_id[int(i)] for i in chunk_ids])


def raw_torch_encode(texts: list[str]) -> tuple[np.ndarray, float]:
    """The baseline: plain SentenceTransformer.encode of the same texts (batch 32, normalized)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(locate_embedder(MODEL).path), device="cpu")
    model.encode(texts[:64], batch_size=32)  # warm-up
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32), time.perf_counter() - started


def chunk_ndcg(retrieval: RetrievalSet, doc_of_chunk: list[str], vectors: np.ndarray,
               queries: np.ndarray) -> float:
    """SciFact nDCG@10 of dense retrieval over chunk vectors: a document ranks by its best chunk."""
    ids = {document_id(str(d["id"])): d["id"] for d in retrieval.documents}
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), 100)
    scores = []
    for (qid, _), row in zip(retrieval.queries, found, strict=True):
        ranked = list(dict.fromkeys(ids[doc_of_chunk[i]] for i in row if i >= 0))[:10]
        scores.append(ndcg_at(ranked, retrieval.relevant[qid]))
    return float(np.mean(scores))


def query_vectors(embedder: Embedder, retrieval: RetrievalSet) -> np.ndarray:
    return embedder.embed([normalize_query(q).strip() for _, q in retrieval.queries])


def measure_indexing(data: Path, workdir: Path, backends: list[str]) -> dict[str, Any]:
    retrieval = load_scifact(data)
    corpus = write_corpus(retrieval, workdir / "scifact")
    for backend in backends:  # export (once, cached) before anything is timed
        load_embedder(MODEL, runtime=backend)
    builds = {b: run_index_command(corpus, workdir / f"index-{b}", b) for b in backends}
    fastest = max(builds, key=lambda b: builds[b]["passages_per_s"])
    chunk_ids, texts, doc_of_chunk, _ = indexed_chunks(workdir / f"index-{fastest}")
    torch_vectors, torch_seconds = raw_torch_encode(texts)
    raw_rate = len(texts) / torch_seconds
    torch_queries = query_vectors(load_embedder(MODEL, runtime="torch"), retrieval)
    quality = {"torch": {"ndcg@10": chunk_ndcg(retrieval, doc_of_chunk, torch_vectors, torch_queries)}}
    for backend in backends:
        ids, _, docs, vectors = indexed_chunks(workdir / f"index-{backend}")
        if not np.array_equal(ids, chunk_ids):
            raise RuntimeError(f"backend {backend} chunked SciFact differently from {fastest}")
        embedder = load_embedder(MODEL, runtime=backend)
        quality[backend] = {
            "mean_cosine_to_torch": float((vectors * torch_vectors).sum(axis=1).mean()),
            "min_cosine_to_torch": float((vectors * torch_vectors).sum(axis=1).min()),
            "ndcg@10": chunk_ndcg(retrieval, docs, vectors, query_vectors(embedder, retrieval)),
        }
        if backend == "onnx-int8":  # how much of the loss is the queries': the same int8 index, float32 queries
            float32 = query_vectors(load_embedder(MODEL, runtime="onnx"), retrieval)
            quality[backend]["ndcg@10_float32_queries"] = chunk_ndcg(retrieval, docs, vectors, float32)
    return {
        "corpus": {"documents": len(retrieval.documents), "chunks": len(texts), "queries": len(retrieval.queries)},
        "raw_torch_encode": {"seconds": torch_seconds, "passages_per_s": raw_rate},
        "builds": builds, "fastest": fastest,
        "speedup_vs_raw_torch": {b: builds[b]["passages_per_s"] / raw_rate for b in backends},
        "quality": quality,
        "index": str(workdir / f"index-{fastest}"),
        "indexes": {b: str(workdir / f"index-{b}") for b in backends},
    }
