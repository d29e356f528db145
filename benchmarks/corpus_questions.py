"""Questions a user would ask of the default corpus, in their own words and in both languages.

    python benchmarks/corpus_questions.py [--model multilingual-e5-small] [--backend onnx-int8]

The public sets (JSQuAD, SQuAD, SciFact) ask in the words of the passage that
answers and in one language. `corpus_questions.jsonl` holds 132 questions about
the 44 articles of corpus/: for each article two in its language and one in the
other, written in the words a user would type without having read it
(「AIがそれっぽいでたらめな答えを作るのはなぜ？」 of the article on
ハルシネーション), each with the evidence: a phrase of the article that answers it. A question's article and,
where the corpus has one (`PAIRS`), the article on the same subject in the other
language are its right documents.

corpus/ is indexed with yomitoki's own builder, and each question goes through:

* **search** in each mode: the rank of the first right document among the
  documents found (each document once, by its best chunk): share first
  (recall@1), within 5, MRR@10;
* **`/ask`, extractive** (`Answerer`, the sentence reader): the share of
  questions answered at all (not refused as "not in the documents"), answered
  from a right document, answered with the sentence holding the evidence, and
  answered in the question's language.

`benchmarks/answering.py` asks the same questions with their right documents
left out, to calibrate the "not in the documents" threshold.

Rows are split by the question's language and whether it is the article's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.related import CORPUS, PAIRS  # noqa: E402
from indexer.build.builder import BuildOptions, IndexBuilder  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from server.answering.pipeline import Answerer, Question  # noqa: E402
from server.model_registry import ModelRegistry  # noqa: E402

QUESTIONS = Path(__file__).with_name("corpus_questions.jsonl")
HELD_OUT = Path(__file__).with_name("corpus_questions_heldout.jsonl")  # written apart, never tuned on
MODES = ("keyword", "dense", "hybrid")


@dataclass(frozen=True)
class CorpusQuestion:
    source: str       # the article's file name
    language: str     # the question's language
    question: str
    evidence: str     # a phrase of the article that answers it

    @property
    def right(self) -> set[str]:
        """The article and its counterpart in the other language, if the corpus has one."""
        stem = Path(self.source).stem
        return {self.source, *(f"{other}.md" for pair in PAIRS if stem in pair for other in pair)}

    @property
    def group(self) -> str:
        article = self.source[:2]
        return f"{self.language} question, {'same' if article == self.language else 'other'}-language article"


def load_questions(path: Path = QUESTIONS) -> list[CorpusQuestion]:
    return [CorpusQuestion(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def first_right_rank(searcher: Searcher, q: CorpusQuestion, mode: str) -> int | None:
    """0-based rank of the first right document among the documents found, None when absent."""
    sources = list(dict.fromkeys(hit.source for hit in searcher.search(q.question, mode=mode, k=100)))
    return next((rank for rank, source in enumerate(sources) if source in q.right), None)


OUTCOMES = ["answered", "right document", "evidence", "question's language"]


def answer_outcome(answerer: Answerer, q: CorpusQuestion) -> dict[str, bool]:
    response = answerer.answer(Question(q.question, mode="extractive"))
    cited = response.citations[0] if response.citations else None
    return {
        "answered": response.answer_found,
        "right document": bool(cited and cited.source in q.right),
        "evidence": bool(cited and cited.source == q.source and q.evidence in response.answer),
        "question's language": bool(cited and cited.source[:2] == q.language),
    }


def table(title: str, columns: list[str], rows: dict[str, list[float]], counts: dict[str, int]) -> None:
    print(f"\n{title}")
    print(f"{'':<48} {'n':>4} " + " ".join(f"{c:>14}" for c in columns))
    for name, values in rows.items():
        print(f"{name:<48} {counts[name]:>4} " + " ".join(f"{v:>14.3f}" for v in values))


def by_group(questions: list[CorpusQuestion]) -> dict[str, list[CorpusQuestion]]:
    groups: dict[str, list[CorpusQuestion]] = {"all": questions}
    for q in sorted(questions, key=lambda q: q.group):
        groups.setdefault(q.group, []).append(q)
    return groups


def search_rows(searcher: Searcher, groups: dict[str, list[CorpusQuestion]], mode: str) -> dict[str, list[float]]:
    """recall@1, recall@5 and MRR@10 of each group of questions."""
    ranks = {q: first_right_rank(searcher, q, mode) for q in groups["all"]}

    def row(qs: list[CorpusQuestion]) -> list[float]:
        found = [ranks[q] for q in qs]
        return [statistics.fmean(r == 0 for r in found),
                statistics.fmean(r is not None and r < 5 for r in found),
                statistics.fmean(1 / (r + 1) if r is not None and r < 10 else 0.0 for r in found)]
    return {name: row(qs) for name, qs in groups.items()}


def answer_rows(answerer: Answerer, groups: dict[str, list[CorpusQuestion]]) -> dict[str, list[float]]:
    """The share of each group's questions with each outcome of `answer_outcome`, in its order."""
    outcomes = {q: answer_outcome(answerer, q) for q in groups["all"]}
    return {name: [statistics.fmean(o) for o in zip(*(outcomes[q].values() for q in qs), strict=True)]
            for name, qs in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None, help="embedding runtime (torch, onnx-int8…)")
    parser.add_argument("--questions", type=Path, default=QUESTIONS,
                        help=f"the questions (default {QUESTIONS.name}; held out: {HELD_OUT.name})")
    args = parser.parse_args()
    questions = load_questions(args.questions)
    groups = by_group(questions)
    counts = {name: len(qs) for name, qs in groups.items()}

    with tempfile.TemporaryDirectory() as workdir:
        directory = IndexDirectory(Path(workdir) / "index")
        IndexBuilder(directory, load_embedder(args.model, runtime=args.backend, bulk=True),
                     load_keyword_tokenizer(), BuildOptions()).build(CORPUS)
        searcher = Searcher(directory.current(), load_embedder(args.model, runtime=args.backend))
        print(f"{args.model} ({args.backend or 'default backend'}): "
              f"{len(questions)} questions of {args.questions.name}")

        for mode in MODES:
            table(f"search, {mode}", ["recall@1", "recall@5", "MRR@10"], search_rows(searcher, groups, mode), counts)
        answerer = Answerer(lambda: nullcontext(searcher), ModelRegistry())
        table("/ask, extractive (the sentence reader)", OUTCOMES, answer_rows(answerer, groups), counts)
        searcher.close()


if __name__ == "__main__":
    main()
