"""yomitoki against txtai on SciFact, same model folder, same machine, for benchmarks/performance.py.

txtai runs from its own virtualenv (never a dependency of yomitoki): see
benchmarks/txtai_peer.py. yomitoki's figures come from the index the
indexing part built (`yomitoki index --backend onnx-int8`): its build time, and
hybrid and dense searches of the same 300 test claims in-process, one at a
time, each returning the 10 best distinct documents.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.retrieval import load_scifact, ndcg_at
from indexer.build.builder import document_id
from indexer.embed.locations import locate_embedder
from indexer.search.opening import open_index
from indexer.store.generations import IndexDirectory

HERE = Path(__file__).resolve().parent
MODEL = "all-minilm-l6-v2"


def run_txtai(python: Path, data: Path, workdir: Path) -> dict[str, Any]:
    out = workdir / "txtai.json"
    model = str(locate_embedder(MODEL).path)
    subprocess.run([str(python), str(HERE / "txtai_peer.py"), model, str(data), str(out)], check=True,
                   timeout=7200, env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                      "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    return json.loads(out.read_text())


def yomitoki_search(index: Path, data: Path, mode: str) -> dict[str, Any]:
    retrieval = load_scifact(data)
    searcher = open_index(index)
    ids = {document_id(str(d["id"])): d["id"] for d in retrieval.documents}
    try:
        for _, query in retrieval.queries[:20]:
            searcher.search(query, mode=mode, k=30)
        rankings, latencies = {}, []
        started = time.perf_counter()
        for qid, query in retrieval.queries:
            began = time.perf_counter()
            hits = searcher.search(query, mode=mode, k=30)
            rankings[qid] = list(dict.fromkeys(ids[h.doc_id] for h in hits))[:10]
            latencies.append((time.perf_counter() - began) * 1000)
        seconds = time.perf_counter() - started
    finally:
        searcher.close()
    return {"queries_per_s": len(rankings) / seconds, "median_ms": float(np.median(latencies)),
            "ndcg@10": _ndcg(rankings, retrieval.relevant)}


def _ndcg(rankings: dict[str, list[str]], relevant: dict[str, dict[str, int]]) -> float:
    return float(np.mean([ndcg_at(rankings.get(qid, []), grades) for qid, grades in relevant.items()]))


def measure_peer(python: Path, data: Path, workdir: Path, ours: dict[str, Any], serving: Path) -> dict[str, Any]:
    """`ours`: the indexing part's result (its builds); `serving`: the index the queries run on."""
    txtai = run_txtai(python, data, workdir)
    relevant = load_scifact(data).relevant
    build = ours["builds"][ours["fastest"]]
    peer = {"version": txtai["txtai"], "index_seconds": txtai["index_seconds"],
            "queries_per_s": txtai["queries"] / txtai["search_seconds"],
            "median_ms": float(np.median(txtai["latencies_ms"])), "ndcg@10": _ndcg(txtai["rankings"], relevant)}
    serving_backend = IndexDirectory(serving).current().manifest.model.backend
    mine = {"index_seconds": build["build_seconds"], "backend": ours["fastest"],
            "index_seconds_by_backend": {b: v["build_seconds"] for b, v in ours["builds"].items()},
            "query_backend": serving_backend,
            "hybrid": yomitoki_search(serving, data, "hybrid"),
            "dense": yomitoki_search(serving, data, "dense")}
    return {"txtai": peer, "yomitoki": mine, "documents": txtai["documents"],
            "index_speedup": peer["index_seconds"] / mine["index_seconds"],
            "query_speedup": mine["hybrid"]["queries_per_s"] / peer["queries_per_s"],
            "ndcg_difference": mine["hybrid"]["ndcg@10"] - peer["ndcg@10"]}
