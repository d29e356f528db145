"""Generated answers on a QA set, through the product's pipeline (`Answerer.stream`), for
`benchmarks/answering.py --generator NAME`.

Each sampled question is asked twice: over all paragraphs (its article is there)
and restricted to the other half of the articles (left out: the right answer is a
refusal). Reported per set:

- answer contains a gold answer (answerable questions; SQuAD or JSQuAD normalization);
- citation precision: share of the cited passages that contain a gold answer;
- refusals: of the left-out questions (wanted) and of the answerable ones (unwanted);
- which mode answered (`auto` answers extractively in a language the generator is not set to
  answer; the bundled SmolLM2 is set to none, so measure it with `--generator-mode generative`);
- tokens/s of the writing (answer tokens by the generator's tokenizer over the time after the
  first token), time to the first token and total time, median and p95.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from indexer.search.searcher import Searcher
from indexer.store.sqlite import Filters
from server.answering.loading import GeneratorOptions, register_models
from server.answering.pipeline import Answerer, Question
from server.answering.schemas import AskResponse
from server.model_registry import ModelRegistry


@dataclass
class GenerativeTally:
    contains: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    refused_absent: list[float] = field(default_factory=list)
    refused_present: list[float] = field(default_factory=list)
    first_token_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    modes: Counter[str] = field(default_factory=Counter)


def timed_answer(answerer: Answerer, question: Question) -> tuple[AskResponse, float, float]:
    """The response, the time to its first text and the total time."""
    started, first = time.perf_counter(), None
    for event in answerer.stream(question, threading.Event()):
        if event.response is not None:
            total = time.perf_counter() - started
            return event.response, (first if first is not None else total), total
        if event.text and first is None:
            first = time.perf_counter() - started
    raise RuntimeError("the answer stream ended without a response")


def evaluate_generator(questions: Sequence[tuple[str, str, str, list[str]]], file_of: dict[str, str],
                       searcher: Searcher, contains: Callable[[str, Sequence[str]], bool], generator: str,
                       options: GeneratorOptions, mode: str, limit: int, k: int, seed: int) -> GenerativeTally:
    registry = ModelRegistry()
    register_models(registry, None, generator, options)
    answerer = Answerer(lambda: nullcontext(searcher), registry)
    count_tokens = registry.get("generator").count_tokens
    tally = GenerativeTally()
    for _, text, pid, answers in random.Random(seed).sample(list(questions), min(limit, len(questions))):
        response, first, total = timed_answer(answerer, Question(text, mode=mode, k=k, max_tokens=64))
        tally.modes[response.mode] += 1
        tally.refused_present.append(float(not response.answer_found))
        if response.answer_found:
            tally.contains.append(float(contains(response.answer, answers)))
            tally.precision.extend(float(contains(c.text, answers)) for c in response.citations)
            tally.first_token_s.append(first)
            tally.total_s.append(total)
            if response.mode == "generative" and total > first:
                tally.tokens_per_s.append(count_tokens([response.answer])[0] / (total - first))
        other = "b.jsonl" if file_of[pid] == "a.jsonl" else "a.jsonl"
        absent, _, _ = timed_answer(answerer, Question(text, mode=mode, k=k, max_tokens=64,
                                                       filters=Filters(source=other)))
        tally.refused_absent.append(float(not absent.answer_found))
    return tally


def _p(values: Sequence[float], q: float) -> str:
    if not values:
        return "–"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]:.2f}"


def _share(values: Sequence[float]) -> str:
    return f"{100 * statistics.fmean(values):.1f}%" if values else "–"


def report_generator(name: str, generator: str, mode: str, tally: GenerativeTally) -> None:
    n = len(tally.refused_present)
    print(f"\n{name}, generator {generator} ({mode} mode), {n} questions, max 64 tokens:")
    print(f"  answered by: {dict(tally.modes)}")
    print(f"  answer contains a gold answer: {_share(tally.contains)} of answered   "
          f"citation precision: {_share(tally.precision)} of {len(tally.precision)} cited passages")
    print(f"  refusals: {_share(tally.refused_absent)} of questions whose article is left out (wanted), "
          f"{_share(tally.refused_present)} of answerable ones (unwanted)")
    print(f"  tokens/s median {_p(tally.tokens_per_s, 0.5)}   first token s p50 {_p(tally.first_token_s, 0.5)} "
          f"p95 {_p(tally.first_token_s, 0.95)}   total s p50 {_p(tally.total_s, 0.5)} p95 {_p(tally.total_s, 0.95)}")
