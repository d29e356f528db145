"""txtai on SciFact, run by benchmarks/performance.py inside a separate virtualenv that has txtai.

    /tmp/txtai-venv/bin/python benchmarks/txtai_peer.py MODEL_FOLDER DATA OUT.json

txtai is configured as its documentation shows for a local sentence-transformers
folder (`Embeddings(path=...)`, its defaults otherwise): documents are "title
text", queries are searched one at a time with `search(query, 10)`. Only the
rankings and timings are written; the parent computes nDCG@10 with the same
code as for yomitoki. This file imports nothing from yomitoki.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(model: str, data: str, out: str) -> None:
    import torch
    from txtai import Embeddings

    torch.set_num_threads(2)
    folder = Path(data) / "scifact"
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    relevant = {line.split("\t")[0] for line in list((folder / "qrels" / "test.tsv").open())[1:]}
    queries = [q for q in map(json.loads, (folder / "queries.jsonl").open(encoding="utf-8")) if q["_id"] in relevant]
    started = time.perf_counter()
    embeddings = Embeddings(path=model)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embeddings.index([(d["_id"], f"{d.get('title', '')} {d['text']}".strip(), None) for d in docs])
    index_seconds = time.perf_counter() - started
    for query in queries[:20]:  # warm-up, as for yomitoki
        embeddings.search(query["text"], 10)
    rankings, latencies = {}, []
    started = time.perf_counter()
    for query in queries:
        began = time.perf_counter()
        rankings[query["_id"]] = [str(uid) for uid, _ in embeddings.search(query["text"], 10)]
        latencies.append((time.perf_counter() - began) * 1000)
    search_seconds = time.perf_counter() - started
    from importlib.metadata import version

    Path(out).write_text(json.dumps({
        "txtai": version("txtai"), "torch": torch.__version__, "documents": len(docs),
        "load_seconds": load_seconds, "index_seconds": index_seconds, "search_seconds": search_seconds,
        "queries": len(queries), "latencies_ms": latencies, "rankings": rankings,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
