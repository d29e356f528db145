"""Compare the Japanese analysers behind yomitoki's keyword search on JSQuAD.

For SudachiPy (modes A and C) and fugashi + unidic-lite this measures:

a. analysis speed (``KeywordTokenizer.words``) in MB/s of UTF-8 over the JSQuAD
   paragraphs, median of 3 runs;
b. passage retrieval: an in-memory FTS5 table (``tokenize='ascii'``, columns
   ``words`` and ``grams``) over the 1,145 unique paragraphs of the JSQuAD
   validation file, every question run through ``match_query`` and ranked by
   ``bm25(fts, 1.0, G)``; recall@1/5/10 and MRR@10 of the paragraph the
   question was asked about;
c. words only vs words + grams, with a grams-only (character bigram) baseline
   measured in the same run.

Usage, from the repository root::

    python benchmarks/keyword_analysers.py [--data-dir ../shared/data] [--title]

By default the paragraph alone is indexed (the ``title [SEP]`` prefix removed);
``--title`` indexes ``title + paragraph``.  Data is read in place, never copied.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    from indexer.text.keywords import KeywordTokenizer, load_keyword_tokenizer
except ModuleNotFoundError:  # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from indexer.text.keywords import KeywordTokenizer, load_keyword_tokenizer

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
ANALYSERS: dict[str, dict[str, object]] = {
    "sudachi A": {"japanese": "sudachi", "sudachi_mode": "A", "dictionary": "core"},
    "sudachi C": {"japanese": "sudachi", "sudachi_mode": "C", "dictionary": "core"},
    "fugashi unidic-lite": {"japanese": "fugashi", "dictionary": "unidic-lite"},
}
PACKAGES = {
    "sudachi A": ("sudachipy", "sudachidict_core"),
    "sudachi C": ("sudachipy", "sudachidict_core"),
    "fugashi unidic-lite": ("fugashi", "unidic_lite"),
}
GRAM_WEIGHTS = (0.0, 0.3, 1.0)
TOP_K = 10


@dataclass(frozen=True)
class Dataset:
    """Unique paragraphs and the questions asked about them (gold = paragraph index)."""

    passages: list[str]
    questions: list[tuple[str, int]]


@dataclass(frozen=True)
class Scores:
    """Retrieval quality of one ranking over all questions."""

    recall_1: float
    recall_5: float
    recall_10: float
    mrr_10: float
    no_terms: int


def load_jsquad(path: Path, with_title: bool) -> Dataset:
    """Paragraphs (NFKC) and questions from a SQuAD-format JSQuAD file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    passages: list[str] = []
    index: dict[str, int] = {}
    questions: list[tuple[str, int]] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            if context not in index:
                index[context] = len(passages)
                passages.append(_passage_text(context, with_title))
            for qa in paragraph["qas"]:
                questions.append((_nfkc(qa["question"]), index[context]))
    return Dataset(passages, questions)


def _passage_text(context: str, with_title: bool) -> str:
    title, _, body = context.partition(" [SEP] ")
    return _nfkc(f"{title} {body}" if with_title else body)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def analysis_speeds(
    tokenizers: dict[str, KeywordTokenizer], passages: Sequence[str], runs: int = 3
) -> dict[str, float]:
    """Median MB/s (UTF-8) of ``words`` over ``passages`` per tokenizer; the runs take
    turns across tokenizers so that load from elsewhere on the machine hits all alike."""
    megabytes = sum(len(p.encode("utf-8")) for p in passages) / 1e6
    timings: dict[str, list[float]] = {label: [] for label in tokenizers}
    for tokenizer in tokenizers.values():
        tokenizer.words(passages[0])  # warm the per-thread analyser
    for _ in range(runs):
        for label, tokenizer in tokenizers.items():
            started = time.perf_counter()
            for passage in passages:
                tokenizer.words(passage)
            timings[label].append(time.perf_counter() - started)
    return {label: megabytes / statistics.median(t) for label, t in timings.items()}


def build_index(tokenizer: KeywordTokenizer, passages: Sequence[str]) -> sqlite3.Connection:
    """An in-memory FTS5 table with one row per passage (rowid = passage index)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(words, grams, tokenize='ascii')")
    db.executemany(
        "INSERT INTO fts(rowid, words, grams) VALUES (?, ?, ?)",
        ((i, *tokenizer.index_text(p)) for i, p in enumerate(passages)),
    )
    return db


def column_query(column: str, terms: Sequence[str]) -> str | None:
    """A MATCH expression OR-ing ``terms`` in one column (for the one-column rows)."""
    unique = list(dict.fromkeys(terms))
    if not unique:
        return None
    quoted = " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)
    return f"{{{column}}} : ({quoted})"


def evaluate(
    db: sqlite3.Connection,
    questions: Sequence[tuple[str, int]],
    to_match: Callable[[str], str | None],
    gram_weight: float,
) -> Scores:
    """Rank passages for every question by bm25 and score the gold passage."""
    sql = f"SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 1.0, ?) LIMIT {TOP_K}"
    ranks: list[int | None] = []
    no_terms = 0
    for question, gold in questions:
        expression = to_match(question)
        if expression is None:
            no_terms += 1
            ranks.append(None)
            continue
        rowids = [row[0] for row in db.execute(sql, (expression, gram_weight))]
        ranks.append(rowids.index(gold) + 1 if gold in rowids else None)
    return _scores(ranks, no_terms)


def _scores(ranks: Sequence[int | None], no_terms: int) -> Scores:
    total = len(ranks)

    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / total

    mrr = sum(1 / r for r in ranks if r is not None) / total
    return Scores(recall(1), recall(5), recall(10), mrr, no_terms)


def rankings(tokenizer: KeywordTokenizer) -> list[tuple[str, Callable[[str], str | None], float]]:
    """The rankings compared for one analyser: (label, query builder, grams weight)."""

    def words_only(text: str) -> str | None:
        return column_query("words", [t.text for t in tokenizer.words(text)])

    def grams_only(text: str) -> str | None:
        return column_query("grams", [t.text for t in tokenizer.grams(text)])

    rows: list[tuple[str, Callable[[str], str | None], float]] = [
        ("words only", words_only, 0.0),
        ("grams only (baseline)", grams_only, 1.0),
    ]
    rows += [(f"words+grams G={g}", tokenizer.match_query, g) for g in GRAM_WEIGHTS]
    return rows


def install_size_mb(modules: Sequence[str]) -> float:
    """Size on disk of the installed packages behind an analyser."""
    total = 0
    for name in modules:
        module = __import__(name)
        root = Path(module.__file__ or "").parent
        total += sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return total / 1e6


def run(data_dir: Path, with_title: bool) -> None:
    """Measure every analyser and print the tables."""
    dataset = load_jsquad(data_dir / "jsquad" / "valid-v1.3.json", with_title)
    megabytes = sum(len(p.encode("utf-8")) for p in dataset.passages) / 1e6
    indexed = "title + paragraph" if with_title else "paragraph only"
    print(
        f"JSQuAD valid v1.3: {len(dataset.passages)} paragraphs ({megabytes:.2f} MB, "
        f"{indexed}), {len(dataset.questions)} questions; FTS5 ascii, SQLite "
        f"{sqlite3.sqlite_version}\n"
    )
    tokenizers = {label: load_keyword_tokenizer(s) for label, s in ANALYSERS.items()}
    speeds = analysis_speeds(tokenizers, dataset.passages)
    speed_rows = [(label, speeds[label], install_size_mb(PACKAGES[label])) for label in tokenizers]
    quality_rows = []
    for label, tokenizer in tokenizers.items():
        db = build_index(tokenizer, dataset.passages)
        for ranking, to_match, weight in rankings(tokenizer):
            scores = evaluate(db, dataset.questions, to_match, weight)
            quality_rows.append((label, ranking, scores))
        db.close()
    _print_speed(speed_rows)
    _print_quality(quality_rows)


def _print_speed(rows: Sequence[tuple[str, float, float]]) -> None:
    print(f"{'analyser':<22} {'words() MB/s':>12} {'installed MB':>13}")
    for label, speed, size in rows:
        print(f"{label:<22} {speed:>12.2f} {size:>13.1f}")
    print()


def _print_quality(rows: Sequence[tuple[str, str, Scores]]) -> None:
    header = f"{'analyser':<22} {'ranking':<22} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}"
    print(header)
    print("-" * len(header))
    for label, ranking, s in rows:
        print(
            f"{label:<22} {ranking:<22} {s.recall_1:>6.3f} {s.recall_5:>6.3f} "
            f"{s.recall_10:>6.3f} {s.mrr_10:>7.3f}" + (f"  ({s.no_terms} no terms)" * bool(s.no_terms))
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"folder holding jsquad/valid-v1.3.json (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--title", action="store_true", help="index 'title paragraph' instead of the paragraph")
    args = parser.parse_args(argv)
    run(args.data_dir, args.title)


if __name__ == "__main__":
    main()
