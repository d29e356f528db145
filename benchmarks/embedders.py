"""The bundled embedding models side by side: quality per language and passages/s.

    python benchmarks/embedders.py [--docs 1500] [--queries 500]

Dense retrieval only (raw model + exact FAISS), on the same texts for every
model in one run:
- Japanese: JSQuAD v1.3 validation paragraphs ("title text") as documents,
  a fixed sample of its questions; recall@1/10 of the paragraph asked about.
- English: SciFact test queries over a sub-corpus of their relevant abstracts
  plus a fixed random sample of the others; nDCG@10.
Throughput is passages/s embedding those same documents, this machine, this run.
This is what `yomitoki index` uses to choose a model when none is named
(see indexer/selection.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import faiss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, RetrievalSet, load_jsquad, load_scifact, metrics  # noqa: E402
from indexer.embedders import load_embedder  # noqa: E402
from indexer.normalize import normalize_query  # noqa: E402

MODELS = ("all-minilm-l6-v2", "use-multilingual-v3")


def subset(retrieval: RetrievalSet, docs: int, queries: int) -> RetrievalSet:
    rng = random.Random(0)
    chosen = rng.sample(retrieval.queries, min(queries, len(retrieval.queries)))
    needed = {d for qid, _ in chosen for d in retrieval.relevant[qid]}
    others = [d for d in retrieval.documents if d["id"] not in needed]
    keep = needed | {d["id"] for d in rng.sample(others, max(0, min(len(others), docs - len(needed))))}
    documents = [d for d in retrieval.documents if d["id"] in keep]
    return RetrievalSet(retrieval.name, documents, chosen, retrieval.relevant)


def dense_eval(retrieval: RetrievalSet, model: str) -> dict[str, float]:
    embedder = load_embedder(model)
    texts = [normalize_query(f"{d['title']} {d['text']}") for d in retrieval.documents]
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    seconds = time.perf_counter() - started
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, rows = index.search(embedder.embed([normalize_query(q) for _, q in retrieval.queries]), 10)
    ids = [d["id"] for d in retrieval.documents]
    result = metrics([[ids[i] for i in row if i >= 0] for row in rows], retrieval)
    return {**result, "passages/s": len(texts) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    sets = {
        "jsquad (ja)": subset(load_jsquad(args.data), args.docs, args.queries),
        "scifact (en)": subset(load_scifact(args.data), args.docs, args.queries),
    }
    columns = ("ndcg@10", "recall@1", "recall@10", "passages/s")
    for name, retrieval in sets.items():
        print(f"\n{name}: {len(retrieval.documents)} documents, {len(retrieval.queries)} queries", flush=True)
        print(f"{'model':24}" + "".join(f"{c:>12}" for c in columns), flush=True)
        for model in MODELS:
            row = dense_eval(retrieval, model)
            print(f"{model:24}" + "".join(f"{row[c]:>12.4f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
