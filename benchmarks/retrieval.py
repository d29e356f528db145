"""Retrieval quality: dense, keyword and hybrid search against a raw baseline.
  # noqa: E402
    python benchmarks/retrieval.py [--model all-minilm-l6-v2] [--sets scifact,jsquad] [--compounds]

`--compounds` also ranks keyword and hybrid search without the boost of
Japanese compounds the analyser splits (`Searcher.compound_boost`, on by
default), in the same run on the same index: the before and after of that boost.

Sets (read from ../shared/data, never copied into the repository):
- SciFact (BEIR): 5,183 abstracts, 300 test queries; nDCG@10 at document level.
- JSQuAD passages: the 1,145 unique paragraphs of JSQuAD v1.3 validation as
  documents, its 4,442 questions as queries, the paragraph each was asked
  about as the one relevant passage; recall@1/5/10 and MRR@10.

Each set is indexed with `yomitoki`'s own builder (chunking, NFKC, FTS5) and
searched in-process, beside a baseline computed in the same run: the same
model through plain `SentenceTransformer.encode` of "title text" (truncated at
the model's window, as MTEB does) and an exact FAISS inner-product index.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.build.builder import BuildOptions, IndexBuilder, document_id  # noqa: E402
from indexer.embed.base import Embedder, embed_for  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.text.chunking import ChunkSettings  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Ranker = Callable[[str, np.ndarray], list[str]]


@dataclass(frozen=True)
class RetrievalSet:
    name: str
    documents: list[dict[str, str]]   # {"id", "title", "text"}
    queries: list[tuple[str, str]]    # (query id, text)
    relevant: dict[str, dict[str, int]]  # query id -> {doc id: grade}


def load_scifact(data: Path) -> RetrievalSet:
    folder = data / "scifact"
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    documents = [{"id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in docs]
    relevant: dict[str, dict[str, int]] = {}
    for line in list((folder / "qrels" / "test.tsv").open(encoding="utf-8"))[1:]:
        qid, did, score = line.strip().split("\t")
        relevant.setdefault(qid, {})[did] = int(score)
    queries = [
        (q["_id"], q["text"])
        for q in map(json.loads, (folder / "queries.jsonl").open(encoding="utf-8"))
        if q["_id"] in relevant
    ]
    return RetrievalSet("scifact", documents, queries, relevant)


def load_jsquad(data: Path, limit: int | None = None) -> RetrievalSet:
    raw = json.loads((data / "jsquad" / "valid-v1.3.json").read_text(encoding="utf-8"))
    documents, queries, relevant, seen = [], [], {}, {}
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            title, _, text = paragraph["context"].partition(" [SEP] ")
            if paragraph["context"] not in seen:
                seen[paragraph["context"]] = f"p{len(seen)}"
                documents.append({"id": seen[paragraph["context"]], "title": title.strip(), "text": text.strip()})
            for qa in paragraph["qas"]:
                queries.append((qa["id"], qa["question"]))
                relevant[qa["id"]] = {seen[paragraph["context"]]: 1}
    if limit:
        queries = random.Random(0).sample(queries, min(limit, len(queries)))
    return RetrievalSet("jsquad", documents, queries, relevant)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(i + 2) for i, grade in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def metrics(rankings: list[list[str]], retrieval: RetrievalSet) -> dict[str, float]:
    rel = [retrieval.relevant[qid] for qid, _ in retrieval.queries]
    out = {"ndcg@10": float(np.mean([ndcg_at(r, g) for r, g in zip(rankings, rel, strict=True)]))}
    for k in (1, 5, 10):
        out[f"recall@{k}"] = float(np.mean([
            len(set(r[:k]) & set(g)) / len(g) for r, g in zip(rankings, rel, strict=True)
        ]))
    out["mrr@10"] = float(np.mean([
        next((1 / (i + 1) for i, d in enumerate(r[:10]) if d in g), 0.0)
        for r, g in zip(rankings, rel, strict=True)
    ]))
    return out


def baseline(retrieval: RetrievalSet, embedder: Embedder) -> tuple[list[list[str]], float]:
    """Raw sentence-transformers encode + exact FAISS: the reference for the dense figure."""
    started = time.perf_counter()
    texts = [f"{d['title']} {d['text']}".strip() for d in retrieval.documents]
    vectors = embed_for(embedder, texts, "passage")  # the model's prefixes (E5), as its card and MTEB do
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    queries = embed_for(embedder, [q for _, q in retrieval.queries], "query")
    _, ids = index.search(queries, 10)
    ids_of = [d["id"] for d in retrieval.documents]
    return [[ids_of[i] for i in row if i >= 0] for row in ids], time.perf_counter() - started


def build_index(retrieval: RetrievalSet, embedder: Embedder, workdir: Path,
                chunking: ChunkSettings | None = None) -> tuple[IndexDirectory, float]:
    corpus = workdir / "corpus"
    corpus.mkdir()
    with (corpus / f"{retrieval.name}.jsonl").open("w", encoding="utf-8") as handle:
        for doc in retrieval.documents:
            handle.write(json.dumps({"id": doc["id"], "title": doc["title"] or doc["text"][:80],
                                     "text": doc["text"]}, ensure_ascii=False) + "\n")
    directory = IndexDirectory(workdir / "index")
    started = time.perf_counter()
    options = BuildOptions() if chunking is None else BuildOptions(chunking=chunking)
    IndexBuilder(directory, embedder, load_keyword_tokenizer(), options).build(corpus)
    return directory, time.perf_counter() - started


def rank_documents(searcher: Searcher, retrieval: RetrievalSet, mode: str, vectors: np.ndarray) -> list[list[str]]:
    """Search each query and turn chunk hits into a ranking of distinct document ids."""
    ids = {document_id(str(d["id"])): d["id"] for d in retrieval.documents}
    rankings = []
    for (_, query), vector in zip(retrieval.queries, vectors, strict=True):
        hits = searcher.search(query, mode=mode, k=100, query_vector=vector)
        ranked: list[str] = []
        for hit in hits:
            doc = ids[hit.doc_id]
            if doc not in ranked:
                ranked.append(doc)
            if len(ranked) == 10:
                break
        rankings.append(ranked)
    return rankings


def evaluate(retrieval: RetrievalSet, model: str, compounds: bool = False,
             backend: str | None = None) -> dict[str, dict[str, float]]:
    embedder = load_embedder(model, runtime=backend)
    results: dict[str, dict[str, float]] = {}
    base, seconds = baseline(retrieval, embedder)
    results["baseline: raw encode + FAISS"] = {**metrics(base, retrieval), "seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp:
        directory, build_seconds = build_index(retrieval, embedder, Path(tmp))
        searcher = Searcher(directory.current(), embedder)
        vectors = embed_for(embedder, [normalize_query(q) for _, q in retrieval.queries], "query")
        for mode in ("dense", "keyword", "hybrid"):
            started = time.perf_counter()
            ranked = rank_documents(searcher, retrieval, mode, vectors)
            results[f"yomitoki {mode}"] = {**metrics(ranked, retrieval),
                                           "seconds": time.perf_counter() - started}
        if compounds:
            searcher.compound_boost = False
            for mode in ("keyword", "hybrid"):
                started = time.perf_counter()
                ranked = rank_documents(searcher, retrieval, mode, vectors)
                results[f"{mode}, no compound boost"] = {**metrics(ranked, retrieval),
                                                        "seconds": time.perf_counter() - started}
            searcher.compound_boost = True
        results["yomitoki index build"] = {"seconds": build_seconds,
                                           "chunks": float(searcher.vectors.size)}
        searcher.close()
    return results


def print_table(name: str, model: str, results: dict[str, dict[str, float]]) -> None:
    columns = ["ndcg@10", "recall@1", "recall@5", "recall@10", "mrr@10", "seconds"]
    print(f"\n{name} — model {model}")
    print(f"{'':32}" + "".join(f"{c:>11}" for c in columns))
    for row, values in results.items():
        print(f"{row:32}" + "".join(f"{values[c]:>11.4f}" if c in values else f"{'':>11}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", action="append", help="embedding model(s); default all-minilm-l6-v2")
    parser.add_argument("--sets", default="scifact,jsquad")
    parser.add_argument("--backend", default=None, help="how the model runs (torch, onnx-int8, ...); default its own")
    parser.add_argument("--jsquad-limit", type=int, default=None, help="sample this many JSQuAD questions")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--compounds", action="store_true",
                        help="also rank keyword and hybrid with the Japanese compound boost (before/after)")
    args = parser.parse_args()
    loaders = {"scifact": lambda: load_scifact(args.data), "jsquad": lambda: load_jsquad(args.data, args.jsquad_limit)}
    report: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for name in args.sets.split(","):
        retrieval = loaders[name]()
        for model in args.model or ["all-minilm-l6-v2"]:
            results = evaluate(retrieval, model, args.compounds, args.backend)
            report.setdefault(name, {})[model] = results
            print_table(f"{name}: {len(retrieval.documents)} documents, {len(retrieval.queries)} queries",
                        model, results)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
