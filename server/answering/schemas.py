"""Request and response bodies of `/ask` (the contract the web page is built against)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from server.answering.passages import Passage
from server.schemas import MAX_QUERY_CHARS, SearchFilters

AskMode = Literal["extractive", "generative", "auto"]
MAX_HISTORY_TURNS = 32
MAX_TURN_CHARS = 8000


class HistoryTurn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Literal["user", "assistant"]
    content: Annotated[str, Meta(max_length=MAX_TURN_CHARS, description="The turn's text, at most 8000 characters.")]


class AskRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    question: Annotated[str, Meta(min_length=1, max_length=MAX_QUERY_CHARS,
                                  description="The question, 1-2000 characters.")]
    mode: AskMode = "auto"
    k: Annotated[int, Meta(ge=1, le=20, description="Passages to retrieve, 1-20.")] = 5
    filters: SearchFilters | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=512, description="Most tokens to generate, 1-512.")] = 128
    stream: bool = False
    history: Annotated[list[HistoryTurn], Meta(max_length=MAX_HISTORY_TURNS, description=(
        "Earlier turns of the conversation, oldest first (at most 32); a follow-up question is "
        "rewritten into a standalone search query from them."))] = []


class AnswerSpan(msgspec.Struct, frozen=True):
    """Where an extracted answer sits: document.text[start:end] is the answer."""

    doc_id: str
    start: int
    end: int
    key: str = ""
    page: int | None = None       # the page of a paged document (PDF) the answer is on


class CitationOut(msgspec.Struct, frozen=True):
    """A passage shown to the reader: `text` is document.text[start:end]."""

    n: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    key: str = ""
    page: int | None = None       # first page of a paged document (PDF) the passage lies on
    pages: list[int] = []

    @classmethod
    def from_passage(cls, passage: Passage, n: int | None = None) -> CitationOut:
        hit = passage.hit
        return cls(n=passage.n if n is None else n, doc_id=hit.doc_id, title=hit.title, source=hit.source,
                   start=hit.start, end=hit.end, text=hit.text, score=hit.score, key=hit.key,
                   page=hit.page, pages=list(hit.pages))


class TokenUsage(msgspec.Struct, frozen=True):
    """The generation model's tokens for one answer, as it counted them (OpenAI's `usage`)."""

    prompt_tokens: int       # the question, its passages and the instructions
    completion_tokens: int   # the answer it wrote
    total_tokens: int


class AskResponse(msgspec.Struct, frozen=True):
    question: str
    mode: Literal["extractive", "generative"]
    reader: str                   # "sentence", "extractive-qa:<model>" or "generator:<model>"
    answer: str
    answer_found: bool
    answer_span: AnswerSpan | None
    citations: list[CitationOut]
    uncited: list[CitationOut]
    generation: str
    took_ms: float
    retrieval_ms: float
    search_query: str | None = None  # what a follow-up question was rewritten into for the search
    read_as: str | None = None       # the question as searched, when kana in it was read as the index's words
    truncated: bool = False          # the generator was still writing when it reached max_tokens
    usage: TokenUsage | None = None  # a generated answer's tokens, where the generation model counted them
