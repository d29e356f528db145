"""Follow-up questions: retrieval recall@5 of the second turn, with and without rewriting.  # noqa: E402

    python benchmarks/followups.py [--data benchmarks/followups.jsonl] [--generator NAME] [-k 5]

`followups.jsonl` holds two-turn dialogues written from corpus/ (one per document,
in the document's language): a first question naming the topic, and a follow-up
that points back at it («それはいつ導入された？», "And its memory cost?"). The
default corpus is indexed with yomitoki's own builder (all-MiniLM-L6-v2, the
bundled model) and every follow-up is searched the way `/ask` searches (hybrid,
k=5), three ways:

- as asked (the baseline: what a RAG server without conversation support sees);
- rewritten by the rule (the previous question's key terms carried in front);
- with --generator, rewritten by that generator when it writes the question's
  language (the rule otherwise), as the server does.

A follow-up counts as found when its document is among the top k hits. The
first turns' recall is printed as the ceiling.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.build.builder import BuildOptions, IndexBuilder  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from server.answering.followups import Turn, rule_rewrite, standalone_query  # noqa: E402
from server.answering.loading import GeneratorOptions, load_any_generator  # noqa: E402

MODEL = "all-minilm-l6-v2"


def found(searcher: Searcher, query: str, source: str, k: int) -> bool:
    hits = searcher.search(query, mode="hybrid", k=k)
    return any(Path(hit.source).name == source for hit in hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "followups.jsonl")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--generator", default=None, help="also rewrite with this generator (e.g. smollm2)")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    dialogues = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = load_embedder(MODEL)
    keywords = load_keyword_tokenizer()
    generator = load_any_generator(args.generator, GeneratorOptions()) if args.generator else None
    with tempfile.TemporaryDirectory() as workdir:
        directory = IndexDirectory(Path(workdir))
        IndexBuilder(directory, embedder, keywords, BuildOptions()).build(args.corpus)
        searcher = Searcher(directory.current(), embedder)
        columns = ["first turn", "follow-up as asked", "rule rewrite", *(["generator rewrite"] if generator else [])]
        tally: dict[str, dict[str, list[bool]]] = {lang: {c: [] for c in columns} for lang in ("en", "ja", "all")}
        for d in dialogues:
            language = "ja" if d["source"].startswith("ja-") else "en"
            history = [Turn("user", d["first"])]
            queries = {"first turn": d["first"], "follow-up as asked": d["follow_up"],
                       "rule rewrite": rule_rewrite(d["follow_up"], history, keywords) or d["follow_up"]}
            if generator is not None:
                queries["generator rewrite"] = standalone_query(d["follow_up"], history, keywords, generator) \
                    or d["follow_up"]
            for column, query in queries.items():
                hit = found(searcher, query, d["source"], args.k)
                tally[language][column].append(hit)
                tally["all"][column].append(hit)
            if generator is not None:
                print(f"  {d['follow_up']!r} → {queries['generator rewrite']!r}", file=sys.stderr)
        searcher.close()

    print(f"\nFollow-up retrieval, recall@{args.k} of the dialogue's document ({len(dialogues)} dialogues, "
          f"{MODEL}, hybrid search)\n")
    print(f"| set | n | {' | '.join(columns)} |")
    print(f"|---|---|{'---|' * len(columns)}")
    for language, row in tally.items():
        n = len(row["first turn"])
        cells = " | ".join(f"{sum(v) / n:.3f}" for v in row.values())
        print(f"| {language} | {n} | {cells} |")
    overall = tally["all"]
    gain = (sum(overall["rule rewrite"]) - sum(overall["follow-up as asked"])) / len(overall["first turn"])
    print(f"\nrule rewrite − as asked: {gain:+.3f} (target ≥ +0.15)")


if __name__ == "__main__":
    main()
