"""Unfiltered search, this tree against an earlier one, in the same run.

    git archive BASE_COMMIT | tar -x -C /tmp/base
    python benchmarks/search_overhead.py --baseline-tree /tmp/base [--rounds 5] [--queries 200]

BASE_COMMIT for the filters, pages, facets, keys and compounds: a124b7f, main
just before they were merged (d25512d's first parent). Its `indexer` is flat;
the child imports either layout.

Builds the default corpus once (with this tree), then alternates rounds of
in-process searches — the same queries, modes and k — between a child process
importing this tree and one importing the baseline tree, so that both see the
same machine load. Prints per-mode p50 / p99 in ms of `Searcher.search`
(query embedding included) for each tree, and their ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["BM25 keyword search", "形態素解析とは", "hybrid search reciprocal rank fusion", "丸数字の正規化",
           "how do offsets survive normalization", "量子化でメモリを減らす", "二文", "what is a special token"]
MODES = ("dense", "keyword", "hybrid")


# (embedder loader, Searcher, IndexDirectory) in each layout of `indexer`: in sub-packages, and flat as it
# was before (the commits before the filters, the natural baseline, are flat)
LAYOUTS = [(("indexer.embed.loading", "load_manifest_embedder"), ("indexer.search.searcher", "Searcher"),
            ("indexer.store.generations", "IndexDirectory")),
           (("indexer.embedders", "load_manifest_embedder"), ("indexer.search", "Searcher"),
            ("indexer.generations", "IndexDirectory"))]


def tree_names() -> list[Any]:
    """The names a child needs, from whichever layout the tree on its path has."""
    for layout in LAYOUTS:
        try:
            return [getattr(importlib.import_module(module), name) for module, name in layout]
        except ImportError:
            continue
    raise ImportError(f"the tree on PYTHONPATH has none of the known layouts of indexer: {LAYOUTS}")


def child(index: str, count: int) -> None:
    """Run in a child: time `count` searches per mode, print JSON."""
    import numpy as np

    load_manifest_embedder, Searcher, IndexDirectory = tree_names()
    generation = IndexDirectory(Path(index)).current()
    searcher = Searcher(generation, load_manifest_embedder(generation.manifest.model))
    for query in QUERIES:  # warm caches and the model
        searcher.search(query, mode="hybrid", k=10)
    out = {}
    for mode in MODES:
        times = []
        for number in range(count):
            started = time.perf_counter()
            searcher.search(QUERIES[number % len(QUERIES)], mode=mode, k=10)
            times.append((time.perf_counter() - started) * 1000)
        out[mode] = times
    figures: dict[str, object] = {mode: [float(np.percentile(t, 50)), float(np.percentile(t, 99))]
                                  for mode, t in out.items()}
    figures["tree"] = str(Path(importlib.import_module("indexer").__file__ or "").parents[1])  # what was imported
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-tree", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200, help="searches per mode per round")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.queries)
        return
    sys.path.insert(0, str(ROOT))
    from indexer.build.builder import IndexBuilder
    from indexer.embed.loading import load_embedder
    from indexer.store.generations import IndexDirectory
    from indexer.text.keywords import load_keyword_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        IndexBuilder(IndexDirectory(Path(tmp)), load_embedder("all-minilm-l6-v2"),
                     load_keyword_tokenizer()).build(ROOT / "corpus")
        results: dict[str, list[dict[str, Any]]] = {"this": [], "baseline": []}
        for _ in range(args.rounds):
            for name, tree in (("this", ROOT), ("baseline", args.baseline_tree)):
                env = {**os.environ, "PYTHONPATH": str(tree)}
                done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--baseline-tree", "-",
                                       "--queries", str(args.queries), "--child", tmp],
                                      env=env, capture_output=True, text=True, check=True, cwd=tree)
                results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"this tree: {results['this'][0]['tree']}; baseline tree: {results['baseline'][0]['tree']}")
    print(f"load {os.getloadavg()}; median over {args.rounds} rounds of per-round p50 / p99 (ms)")
    print(f"{'mode':8}{'this p50':>10}{'base p50':>10}{'ratio':>8}{'this p99':>10}{'base p99':>10}")
    for mode in MODES:
        this = [sorted(r[mode][i] for r in results["this"])[args.rounds // 2] for i in (0, 1)]
        base = [sorted(r[mode][i] for r in results["baseline"])[args.rounds // 2] for i in (0, 1)]
        print(f"{mode:8}{this[0]:>10.2f}{base[0]:>10.2f}{this[0] / base[0]:>8.2f}{this[1]:>10.2f}{base[1]:>10.2f}")


if __name__ == "__main__":
    main()
