"""Keyword scoring: FTS5's `bm25()` against the in-memory `KeywordMatrix`, on one index, in one run.

    yomitoki index ../shared/data/scifact --index /tmp/scifact-index     # any index will do
    python benchmarks/keyword_scoring.py --index /tmp/scifact-index

Runs each SciFact claim (or `--queries FILE`, JSON lines with "text") through
both scorers at depth 100 and prints the build time of the matrix, the median
time per query of each, the largest score difference and how many top-10
lists differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.store.bm25 import KeywordMatrix
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import Filters, SqliteStore
from indexer.text.keywords import load_keyword_tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, default=DATA / "scifact" / "queries.jsonl")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    generation = IndexDirectory(args.index).current()
    keywords = load_keyword_tokenizer(generation.manifest.keywords)
    weight = float(keywords.settings.get("grams_weight", 1.0))  # type: ignore[arg-type]
    store = SqliteStore(generation.store_path, readonly=True)
    began = time.perf_counter()
    matrix = KeywordMatrix.from_store(store)
    build = time.perf_counter() - began
    if matrix is None:
        sys.exit("the index is past the in-memory budget: FTS5 scores it")
    texts = [json.loads(line)["text"] for line in args.queries.open(encoding="utf-8")][: args.limit]
    fts5, memory, worst, differ = [], [], 0.0, 0
    for text in texts:
        words = list(dict.fromkeys(t.text for t in keywords.words(text)))
        grams = list(dict.fromkeys(t.text for t in keywords.grams(text)))
        match = keywords.match_query(text)
        if match is None:
            continue
        began = time.perf_counter()
        expected = store.keyword_search(match, 100, Filters(), weight)
        fts5.append(time.perf_counter() - began)
        began = time.perf_counter()
        got = matrix.search(words, grams, 100, weight) or []
        memory.append(time.perf_counter() - began)
        scores = dict(expected)
        worst = max([worst, *(abs(scores[i] - s) for i, s in got if i in scores)])
        differ += [i for i, _ in got[:10]] != [i for i, _ in expected[:10]]
    fts5_ms, memory_ms = statistics.median(fts5) * 1000, statistics.median(memory) * 1000
    print(f"{matrix.size:,} chunks; matrix built in {build:.2f} s")
    print(f"median per query over {len(fts5)} queries: FTS5 bm25() {fts5_ms:.2f} ms, in memory {memory_ms:.3f} ms "
          f"({fts5_ms / memory_ms:.0f}× faster)")
    print(f"largest score difference {worst:.2e}; top-10 lists that differ: {differ}")


if __name__ == "__main__":
    main()
