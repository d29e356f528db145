"""The two search backends side by side: quality must agree, latency is what it is.
  # noqa: E402
    python benchmarks/scaling.py [--sets scifact,jsquad] [--jsquad-limit 500] [--scifact-limit 300]
                                 [--scifact-docs 2000]
                                 [--backend torch] [--ray ADDRESS]

For each set (SciFact: nDCG@10; JSQuAD passages: recall@1/@5; loaded as in
benchmarks/retrieval.py from ../shared/data), the same corpus is indexed into
the embedded backend (FAISS + SQLite) and into Milvus Lite, then every query is
searched dense, keyword and hybrid on both. Reported: the metrics per backend
and mode, the largest difference between backends (they should agree within
0.01), query latency p50/p99 per backend and mode (the query vector is
embedded beforehand, so this is the backend + fusion + hit assembly), and
index time.

Index time: the embedded build embeds; the Milvus build is given the same
vectors again from a cache (`CachedEmbedder`), so its time is the cost of
writing to Milvus. `--ray ADDRESS` also times `yomitoki index --ray ADDRESS`
(from indexer.build.distributed) through the command line, when that option exists.
Results go to benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, RetrievalSet, load_jsquad, load_scifact, metrics  # noqa: E402
from indexer.build.builder import BuildOptions, IndexBuilder, document_id  # noqa: E402
from indexer.embed.base import Embedder  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import MODES, Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.store.milvus import MilvusIndex, release  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
AGREEMENT = 0.01


class CachedEmbedder:
    """An embedder that remembers its vectors, so a second build of the same corpus does not embed again."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: list[str], **options: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing, **options), strict=True))
        if not texts:
            return self.inner.embed(texts, **options)
        return np.stack([self.cache[t] for t in texts])


def sample_documents(retrieval: RetrievalSet, queries: int | None, documents: int | None) -> RetrievalSet:
    """The first `queries` queries over `documents` documents: all their relevant ones plus random others."""
    kept_queries = retrieval.queries[:queries] if queries else retrieval.queries
    if not documents:
        return RetrievalSet(retrieval.name, retrieval.documents, kept_queries, retrieval.relevant)
    relevant = {doc for qid, _ in kept_queries for doc in retrieval.relevant[qid]}
    others = [d for d in retrieval.documents if d["id"] not in relevant]
    extra = random.Random(0).sample(others, max(0, min(len(others), documents - len(relevant))))
    kept = {d["id"] for d in extra} | relevant
    return RetrievalSet(retrieval.name, [d for d in retrieval.documents if d["id"] in kept], kept_queries,
                        retrieval.relevant)


def write_corpus(retrieval: RetrievalSet, folder: Path) -> Path:
    folder.mkdir(parents=True)
    with (folder / f"{retrieval.name}.jsonl").open("w", encoding="utf-8") as handle:
        for doc in retrieval.documents:
            handle.write(json.dumps({"id": doc["id"], "title": doc["title"] or doc["text"][:80],
                                     "text": doc["text"]}, ensure_ascii=False) + "\n")
    return folder


def rank(searcher: Searcher, retrieval: RetrievalSet, mode: str,
         vectors: np.ndarray) -> tuple[list[list[str]], list[float]]:
    """Document rankings per query and the milliseconds each search took."""
    ids = {document_id(str(d["id"])): d["id"] for d in retrieval.documents}
    rankings, latencies = [], []
    for (_, query), vector in zip(retrieval.queries, vectors, strict=True):
        started = time.perf_counter()
        hits = searcher.search(query, mode=mode, k=100, query_vector=vector)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked: list[str] = []
        for hit in hits:
            if ids[hit.doc_id] not in ranked:
                ranked.append(ids[hit.doc_id])
            if len(ranked) == 10:
                break
        rankings.append(ranked)
    return rankings, latencies


def time_ray_index(corpus: Path, address: str, workdir: Path) -> dict[str, Any]:
    """Hook: index time with Ray, through `yomitoki index --ray ADDRESS` (indexer.build.distributed)."""
    command = [sys.executable, "-m", "server", "index", str(corpus), "--index", str(workdir / "ray-index"),
               "--ray", address, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        return {"error": done.stderr.strip()[-500:]}
    return {"seconds": time.perf_counter() - started, "report": json.loads(done.stdout)}


def evaluate(retrieval: RetrievalSet, embedder: Embedder, ray: str | None) -> dict[str, Any]:
    cached = CachedEmbedder(embedder)
    keywords = load_keyword_tokenizer()
    vectors = embedder.embed([normalize_query(q) for _, q in retrieval.queries])
    out: dict[str, Any] = {"documents": len(retrieval.documents), "queries": len(retrieval.queries),
                           "backends": {}, "index": {}}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(retrieval, Path(tmp) / "corpus")
        uri = str(Path(tmp) / "milvus.db")
        targets: dict[str, IndexDirectory | MilvusIndex] = {
            "embedded": IndexDirectory(Path(tmp) / "index"), "milvus": MilvusIndex(uri, retrieval.name)}
        for name, target in targets.items():
            started = time.perf_counter()
            report = IndexBuilder(target, cached, keywords, BuildOptions()).build(corpus)  # type: ignore[arg-type]
            out["index"][name] = {"seconds": round(time.perf_counter() - started, 2), "chunks": report.chunks,
                                  "embed_seconds": round(report.embed_seconds, 2)}
            searcher = Searcher(target.current(), cached)  # type: ignore[arg-type]
            results = {}
            for mode in MODES:
                rankings, latencies = rank(searcher, retrieval, mode, vectors)
                results[mode] = {**metrics(rankings, retrieval),
                                 "p50_ms": float(np.percentile(latencies, 50)),
                                 "p99_ms": float(np.percentile(latencies, 99))}
            out["backends"][name] = results
            searcher.close()
        if ray:
            out["index"]["embedded, ray"] = time_ray_index(corpus, ray, Path(tmp))
        release(uri)
    quality = ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr@10")
    out["largest_difference"] = max(abs(out["backends"]["embedded"][m][q] - out["backends"]["milvus"][m][q])
                                    for m in MODES for q in quality)
    out["agree_within_0.01"] = round(out["largest_difference"], 9) <= AGREEMENT  # 5/500 is 0.01, not 0.0100…09
    return out


def print_table(name: str, result: dict[str, Any]) -> None:
    columns = ["ndcg@10", "recall@1", "recall@5", "recall@10", "p50_ms", "p99_ms"]
    print(f"\n{name}: {result['documents']} documents, {result['queries']} queries")
    print(f"{'':20}" + "".join(f"{c:>11}" for c in columns))
    for backend, modes in result["backends"].items():
        for mode, values in modes.items():
            print(f"{backend + ' ' + mode:20}" + "".join(f"{values[c]:>11.4f}" for c in columns))
    print(f"largest quality difference between backends: {result['largest_difference']:.4f} "
          f"({'agree' if result['agree_within_0.01'] else 'DISAGREE'} within {AGREEMENT})")
    for backend, figures in result["index"].items():
        print(f"index {backend}: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--backend", default=None, help="how the model runs (torch, onnx-int8, …)")
    parser.add_argument("--sets", default="scifact,jsquad")
    parser.add_argument("--jsquad-limit", type=int, default=500, help="sample this many JSQuAD questions")
    parser.add_argument("--scifact-limit", type=int, default=None, help="use only this many SciFact queries")
    parser.add_argument("--scifact-docs", type=int, default=None,
                        help="index only this many SciFact abstracts: every relevant one, then a random sample")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="also time `yomitoki index --ray ADDRESS` (needs indexer.build.distributed)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    embedder = load_embedder(args.model, runtime=args.backend)
    report: dict[str, Any] = {"model": embedder.describe()}
    for name in args.sets.split(","):
        if name == "scifact":
            retrieval = load_scifact(args.data)
            retrieval = sample_documents(retrieval, args.scifact_limit, args.scifact_docs)
        elif name == "jsquad":
            retrieval = load_jsquad(args.data, args.jsquad_limit)
        else:
            parser.error(f"unknown set {name!r}: use scifact, jsquad")
        report[name] = evaluate(retrieval, embedder, args.ray)
        print_table(name, report[name])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
