"""Documents like this one (`Searcher.related`, `GET /documents/{id}/related`) across languages.

    python benchmarks/related.py [--model multilingual-e5-small] [--backend onnx-int8]

The default corpus holds 15 pairs of articles on one subject, one Japanese and
one English (`PAIRS`). corpus/ is indexed with yomitoki's own builder, and
for each of the 30 articles the script asks for its related documents:

* **in the other language** (`language` filter): the rank of the counterpart
  among that language's 22 articles;
* **in any language** (no filter): the rank of the counterpart among the 43
  other articles.

It prints how often the counterpart comes first, within 3 and within 5, the
median rank, and the time of one `related` call beside a dense search for the
article's title on the same index in the same run (the baseline: a search
that embeds a query, where `related` reads stored vectors back).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.build.builder import BuildOptions, IndexBuilder, document_id  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.store.sqlite import Filters  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402

CORPUS = ROOT / "corpus"
# Every pair of default-corpus articles on one subject, English first (tests/test_e5.py reads them too).
PAIRS = [
    ("en-evaluation-metrics", "ja-evaluation-metrics"), ("en-extractive-qa", "ja-extractive-qa"),
    ("en-faiss-indexes", "ja-approximate-nearest-neighbor"), ("en-fine-tuning-vs-prompting", "ja-fine-tuning"),
    ("en-model-files-and-memory", "ja-model-memory-estimation"),
    ("en-named-entity-recognition", "ja-named-entity-recognition"), ("en-quantization", "ja-gguf-quantization"),
    ("en-reciprocal-rank-fusion", "ja-hybrid-search"),
    ("en-retrieval-augmented-generation", "ja-rag-hallucination-citations"),
    ("en-semantic-textual-similarity", "ja-semantic-similarity"), ("en-sentence-embeddings", "ja-embedding-vectors"),
    ("en-summarization", "ja-summarization"), ("en-text-classification", "ja-text-classification"),
    ("en-unicode-normalization-forms", "ja-unicode-nfkc"), ("en-zero-shot-and-few-shot", "ja-prompting-few-shot"),
]


def counterpart_ranks(searcher: Searcher, language_filter: bool) -> dict[str, int]:
    """Each article's counterpart's 0-based rank among its related documents."""
    ranks = {}
    for english, japanese in PAIRS:
        for source, target in ((english, japanese), (japanese, english)):
            filters = Filters(language=target[:2]) if language_filter else None
            hits = searcher.related(document_id(f"{source}.md"), k=50, filters=filters)
            stems = [Path(hit.source).stem for hit in hits]
            ranks[source] = stems.index(target) if target in stems else len(stems)
    return ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None, help="embedding runtime (torch, onnx-int8…)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the 30 articles")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        directory = IndexDirectory(Path(workdir) / "index")
        embedder = load_embedder(args.model, runtime=args.backend, bulk=True)
        IndexBuilder(directory, embedder, load_keyword_tokenizer(), BuildOptions()).build(CORPUS)
        searcher = Searcher(directory.current(), load_embedder(args.model, runtime=args.backend))
        print(f"{args.model} ({args.backend or 'default backend'}): {len(PAIRS)} pairs, {2 * len(PAIRS)} articles")
        print(f"{'related documents':<28} {'first':>6} {'top 3':>6} {'top 5':>6} {'median rank':>12}")
        for name, language_filter in (("in the other language", True), ("in any language", False)):
            ranks = list(counterpart_ranks(searcher, language_filter).values())
            print(f"{name:<28} {sum(r == 0 for r in ranks):>6} {sum(r < 3 for r in ranks):>6} "
                  f"{sum(r < 5 for r in ranks):>6} {statistics.median(ranks) + 1:>12}")

        sources = [source for pair in PAIRS for source in pair]
        titles = {s: searcher.document(document_id(f"{s}.md")).title for s in sources}  # type: ignore[union-attr]
        related_ms, search_ms = [], []
        for _ in range(args.repeat):
            for source in sources:
                started = time.perf_counter()
                searcher.related(document_id(f"{source}.md"), k=5)
                related_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                searcher.search(titles[source], mode="dense", k=5)
                search_ms.append((time.perf_counter() - started) * 1000)
        print(f"\nmedian ms per call over {len(related_ms)}: related {statistics.median(related_ms):.2f}, "
              f"dense search for the title (baseline) {statistics.median(search_ms):.2f}")
        searcher.close()


if __name__ == "__main__":
    main()
