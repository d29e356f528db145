"""Index types at scale (e.g. 1,000,000 × 384), for benchmarks/performance.py --scale N.

Uniform random vectors make every approximate index look broken, so the
vectors come from real text: the chunks of SciFact, JSQuAD and SQuAD (small
chunks, ≈ 64 tokens) are embedded once (cached), and the million is made by
replicating each with small Gaussian noise and renormalizing. Queries are
real questions and claims from the same sets, held apart from the index.

Each type is built in this process through `VectorIndex` (the code the
indexer uses) and saved; it is then loaded and queried one query at a time
(1 FAISS thread) in a fresh process, which reports the memory the load added
(anonymous RSS, i.e. not the memory-mapped file pages), latencies and
recall@10 against exact search.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also when run as the measuring child

from indexer.embed.loading import load_embedder
from indexer.store.vectors import VectorIndex
from indexer.text.chunking import ChunkSettings, chunk_document, embedding_text
from indexer.text.loaders import load_corpus

MODEL = "all-minilm-l6-v2"
SMALL_CHUNKS = ChunkSettings(max_tokens=64, overlap=16)
NOISE = 0.02            # per-dimension σ: a replica keeps cosine ≈ 0.93 to its source
QUERIES = 1000
BLOCK = 100_000


def _qa_paragraphs(path: Path, name: str) -> tuple[list[dict[str, str]], list[str]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    docs, questions = {}, []
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            title, _, text = paragraph["context"].rpartition(" [SEP] ")
            docs.setdefault(paragraph["context"], {"id": f"{name}{len(docs)}", "title": title or article.get(
                "title", ""), "text": text})
            questions += [qa["question"] for qa in paragraph["qas"]]
    return list(docs.values()), questions


def _write_sets(data: Path, folder: Path) -> list[str]:
    """The three sets' passages as JSON-lines corpora in `folder`; returns a sample of their questions."""
    sets = {"jsquad": _qa_paragraphs(data / "jsquad" / "valid-v1.3.json", "j"),
            "squad": _qa_paragraphs(data / "squad-v1.1" / "dev-v1.1.json", "s")}
    scifact = [json.loads(line) for line in (data / "scifact" / "corpus.jsonl").open(encoding="utf-8")]
    claims = [json.loads(line)["text"] for line in (data / "scifact" / "queries.jsonl").open(encoding="utf-8")]
    sets["scifact"] = ([{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in scifact], claims)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (docs, _) in sets.items():
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    questions = [q for _, qs in sets.values() for q in qs]
    return random.Random(0).sample(questions, QUERIES)


def real_vectors(data: Path, workdir: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(chunk vectors, held-apart query vectors) from the benchmark sets; embedded once, then cached."""
    if cache.exists():
        saved = np.load(cache)
        return saved["base"], saved["queries"]
    questions = _write_sets(data, workdir / "scale-corpus")
    embedder = load_embedder(MODEL, runtime="onnx-int8")
    docs, _ = load_corpus(workdir / "scale-corpus")
    texts = [embedding_text(d.title, c.text) for d in docs for c in chunk_document(d, embedder, SMALL_CHUNKS)]
    base = embedder.embed(texts, batch_size=64)
    queries = embedder.embed(questions)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=queries)
    return base, queries


def synthesize(base: np.ndarray, count: int, path: Path) -> np.ndarray:
    """`count` unit vectors: each a real one plus noise, renormalized; written to a .npy map."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(base))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, base.shape[1]))
    for start in range(0, count, BLOCK):
        rows = base[order[np.arange(start, min(count, start + BLOCK)) % len(base)]]
        rows = rows + NOISE * rng.standard_normal(rows.shape, dtype=np.float32)
        out[start : start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    out.flush()
    return out


def _add_blocks(index: VectorIndex, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), BLOCK):
        part = np.asarray(vectors[start : start + BLOCK])
        index.add(np.arange(start, start + len(part), dtype=np.int64), part)


def build_all(vectors: np.ndarray, workdir: Path) -> tuple[dict[str, dict[str, Any]], VectorIndex]:
    """Build and save each type; returns build seconds and bytes on disk, and the flat index.

    A type whose folder already holds a build of the same vectors (`build.json`, from an earlier run
    with the same `--scale-dir`) is reused with its recorded build time, so that the latencies can be
    measured again on a quieter machine without rebuilding.
    """
    builds: dict[str, dict[str, Any]] = {}
    flat = VectorIndex.create(vectors.shape[1], "flat")
    for kind in ("flat", "hnsw", "ivfpq"):
        record = workdir / f"scale-{kind}" / "build.json"
        if kind != "flat" and record.exists() and json.loads(record.read_text()).get("vectors") == len(vectors):
            builds[kind] = json.loads(record.read_text())["build"]
            continue
        started = time.perf_counter()
        if kind == "flat":
            index = flat
            _add_blocks(index, vectors)
        elif kind == "hnsw":
            index = VectorIndex.create(vectors.shape[1], "hnsw")
            _add_blocks(index, vectors)
        else:
            index = flat.converted("ivfpq")  # trained on the vectors it will hold
        folder = workdir / f"scale-{kind}"
        folder.mkdir(exist_ok=True)
        index.save(folder / "vectors.faiss")
        builds[kind] = {"build_seconds": time.perf_counter() - started,
                        "settings": msgspec.to_builtins(index.settings()),
                        "disk_bytes": sum(p.stat().st_size for p in folder.iterdir())}
        record.write_text(json.dumps({"vectors": len(vectors), "build": builds[kind]}))
        del index
    return builds, flat


def measure(folder: Path, queries_file: Path, truth_file: Path, latency_queries: int) -> dict[str, float]:
    """In a fresh process: memory the load adds, single-query latency, recall@10 against exact."""
    command = [sys.executable, __file__, str(folder / "vectors.faiss"), str(queries_file), str(truth_file),
               str(latency_queries)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_scale(data: Path, workdir: Path, count: int, cache_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    base, queries = real_vectors(data, workdir, cache_dir / "scale-base-v1.npz")
    vectors = synthesize(base, count, workdir / "scale-vectors.npy")
    builds, flat = build_all(vectors, workdir)
    truth = np.array([[i for i, _ in row] for row in flat.search(queries, 10)], dtype=np.int64)
    del flat
    np.save(workdir / "scale-queries.npy", queries)
    np.save(workdir / "scale-truth.npy", truth)
    results = {}
    for kind in builds:
        latency_queries = 100 if kind == "flat" else len(queries)
        results[kind] = {**builds[kind], **measure(workdir / f"scale-{kind}", workdir / "scale-queries.npy",
                                                   workdir / "scale-truth.npy", latency_queries)}
        results[kind]["memory_bytes_per_vector"] = results[kind]["rss_anon_delta_bytes"] / count
    return {"vectors": count, "dimension": int(vectors.shape[1]), "real_chunks": len(base),
            "queries": len(queries), "noise_sigma": NOISE, "seconds": time.perf_counter() - started,
            "types": results}


def _rss() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile")}


def _child(index_path: str, queries_path: str, truth_path: str, latency_queries: str) -> None:
    import faiss

    faiss.omp_set_num_threads(1)  # batch-1 search is fastest on one thread here
    queries, truth = np.load(queries_path), np.load(truth_path)
    before = _rss()
    began = time.perf_counter()
    index = VectorIndex.load(Path(index_path))
    load_seconds = time.perf_counter() - began
    loaded = _rss()
    for query in queries[:20]:
        index.search(query[None, :], 10)
    latencies, hits = [], 0
    for query, expected in zip(queries[: int(latency_queries)], truth, strict=False):
        began = time.perf_counter()
        found = index.search(query[None, :], 10)[0]
        latencies.append((time.perf_counter() - began) * 1000)
        hits += len({i for i, _ in found} & set(expected.tolist()))
    after = _rss()
    print(json.dumps({
        "load_seconds": load_seconds, "rss_anon_delta_bytes": loaded["RssAnon"] - before["RssAnon"],
        "rss_file_after_queries_bytes": after["RssFile"] - before["RssFile"],
        "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
        "recall@10": hits / (10 * len(latencies)), "queries": len(latencies),
    }))


if __name__ == "__main__":
    _child(*sys.argv[1:5])
