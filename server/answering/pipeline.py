"""Answering a question: retrieve → pack → read or (build_prompt → generate) → cite.

`Answerer.stream` yields the answer as it is produced (`token` events, then one
`done` event with the full response); `Answerer.answer` returns the response.
Both the server and `yomitoki ask` use it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from indexer.search.rerank import DEFAULT_DEPTH, Reranking
from indexer.search.searcher import Searcher
from indexer.store.sqlite import Filters
from indexer.text.language import detect_language
from indexer.text.normalize import normalize_query
from server.answering.followups import Turn, standalone_query
from server.answering.generators import TextGenerationLimits, TextGenerationOutcome, TextGenerator, token_usage
from server.answering.packing import pack_passages
from server.answering.passages import Extraction, Passage
from server.answering.prompting import CitationFilter, build_prompt, cited_numbers
from server.answering.relevance import QuestionProfile, RelevanceScorer
from server.answering.repetition import loops
from server.answering.schemas import AnswerSpan, AskResponse, CitationOut
from server.answering.sentence_reader import SentenceReader, code_blocks
from server.errors import UnavailableError, UpstreamError
from server.model_registry import ModelRegistry
from server.nlp.loading import configured_reranking

log = logging.getLogger("yomitoki.answering")

# Below this relevance of the best passage, the documents are taken not to hold the answer.
# Calibrated with `benchmarks/answering.py` on SQuAD v1.1 dev, JSQuAD and the default corpus's
# questions in a user's own words (`benchmarks/corpus_questions.jsonl`, English and Japanese
# counted apart): each question is asked over all the documents and again with its article left
# out, where it has no answer; the best balanced accuracy averaged over the four sets lies at
# 0.383 under multilingual-e5-small and 0.395 under all-MiniLM-L6-v2, and at 0.399 and 0.375 on
# questions written apart (`corpus_questions_heldout.jsonl`). SQuAD and JSQuAD alone gave 0.43,
# which refused half of the corpus's answerable questions. See the README's /ask section.
RELEVANCE_THRESHOLD = 0.40
NOT_FOUND = {
    "en": "The documents do not contain an answer to this question.",
    "ja": "文書の中に、この質問の答えは見つかりませんでした。",
}
PASSAGE_FRAMING_TOKENS = 16  # "[n] title: " and the blank line around each passage in the prompt


@dataclass(frozen=True)
class AnswerSettings:
    relevance_threshold: float = RELEVANCE_THRESHOLD
    reader_tokens: int = 2048   # passages an extractive reader reads, in its own tokens
    prompt_tokens: int = 512    # passages in the generator's prompt, in its tokens (bounds CPU time)
    time_limit_s: float = 60.0  # per generation, waiting for the model included
    rerank_depth: int = DEFAULT_DEPTH  # candidates a configured reranker ("reranker" model) reads


@dataclass(frozen=True)
class Question:
    text: str
    mode: str = "auto"          # "extractive", "generative" or "auto"
    k: int = 5
    filters: Filters = field(default_factory=Filters)
    max_tokens: int = 128
    history: tuple[Turn, ...] = ()  # earlier turns of the conversation, oldest first
    temperature: float = 0.0
    as_asked: str = ""  # the question in the user's words, where `text` is a follow-up rewritten for search

    @property
    def own_words(self) -> str:
        return self.as_asked or self.text

    @property
    def earlier_question(self) -> str:
        """The previous user turn, which a rewritten follow-up points back at ('' when not rewritten)."""
        if not self.as_asked:
            return ""
        return next((t.content for t in reversed(self.history) if t.role == "user" and t.content.strip()), "")


@dataclass(frozen=True)
class AnswerEvent:
    kind: str                   # "token" or "done"
    text: str = ""
    response: AskResponse | None = None


class Reader(Protocol):
    """An extractive reader: the QA model or the sentence reader."""

    name: str

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def read(self, profile: QuestionProfile, passages: Sequence[Passage]) -> Extraction | None: ...


@dataclass
class Retrieval:
    """What retrieval found for a question: packed passages, and a reader's extraction from them."""

    index_generation: str       # the index generation searched (the response's `generation`)
    passages: list[Passage]
    retrieval_ms: float
    extraction: Extraction | None = None
    read_as: str | None = None  # the question with its kana read as the index's words, when that changed it


class Answerer:
    def __init__(self, lease: Callable[[], AbstractContextManager[Searcher]], models: ModelRegistry,
                 settings: AnswerSettings | None = None) -> None:
        self.lease, self.models = lease, models
        self.settings = settings or AnswerSettings()

    def answer(self, question: Question, cancel: threading.Event | None = None) -> AskResponse:
        """The whole answer. In `auto` mode an upstream generator that fails even after it began writing
        (nothing has reached the client yet) leaves the question to be answered extractively."""
        try:
            for event in self.stream(question, cancel):
                if event.response is not None:
                    return event.response
        except UpstreamError as exc:
            if question.mode != "auto":
                raise
            log.warning("generator failed while writing, answering extractively: %s", exc)
            return self.answer(dataclasses.replace(question, mode="extractive"), cancel)
        raise RuntimeError("the answer stream ended without a response")

    def stream(self, question: Question,
               cancel: threading.Event | None = None) -> Generator[AnswerEvent, None, None]:
        started = time.perf_counter()
        mode, model = self.resolve(question.mode, detect_language(question.text))
        query = self.search_query(question, model if mode == "generative" else None)
        asked = dataclasses.replace(question, text=query, as_asked=question.text) if query else question
        for event in self._answer(asked, mode, model, cancel or threading.Event(), started):
            if event.response is not None:
                event = AnswerEvent("done", response=msgspec.structs.replace(
                    event.response, question=question.text, search_query=query))
            yield event

    def search_query(self, question: Question, generator: TextGenerator | None) -> str | None:
        """The standalone query a follow-up question is rewritten into (None: it stands alone)."""
        if not question.history:
            return None
        with self.lease() as searcher:
            keywords = searcher.keywords
        query = standalone_query(question.text, question.history, keywords, generator)
        if query:
            log.info("follow-up rewritten for search: %r", query)
        return query

    def _answer(self, question: Question, mode: str, model: Any, cancel: threading.Event,
                started: float) -> Iterator[AnswerEvent]:
        if mode == "generative":
            yield from self._generate(question, model, cancel, started)
            return
        yield from self._extract(question, model, started)

    def _extract(self, question: Question, model: Reader | None, started: float) -> Iterator[AnswerEvent]:
        found = self.retrieve(question, model)
        extraction = found.extraction if found.passages and self._relevant(found.passages) else None
        response = self._extractive_response(question, model.name if model else SentenceReader.name,
                                             found, extraction, started)
        if response.answer:
            yield AnswerEvent("token", text=response.answer)
        yield AnswerEvent("done", response=response)

    def resolve(self, mode: str, language: str) -> tuple[str, Any]:
        """The mode actually used and its model (None: the sentence reader). `auto` generates only
        when the generator is set to answer the question's language (known from its configuration,
        so a generator `auto` will not use is never loaded); an explicit `generative` always does."""
        entry = self.models.entry("generator")
        if mode == "generative" or (mode == "auto" and entry is not None
                                    and language in entry.facts.get("languages", (language,))):
            try:
                generator = self.models.get("generator")
                if mode == "generative" or language in generator.languages:
                    return "generative", generator
            except UnavailableError:
                if mode == "generative":
                    raise
        if self.models.has("qa"):
            try:
                return "extractive", self.models.get("qa")
            except UnavailableError:
                if mode == "extractive":
                    raise
        return "extractive", None

    def _reranking(self) -> Reranking | None:
        """The configured reranker, loaded on first use (one that cannot load is a 503 naming it)."""
        return configured_reranking(self.models, self.settings.rerank_depth)

    def _relevant(self, passages: Sequence[Passage]) -> bool:
        return max(p.relevance for p in passages) >= self.settings.relevance_threshold

    def retrieve(self, question: Question, reader: Reader | None,
                  generator: TextGenerator | None = None) -> Retrieval:
        """Search, score and pack for a generator or a reader (None: the sentence reader); run the reader."""
        with self.lease() as searcher:
            started = time.perf_counter()
            scorer = RelevanceScorer(searcher, scope=question.filters.statistics)
            profile = scorer.profile(question.text)  # embeds the question once, for search as well
            hits = searcher.search(profile.text, mode="hybrid", k=question.k, filters=question.filters,
                                   query_vector=profile.vector, reranking=self._reranking())
            retrieval_ms = (time.perf_counter() - started) * 1000
            read_as = profile.text if profile.text != normalize_query(question.text).strip() else None
            relevance = scorer.passages(profile, hits)
            if generator is not None:
                room = generator.context_window - question.max_tokens - 256  # instructions, question
                budget = max(64, min(self.settings.prompt_tokens, room))
                passages = pack_passages(hits, relevance, generator.count_tokens, budget,
                                         overhead=PASSAGE_FRAMING_TOKENS)
                return Retrieval(searcher.generation.name, passages, round(retrieval_ms, 3), read_as=read_as)
            reader = reader or SentenceReader(scorer)
            passages = with_code_blocks(searcher, pack_passages(hits, relevance, reader.count_tokens,
                                                                self.settings.reader_tokens))
            found = Retrieval(searcher.generation.name, passages, round(retrieval_ms, 3), read_as=read_as)
            if passages:
                found.extraction = reader.read(profile, passages)
            return found

    def _extractive_response(self, question: Question, reader: str, found: Retrieval,
                             extraction: Extraction | None, started: float) -> AskResponse:
        if extraction is None:
            return self._not_found(question, "extractive", reader, found, started)
        others = [p for p in found.passages if p is not extraction.passage]
        return AskResponse(
            question=question.text, mode="extractive", reader=reader, answer=extraction.text,
            answer_found=True,
            answer_span=AnswerSpan(doc_id=extraction.passage.hit.doc_id, start=extraction.start,
                                   end=extraction.end, key=extraction.passage.hit.key,
                                   page=extraction.passage.hit.page_at(extraction.start, extraction.end)),
            citations=[CitationOut.from_passage(extraction.passage, n=1)],
            uncited=[CitationOut.from_passage(p, n=i) for i, p in enumerate(others, 2)],
            generation=found.index_generation, took_ms=_ms(started), retrieval_ms=found.retrieval_ms,
            read_as=found.read_as,
        )

    def _not_found(self, question: Question, mode: str, reader: str, found: Retrieval,
                   started: float) -> AskResponse:
        return AskResponse(
            question=question.text, mode=mode, reader=reader,  # type: ignore[arg-type]
            answer=NOT_FOUND[detect_language(question.own_words)], answer_found=False, answer_span=None,
            citations=[], uncited=[CitationOut.from_passage(p) for p in found.passages],
            generation=found.index_generation, took_ms=_ms(started), retrieval_ms=found.retrieval_ms,
            read_as=found.read_as,
        )

    def _generate(self, question: Question, generator: TextGenerator, cancel: threading.Event,
                  started: float) -> Iterator[AnswerEvent]:
        reader = f"generator:{generator.name}"
        found = self.retrieve(question, None, generator)
        if not found.passages or not self._relevant(found.passages):
            response = self._not_found(question, "generative", reader, found, started)
            yield AnswerEvent("token", text=response.answer)
            yield AnswerEvent("done", response=response)
            return
        limits = TextGenerationLimits(max_new_tokens=question.max_tokens, time_limit_s=self.settings.time_limit_s,
                                  temperature=question.temperature)
        outcome = TextGenerationOutcome()
        citations = CitationFilter(len(found.passages))
        pieces: list[str] = []
        written = ""  # the pieces so far, joined
        prompt = build_prompt(question.own_words, found.passages, question.earlier_question)
        writing = generator.stream(prompt, limits, cancel, outcome)
        try:
            for piece in writing:
                text = citations.feed(piece)
                if not pieces:  # the answer starts at its first non-blank piece
                    text = text.lstrip()
                if text:
                    pieces.append(text)
                    written += text
                    yield AnswerEvent("token", text=text)
                    if loops(written):  # the rest would be more of the same, up to max_tokens
                        writing.close()  # stops the model
                        outcome.stop = "repetition"
                        break
        except UpstreamError as exc:
            if question.mode != "auto" or pieces:
                raise
            log.warning("generator unavailable, answering extractively: %s", exc)
            qa = self.models.get("qa") if self.models.has("qa") else None
            yield from self._extract(question, qa, started)
            return
        if tail := citations.flush():
            pieces.append(tail)
            yield AnswerEvent("token", text=tail)
        log.info("generated %d tokens (%s) in %.0f ms", outcome.tokens, outcome.stop, _ms(started))
        yield AnswerEvent("done", response=self._generated_response(question, reader, found, "".join(pieces).strip(),
                                                                    started, outcome))

    def _generated_response(self, question: Question, reader: str, found: Retrieval, answer: str,
                            started: float, outcome: TextGenerationOutcome) -> AskResponse:
        cited = set(cited_numbers(answer))
        return AskResponse(
            question=question.text, mode="generative", reader=reader, answer=answer,
            answer_found=bool(answer), answer_span=None,
            citations=[CitationOut.from_passage(p) for p in found.passages if p.n in cited],
            uncited=[CitationOut.from_passage(p) for p in found.passages if p.n not in cited],
            generation=found.index_generation, took_ms=_ms(started), retrieval_ms=found.retrieval_ms,
            read_as=found.read_as, truncated=outcome.cut, usage=token_usage(outcome),
        )


def with_code_blocks(searcher: Searcher, passages: list[Passage]) -> list[Passage]:
    """The passages, each knowing where its document's code blocks are (no answers come from code)."""
    blocks: dict[str, tuple[tuple[int, int], ...]] = {}
    for doc_id in {p.hit.doc_id for p in passages}:
        document = searcher.document(doc_id)
        blocks[doc_id] = code_blocks(document.text) if document is not None and "```" in document.text else ()
    return [dataclasses.replace(p, code=blocks[p.hit.doc_id]) if blocks[p.hit.doc_id] else p for p in passages]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)

