"""Fusing documents instead of chunks, against the product's chunk fusion, on held-out queries.

    python benchmarks/fusion_documents.py --sets scifact,squad,jsquad [--model multilingual-e5-small]
                                          [--backend torch] [--workdir ~/.cache/yomitoki/bench/fusion]

Hybrid search fuses the dense and keyword lists chunk by chunk (z-scores, the
model's recorded share), and a document ranks by its best fused chunk. A
document split into chunks can have its best dense chunk and its best keyword
chunk apart, each taking the other list's floor. Two variants without a
parameter to tune, on the lists `fusion_runs.py` keeps:

- documents: each list reduced to each document's best chunk, z-scored over
  documents, then fused;
- sibling fill: a chunk missing from a list takes its document's best z-score
  in that list instead of the floor.

Printed: each rule's main metric (nDCG@10 for SciFact, recall@1 for the QA
sets) on the held-out queries of `fusion_rules.py`'s split, and each variant's
difference to chunk fusion with its bootstrap standard error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_rules import CHOSEN_BY, LANGUAGE, splits, standard_error  # noqa: E402
from benchmarks.fusion_runs import WORKDIR, QueryRun, Runs, runs_for  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, metrics  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402
from indexer.search.fusion import FusionSettings, _zscored, fuse  # noqa: E402
from indexer.store.manifest import FusionEntry  # noqa: E402

Ranker = Callable[[QueryRun], list[str]]


def chunk_fusion(runs: Runs, settings: FusionSettings) -> Ranker:
    def rank(q: QueryRun) -> list[str]:
        fused = fuse(q.dense, q.keyword, settings.dense_weight(q.coverage, q.language), settings)
        return list(dict.fromkeys(runs.documents[cid] for cid, _ in fused))
    return rank


def best_per_document(runs: Runs, ranked: Sequence[tuple[int, float]]) -> list[tuple[str, float]]:
    best: dict[str, float] = {}
    for cid, score in ranked:
        best.setdefault(runs.documents[cid], score)
    return list(best.items())


def document_fusion(runs: Runs, settings: FusionSettings) -> Ranker:
    def rank(q: QueryRun) -> list[str]:
        dense, keyword = best_per_document(runs, q.dense), best_per_document(runs, q.keyword)
        share = settings.dense_weight(q.coverage, q.language)
        if not keyword or share <= 0:
            return [doc for doc, _ in (keyword if keyword else dense)]
        zd, zk = dict(_zscored(dense, settings.candidates)), dict(_zscored(keyword, settings.candidates))
        floor_d, floor_k = min(zd.values()), min(zk.values())
        scores = {doc: share * zd.get(doc, floor_d) + (1 - share) * zk.get(doc, floor_k)
                  for doc in dict.fromkeys([*zk, *zd])}
        return sorted(scores, key=lambda doc: -scores[doc])
    return rank


def sibling_fill(runs: Runs, settings: FusionSettings) -> Ranker:
    def rank(q: QueryRun) -> list[str]:
        share = settings.dense_weight(q.coverage, q.language)
        if not q.keyword or share <= 0:
            return chunk_fusion(runs, settings)(q)
        zd, zk = dict(_zscored(q.dense, settings.candidates)), dict(_zscored(q.keyword, settings.candidates))
        best_d = dict(best_per_document(runs, list(zd.items())))
        best_k = dict(best_per_document(runs, list(zk.items())))
        floor_d, floor_k = min(zd.values()), min(zk.values())
        scores = {}
        for cid in dict.fromkeys([*zk, *zd]):
            doc = runs.documents[cid]
            scores[cid] = (share * zd.get(cid, best_d.get(doc, floor_d))
                           + (1 - share) * zk.get(cid, best_k.get(doc, floor_k)))
        return list(dict.fromkeys(runs.documents[cid] for cid in sorted(scores, key=lambda c: -scores[c])))
    return rank


def per_query(runs: Runs, queries: Sequence[QueryRun], rank: Ranker, metric: str) -> np.ndarray:
    return np.array([metrics([rank(q)[:10]], RetrievalSet(runs.name, [], [(q.qid, "")], runs.relevant))[metric]
                     for q in queries])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None, help="how the model runs; default its own (torch)")
    parser.add_argument("--sets", default="scifact,squad,jsquad", help="of jsquad, scifact, squad")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    for name in args.sets.split(","):
        runs = runs_for(name, args.model, args.backend, args.data, args.workdir)
        settings = FusionSettings.from_entry(msgspec.convert(runs.fusion, FusionEntry))  # as the index records
        _, held_out = splits(runs)
        metric = CHOSEN_BY[LANGUAGE[name]][0]
        base = per_query(runs, held_out, chunk_fusion(runs, settings), metric)
        chunks = len(runs.documents) / len(set(runs.documents.values()))
        print(f"{name} ({runs.model['name']}, {runs.model['backend']}): {len(held_out)} held-out queries, "
              f"{chunks:.2f} chunks a document; {metric}: chunk fusion {base.mean():.4f}")
        for label, make in (("documents", document_fusion), ("sibling fill", sibling_fill)):
            values = per_query(runs, held_out, make(runs, settings), metric)
            print(f"  {label:13} {values.mean():.4f}   minus chunk fusion {(values - base).mean():+.4f} "
                  f"± {standard_error(values - base):.4f}")


if __name__ == "__main__":
    main()
