"""Answering quality on SQuAD v1.1 dev, JSQuAD and questions on the default corpus, and /ask latency.

    python benchmarks/answering.py [--data ../shared/data] [--sets squad,jsquad,corpus] [--limit 300]
                                   [--model NAME] [--backend torch|onnx|onnx-int8]
                                   [--qa-model PATH_OR_HUB_ID] [--no-latency] [--threads 1]
                                   [--generator NAME [--generator-mode auto] [--generator-limit 40]]

For each set, every paragraph becomes a document (the articles split over two
files, `a.jsonl` and `b.jsonl`, by article) and is indexed with yomitoki's own
builder; the index is kept in --workdir, so a second run only re-reads it.
`--limit` questions are sampled with a fixed seed (default 300 per set, so the
whole run stays within about ten minutes on a shared 2-core machine). Each
question goes through the product's own pipeline (`Answerer.retrieve`: hybrid
search over all paragraphs, k=5, relevance scoring, packing, the reader):

- retrieval recall@1 and @k of the gold paragraph;
- sentence reader: share of questions whose returned sentence contains a gold
  answer, beside the naive baseline measured on the same passages (the first
  sentence of the top passage) and the ceiling (some packed sentence contains it);
- with --qa-model: exact match and F1 (SQuAD normalization; character F1 for
  JSQuAD, as JGLUE scores it), no-answer counted as an empty prediction;
- the "not in the documents" threshold: each question is asked twice, over all
  paragraphs (answerable) and restricted to the other half of the articles
  (`filters.source`), where its article is absent (unanswerable). The best
  passage's relevance separates the two; the script prints the threshold with
  the best balanced accuracy over the sets (each set's balanced accuracy
  averaged, so that each kind of question counts the same however many it
  has), the same pooled over all questions and over each language's sets, and
  how the configured `RELEVANCE_THRESHOLD` does.

The set `corpus` is the 132 questions of `corpus_questions.jsonl` (all of them;
`--limit` does not apply; `--questions corpus_questions_heldout.jsonl` asks the
132 written apart instead) over the default corpus: asked in the words a user
would type rather than the passage's, some about an article in the other
language (see benchmarks/corpus_questions.py), and counted as two sets, its
English and its Japanese questions. Its gold answer is the question's evidence
phrase, its right documents the article and its counterpart in the other
language, and a question is unanswerable with both left out (a `where` filter
on `source`).

With --generator (the bundled name, a .gguf file or openai:BASE_URL with
--generator-model), `--generator-limit` questions per set are also answered by
the generator through the pipeline: answer contains a gold answer, citation
precision, refusals when the article is left out, tokens/s, first-token and
total latency (see benchmarks/generative.py).

Latency: 100 questions (the corpus's section headings) through `POST /ask` in
extractive mode with the sentence reader (Litestar TestClient, the real app),
beside `POST /search` for the same questions as the baseline; median and p95,
and the share of /ask time spent in retrieval.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import string
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.corpus_questions import QUESTIONS, CorpusQuestion, load_questions  # noqa: E402
from benchmarks.generative import evaluate_generator, report_generator  # noqa: E402
from indexer.build.builder import BuildOptions, IndexBuilder, document_id  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER, Embedder  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.opening import open_index  # noqa: E402
from indexer.search.searcher import Hit, Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.store.sqlite import Filters  # noqa: E402
from indexer.store.where import parse  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from server.answering.loading import GeneratorOptions  # noqa: E402
from server.answering.pipeline import RELEVANCE_THRESHOLD, Answerer, Question  # noqa: E402
from server.answering.qa_reader import load_qa_reader  # noqa: E402
from server.answering.sentence_reader import first_sentence, sentence_candidates  # noqa: E402
from server.model_registry import ModelRegistry  # noqa: E402
from server.settings import parse_languages  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LANGUAGE_NAMES = {"en": "English", "ja": "Japanese"}


@dataclass(frozen=True)
class QASet:
    name: str
    language: str
    paragraphs: list[dict[str, str]]                   # id, title, text, file ("a.jsonl" / "b.jsonl")
    questions: list[tuple[str, str, str, list[str]]]   # (id, question, paragraph id, gold answers)


def load_qa_set(name: str, data: Path) -> QASet:
    path = data / ("squad-v1.1/dev-v1.1.json" if name == "squad" else "jsquad/valid-v1.3.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    paragraphs: list[dict[str, str]] = []
    questions = []
    seen: dict[str, str] = {}
    for number, article in enumerate(raw["data"]):
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            title, text = article.get("title", ""), context
            if name == "jsquad":
                title, _, text = context.partition(" [SEP] ")
            if context not in seen:
                seen[context] = f"p{len(seen)}"
                paragraphs.append({"id": seen[context], "title": title.replace("_", " ").strip(),
                                   "text": text.strip(), "file": "ab"[number % 2] + ".jsonl"})
            for qa in paragraph["qas"]:
                questions.append((qa["id"], qa["question"], seen[context], [a["text"] for a in qa["answers"]]))
    return QASet(name, "en" if name == "squad" else "ja", paragraphs, questions)


def build_index(qa: QASet, embedder: Embedder, workdir: Path) -> tuple[IndexDirectory, float]:
    """Index the paragraphs (incrementally: unchanged documents are not embedded again)."""
    corpus = workdir / qa.name / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for file in ("a.jsonl", "b.jsonl"):
        lines = [json.dumps({"id": p["id"], "title": p["title"], "text": p["text"]}, ensure_ascii=False)
                 for p in qa.paragraphs if p["file"] == file]
        (corpus / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    directory = IndexDirectory(workdir / qa.name / "index")
    started = time.perf_counter()
    IndexBuilder(directory, embedder, load_keyword_tokenizer(), BuildOptions()).build(corpus)
    return directory, time.perf_counter() - started


def build_corpus_index(embedder: Embedder, workdir: Path) -> tuple[IndexDirectory, float]:
    """Index the default corpus (incrementally, like the sets)."""
    directory = IndexDirectory(workdir / "corpus-index")
    started = time.perf_counter()
    IndexBuilder(directory, embedder, load_keyword_tokenizer(), BuildOptions()).build(ROOT / "corpus")
    return directory, time.perf_counter() - started


# ---- answer matching -------------------------------------------------------------------------

def squad_normalize(text: str) -> str:
    """The official SQuAD v1.1 answer normalization."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def japanese_normalize(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def contains_answer(text: str, answers: Sequence[str], language: str) -> bool:
    if language == "ja":
        return any(japanese_normalize(a) in japanese_normalize(text) for a in answers)
    return any(f" {squad_normalize(a)} " in f" {squad_normalize(text)} " for a in answers)


def f1_score(prediction: str, gold: str, language: str) -> float:
    if language == "ja":  # character F1, as JGLUE scores JSQuAD
        pred, truth = list(japanese_normalize(prediction)), list(japanese_normalize(gold))
    else:
        pred, truth = squad_normalize(prediction).split(), squad_normalize(gold).split()
    common = sum((Counter(pred) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str, language: str) -> float:
    norm = japanese_normalize if language == "ja" else squad_normalize
    return float(norm(prediction) == norm(gold))


# ---- evaluation --------------------------------------------------------------------------------

class PassagesOnly:
    """A reader that reads nothing: retrieval and packing only (for the threshold calibration)."""

    name = "none"

    def __init__(self, searcher: Searcher) -> None:
        self.count_tokens = searcher.embedder.count_tokens

    def read(self, profile: object, passages: object) -> None:
        return None


@dataclass
class Tally:
    language: str  # the questions' language
    recall1: list[float] = field(default_factory=list)
    recallk: list[float] = field(default_factory=list)
    sentence: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    ceiling: list[float] = field(default_factory=list)
    em: list[float] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    positives: list[float] = field(default_factory=list)  # best relevance, answer in the documents
    negatives: list[float] = field(default_factory=list)  # best relevance, article left out
    seconds: list[float] = field(default_factory=list)


def ask_twice(answerer: Answerer, searcher: Searcher, tally: Tally, text: str, k: int,
              right: Callable[[Hit], bool], answers: Sequence[str], language: str, elsewhere: Filters) -> None:
    """One question into the tally: retrieval (`right` says which hits are its answer's), the sentence
    reader beside its baseline and ceiling (`answers` as written in `language`), and the best relevance
    over all the documents and over the documents `elsewhere` admits, where the answer is not."""
    started = time.perf_counter()
    found = answerer.retrieve(Question(text, mode="extractive", k=k), None)
    tally.seconds.append(time.perf_counter() - started)
    hits = [p.hit for p in found.passages]
    tally.recall1.append(float(bool(hits) and right(hits[0])))
    tally.recallk.append(float(any(right(hit) for hit in hits)))
    answer = found.extraction.text if found.extraction else ""
    tally.sentence.append(float(contains_answer(answer, answers, language)))
    naive = first_sentence(found.passages)
    tally.baseline.append(float(naive is not None and contains_answer(naive.text, answers, language)))
    tally.ceiling.append(float(any(contains_answer(p.normalized.text[s:e], answers, language)
                                   for p, s, e in sentence_candidates(found.passages))))
    tally.positives.append(max((p.relevance for p in found.passages), default=0.0))
    absent = answerer.retrieve(Question(text, mode="extractive", k=k, filters=elsewhere), PassagesOnly(searcher))
    tally.negatives.append(max((p.relevance for p in absent.passages), default=0.0))


def evaluate(qa: QASet, searcher: Searcher, qa_model: str | None, limit: int, k: int, seed: int) -> Tally:
    registry = ModelRegistry()
    answerer = Answerer(lambda: nullcontext(searcher), registry)
    qa_reader = load_qa_reader(qa_model) if qa_model else None
    doc_of = {p["id"]: document_id(str(p["id"])) for p in qa.paragraphs}
    file_of = {p["id"]: p["file"] for p in qa.paragraphs}
    tally = Tally(language=qa.language)
    for _, text, pid, answers in random.Random(seed).sample(qa.questions, min(limit, len(qa.questions))):
        other = "b.jsonl" if file_of[pid] == "a.jsonl" else "a.jsonl"  # the half without its article
        ask_twice(answerer, searcher, tally, text, k, lambda hit, pid=pid: hit.doc_id == doc_of[pid],
                  answers, qa.language, Filters(source=other))
        if qa_reader is not None:
            read = answerer.retrieve(Question(text, mode="extractive", k=k), qa_reader).extraction
            prediction = read.text if read else ""
            tally.em.append(max(exact_match(prediction, a, qa.language) for a in answers))
            tally.f1.append(max(f1_score(prediction, a, qa.language) for a in answers))
    return tally


def evaluate_corpus(questions: Sequence[CorpusQuestion], searcher: Searcher, k: int) -> dict[str, Tally]:
    """The default corpus's questions through the same pipeline, a tally per question language; a question
    is unanswerable with its right articles left out."""
    answerer = Answerer(lambda: nullcontext(searcher), ModelRegistry())
    tallies: dict[str, Tally] = {}
    for q in questions:
        elsewhere = Filters(expression=parse({"not": {"field": "source", "in": sorted(q.right)}}))
        ask_twice(answerer, searcher, tallies.setdefault(q.language, Tally(language=q.language)), q.question, k,
                  lambda hit, q=q: hit.source in q.right, [q.evidence], q.source[:2], elsewhere)
    return dict(sorted(tallies.items()))


def best_threshold(positives: Sequence[float], negatives: Sequence[float]) -> tuple[float, float]:
    """The threshold with the best balanced accuracy, and that accuracy."""
    best = (0.0, 0.0)
    for candidate in sorted({round(x, 3) for x in [*positives, *negatives]}):
        accuracy = balanced_accuracy(positives, negatives, candidate)
        if accuracy > best[1]:
            best = (candidate, accuracy)
    return best


def balanced_accuracy(positives: Sequence[float], negatives: Sequence[float], threshold: float) -> float:
    kept = sum(p >= threshold for p in positives) / len(positives)
    refused = sum(n < threshold for n in negatives) / len(negatives)
    return (kept + refused) / 2


def best_over_sets(tallies: Sequence[Tally]) -> tuple[float, float]:
    """The threshold with the best balanced accuracy averaged over the sets, and that average."""
    candidates = sorted({round(x, 3) for t in tallies for x in [*t.positives, *t.negatives]})
    return max(((c, mean_over_sets(tallies, c)) for c in candidates), key=lambda pair: pair[1], default=(0.0, 0.0))


def mean_over_sets(tallies: Sequence[Tally], threshold: float) -> float:
    return statistics.fmean(balanced_accuracy(t.positives, t.negatives, threshold) for t in tallies)


def pct(values: Sequence[float]) -> str:
    return f"{100 * statistics.fmean(values):5.1f}%" if values else "    –"


def report(name: str, what: str, tally: Tally, k: int) -> None:
    print(f"\n{name}: {what}, retrieval k={k}, {1000 * statistics.median(tally.seconds):.0f} ms/question median")
    print(f"  retrieval recall@1 {pct(tally.recall1)}   recall@{k} {pct(tally.recallk)}")
    print(f"  answer sentence contains a gold answer: sentence reader {pct(tally.sentence)}   "
          f"baseline (first sentence of top passage) {pct(tally.baseline)}   "
          f"ceiling (any packed sentence) {pct(tally.ceiling)}")
    if tally.em:
        print(f"  QA model: exact match {pct(tally.em)}   F1 {pct(tally.f1)}")
    else:
        print("  QA model: none configured (--qa-model), so no exact match / F1")
    at = RELEVANCE_THRESHOLD
    print(f"  relevance threshold {at}: keeps {pct([p >= at for p in tally.positives])} of answerable, "
          f"refuses {pct([x < at for x in tally.negatives])} of unanswerable; best for this set: "
          "{:.3f} (balanced accuracy {:.1%})".format(*best_threshold(tally.positives, tally.negatives)))


# ---- latency -----------------------------------------------------------------------------------

def heading_questions(directory: IndexDirectory, count: int) -> list[str]:
    """Section headings of the default corpus, as questions (deterministic)."""
    searcher = open_index(directory.path)
    try:
        headings = sorted({c.section[-1] for c in searcher.store.iter_chunks() if c.section})
    finally:
        searcher.close()
    return [headings[i % len(headings)] for i in range(count)]


def latency(workdir: Path, embedder: Embedder, count: int = 100) -> None:
    from litestar.testing import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    directory, _ = build_corpus_index(embedder, workdir)
    questions = heading_questions(directory, count)
    ask, search, retrieval, found = [], [], [], 0
    settings = ServerSettings(index_dir=directory.path, generator=None, threads=1)
    with TestClient(create_app(settings)) as client:
        client.post("/ask", json={"question": "warm up", "mode": "extractive"})
        for question in questions:
            started = time.perf_counter()
            client.post("/search", json={"query": question, "mode": "hybrid", "k": 5}).raise_for_status()
            search.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            body = client.post("/ask", json={"question": question, "mode": "extractive", "k": 5}).json()
            ask.append(1000 * (time.perf_counter() - started))
            retrieval.append(body["retrieval_ms"])
            found += body["answer_found"]
    p95 = statistics.quantiles(ask, n=20)[-1]
    print(f"\n/ask latency, sentence reader, default corpus, {count} questions (section headings), k=5:")
    print(f"  /ask     median {statistics.median(ask):7.1f} ms   p95 {p95:7.1f} ms   "
          f"({found} answered, {count - found} 'not in the documents')")
    search_p95 = statistics.quantiles(search, n=20)[-1]
    print(f"  /search  median {statistics.median(search):7.1f} ms   p95 {search_p95:7.1f} ms   "
          "(baseline: retrieval alone, same questions)")
    print(f"  retrieval share of /ask time: {sum(retrieval) / sum(ask):.0%} overall, "
          f"median retrieval {statistics.median(retrieval):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", default="squad,jsquad,corpus")
    parser.add_argument("--limit", type=int, default=300, help="questions sampled per set")
    parser.add_argument("--questions", type=Path, default=QUESTIONS, help="the corpus set's questions (jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER, help="embedding model (default: the product's)")
    parser.add_argument("--backend", default=None, help="its runtime (torch, onnx, onnx-int8; default: the model's)")
    parser.add_argument("--qa-model", default=None, help="transformers QA model (path or hub id)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/yomitoki-bench-answering"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--generator", default=None, help="also answer with this generator")
    parser.add_argument("--generator-model", default=None, help="the upstream's model, for openai:BASE_URL")
    parser.add_argument("--generator-languages", default=None, help="e.g. ja,en")
    parser.add_argument("--generator-mode", default="auto", choices=["auto", "generative"])
    parser.add_argument("--generator-limit", type=int, default=40, help="questions per set for the generator")
    parser.add_argument("--generator-only", action="store_true", help="skip the extractive figures")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    embedder = load_embedder(args.model, runtime=args.backend)
    workdir = args.workdir / re.sub(r"[^\w.-]+", "-", f"{args.model}-{args.backend or 'default'}")  # an index per model
    tallies: list[Tally] = []
    for name in [s for s in args.sets.split(",") if s]:
        if name == "corpus":
            questions = load_questions(args.questions)
            directory, seconds = build_corpus_index(embedder, workdir)
            searcher = Searcher(directory.current(), embedder)
            for language, tally in evaluate_corpus(questions, searcher, args.k).items():
                tallies.append(tally)
                report(f"default corpus, questions in {LANGUAGE_NAMES[language]}",
                       f"44 articles indexed ({seconds:.0f}s), {len(tally.recall1)} of {args.questions.name}",
                       tally, args.k)
            searcher.close()
            continue
        qa = load_qa_set(name, args.data)
        directory, seconds = build_index(qa, embedder, workdir)
        searcher = Searcher(directory.current(), embedder)
        if args.generator:
            options = GeneratorOptions(
                model=args.generator_model, api_key=os.environ.get("YOMITOKI_GENERATOR_API_KEY"),
                languages=parse_languages(args.generator_languages) if args.generator_languages else None)
            generated = evaluate_generator(
                qa.questions, {p["id"]: p["file"] for p in qa.paragraphs}, searcher,
                lambda text, answers, language=qa.language: contains_answer(text, answers, language),
                args.generator, options, args.generator_mode, args.generator_limit, args.k, args.seed)
            report_generator(qa.name, args.generator, args.generator_mode, generated)
        if not args.generator_only:
            tally = evaluate(qa, searcher, args.qa_model, args.limit, args.k, args.seed)
            tallies.append(tally)
            report(qa.name, f"{len(qa.paragraphs)} paragraphs indexed ({seconds:.0f}s), {len(tally.recall1)} of "
                   f"{len(qa.questions)} questions (seed fixed)", tally, args.k)
        searcher.close()
    if tallies:
        threshold, accuracy = best_over_sets(tallies)
        print(f"\n'not in the documents' threshold over the sets (each set's balanced accuracy averaged): best "
              f"{threshold:.3f} ({accuracy:.1%}); configured {RELEVANCE_THRESHOLD} gives "
              f"{mean_over_sets(tallies, RELEVANCE_THRESHOLD):.1%}")
        positives = [x for t in tallies for x in t.positives]
        negatives = [x for t in tallies for x in t.negatives]
        threshold, accuracy = best_threshold(positives, negatives)
        print(f"pooled over all questions: best {threshold:.3f} ({accuracy:.1%}); configured "
              f"{RELEVANCE_THRESHOLD} gives {balanced_accuracy(positives, negatives, RELEVANCE_THRESHOLD):.1%}")
        for language, name in LANGUAGE_NAMES.items():
            if same := [t for t in tallies if t.language == language]:
                threshold, accuracy = best_over_sets(same)
                print(f"questions in {name} only ({len(same)} sets): best {threshold:.3f} ({accuracy:.1%}); "
                      f"configured {RELEVANCE_THRESHOLD} gives {mean_over_sets(same, RELEVANCE_THRESHOLD):.1%}")
    if not args.no_latency and not args.generator_only:
        latency(workdir, embedder)
    print(f"\n(total {time.perf_counter() - started:.0f}s, torch threads {args.threads})")


if __name__ == "__main__":
    main()
