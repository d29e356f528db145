"""Embedding speed per backend and batch size, and query-embedding cost alone and batched.
  # noqa: E402
    python benchmarks/batch_sizes.py [--docs 512] [--backends torch,torch-bf16,onnx,onnx-int8]

What `indexer.embed.base.BATCH_SIZES` is chosen from. The texts are SciFact
abstracts as "title text" (a fixed sample, cut at the model's window), the
baseline is plain `SentenceTransformer.encode` at its default batch of 32,
measured before and after the backends in the same run. Then, per backend,
the median time to embed one SciFact claim alone and the time per claim in a
batch of 32: what the server pays per query, with and without micro-batching.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, load_scifact  # noqa: E402
from indexer.embed.base import BATCH_SIZES  # noqa: E402
from indexer.embed.loading import load_embedder, native_bf16  # noqa: E402
from indexer.embed.locations import locate_embedder  # noqa: E402
from indexer.text.chunking import embedding_text  # noqa: E402

MODEL = "all-minilm-l6-v2"


def rate(embed: Callable[..., object], texts: list[str], batch_size: int) -> float:
    """Texts per second of `embed(texts, batch_size=...)`."""
    started = time.perf_counter()
    embed(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--backends", default="torch,torch-bf16,onnx,onnx-int8")
    parser.add_argument("--sizes", default="8,16,32,64")
    args = parser.parse_args()
    scifact = load_scifact(args.data)
    texts = [embedding_text(d["title"], d["text"]) for d in random.Random(7).sample(scifact.documents, args.docs)]
    claims = [q for _, q in scifact.queries]
    sizes = [int(s) for s in args.sizes.split(",")]
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(str(locate_embedder(MODEL).path), device="cpu")
    raw.encode(texts[:32])
    baseline = [rate(raw.encode, texts, 32)]
    rows = []
    for backend in args.backends.split(","):
        if backend == "torch-bf16" and not native_bf16():
            print(f"{backend}: skipped (this CPU has no native bfloat16)")
            continue
        embedder = load_embedder(MODEL, runtime=backend)
        embedder.embed(texts[:32])
        rates = {size: rate(embedder.embed, texts, size) for size in sizes}
        alone = []
        for claim in claims[:100]:
            started = time.perf_counter()
            embedder.embed([claim])
            alone.append((time.perf_counter() - started) * 1000)
        batched = 1000 / rate(embedder.embed, claims[:32], 32)
        rows.append((backend, rates, float(np.median(alone)), batched))
    baseline.append(rate(raw.encode, texts, 32))
    reference = float(np.mean(baseline))
    print(f"raw SentenceTransformer.encode, batch 32: {baseline[0]:.1f} and {baseline[1]:.1f} passages/s "
          f"(before and after; ratios below are against their mean, {reference:.1f})")
    print(f"{'backend':12s} " + " ".join(f"{'batch ' + str(s):>16s}" for s in sizes)
          + f" {'default':>8s} {'1 query':>9s} {'in 32':>8s}")
    for backend, rates, alone, batched in rows:
        cells = " ".join(f"{rates[s]:7.1f}/s {rates[s] / reference:5.2f}×" for s in sizes)
        print(f"{backend:12s} {cells} {BATCH_SIZES.get(backend, 32):8d} {alone:7.2f}ms {batched:6.2f}ms")


if __name__ == "__main__":
    main()
