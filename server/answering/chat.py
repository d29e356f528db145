"""`/v1/chat/completions` bodies and the mapping between them and the answering pipeline.

The RAG model (`yomitoki-rag`) answers the last user turn from the documents,
the earlier turns being the conversation a follow-up is read against; the
configured generator's own name chats with the generator directly, without
retrieval (what another server uses when yomitoki is its upstream). yomitoki's
additions ride in one `yomitoki` field each way: search options in the request,
the passages behind the answer (and the rewritten search query) in the response.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from indexer.store.sqlite import Filters
from indexer.text.normalize import normalize_query
from server.answering.followups import Turn
from server.answering.pipeline import Question
from server.answering.schemas import (
    MAX_HISTORY_TURNS,
    MAX_TURN_CHARS,
    AskMode,
    AskResponse,
    CitationOut,
    TokenUsage,
)
from server.nlp.errors import TaskInputError
from server.schemas import MAX_QUERY_CHARS, SearchFilters

RAG_MODEL = "yomitoki-rag"
MAX_MESSAGES = 2 * MAX_HISTORY_TURNS + 2          # the history, a system message and the question
MAX_CONVERSATION_CHARS = 64_000                    # all messages together


TEXT_PARTS = ("text", "input_text")  # content parts that are read; an image, audio or file part is refused


class ContentPart(msgspec.Struct, frozen=True):
    type: Annotated[str, Meta(max_length=64)]
    text: Annotated[str, Meta(max_length=MAX_TURN_CHARS)] | None = None


ContentParts = Annotated[list[ContentPart], Meta(max_length=64)]


class ChatMessage(msgspec.Struct, frozen=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str, Meta(max_length=MAX_TURN_CHARS)] | ContentParts | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text or "" for part in self.content if part.type in TEXT_PARTS)
        return self.content or ""


class ChatOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `yomitoki` extension of a request: how to search and answer."""

    k: Annotated[int, Meta(ge=1, le=20, description="Passages to retrieve, 1-20.")] = 5
    filters: SearchFilters | None = None
    mode: AskMode = "auto"


class StreamOptions(msgspec.Struct, frozen=True):  # unknown fields are ignored, as in the request
    include_usage: bool | None = None  # a last chunk, with no choices, carries the tokens' `usage`


class ChatRequest(msgspec.Struct, frozen=True):  # unknown fields are ignored: OpenAI clients send extras
    model: Annotated[str, Meta(min_length=1, max_length=500)]
    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool | None = False     # null, as OpenAI's schema allows, is false
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=512)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1, le=512)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    # Stop sequences: the generator's own model stops before the first one it writes. Up to 4, as OpenAI's.
    stop: Annotated[str, Meta(min_length=1, max_length=256)] | Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=256)]], Meta(max_length=4)] | None = None
    # Asked of OpenAI's API but not done here: refused unless they ask for what is done anyway
    # (`refuse_what_is_not_done`).
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    response_format: dict[str, Any] | None = None
    tool_choice: Annotated[str, Meta(max_length=64)] | dict[str, Any] | None = None
    yomitoki: ChatOptions | None = None

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def refuse_what_is_not_done(self) -> None:
        """A 400 naming the first field that asks for what this server cannot give."""
        if self.n not in (None, 1):
            raise TaskInputError("n", "one choice is answered per request: leave out n or send 1")
        if self.logprobs or self.top_logprobs:
            raise TaskInputError("logprobs", "log probabilities are not returned here")
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            raise TaskInputError("response_format", f"answers are text; {kind!r} is not produced here")
        if self.tool_choice not in (None, "none", "auto"):
            raise TaskInputError("tool_choice", "no tool is ever called here: send 'none' or 'auto', or leave it out")
        for i, message in enumerate(self.messages):
            for j, part in enumerate(message.content if isinstance(message.content, list) else ()):
                if part.type not in TEXT_PARTS:
                    raise TaskInputError(f"messages[{i}].content[{j}].type",
                                         f"only text parts are read; a {part.type!r} part cannot be")

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def token_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 128


class ChatSource(msgspec.Struct, frozen=True):
    """A passage shown to the reader or generator; `[n]` in the answer refers to `n`."""

    n: int
    cited: bool
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    key: str = ""                 # the document's own key (a JSON-lines id, a file's path, an uploaded key)
    page: int | None = None       # first page of a paged document (PDF) the passage lies on


class ChatExtension(msgspec.Struct, frozen=True):
    """The `yomitoki` extension of a response (in a stream, on the final chunk)."""

    mode: str
    reader: str
    answer_found: bool
    search_query: str | None
    sources: list[ChatSource]


def conversation(request: ChatRequest) -> list[dict[str, str]]:
    """The messages as plain role/content pairs, bounded in size, with a user turn to answer."""
    request.refuse_what_is_not_done()
    messages = [{"role": m.role, "content": m.text} for m in request.messages]
    if sum(len(m["content"]) for m in messages) > MAX_CONVERSATION_CHARS:
        raise TaskInputError("messages", f"the conversation is longer than {MAX_CONVERSATION_CHARS} characters; "
                                         "send fewer or shorter earlier turns")
    last_user_turn(messages)
    return messages


def last_user_turn(messages: list[dict[str, str]]) -> int:
    """The index of the last user message, which must say something."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        raise TaskInputError("messages", "no message has role 'user': there is no question to answer")
    if not normalize_query(messages[last]["content"]).strip():
        raise TaskInputError(f"messages[{last}].content", "the question is empty (once normalized)")
    return last


def until_stop(pieces: Generator[str, None, None], stops: Sequence[str]) -> Iterator[str]:
    """The generator's text up to the first stop sequence, which is left out; the generator stops there.

    Text that could be the start of a stop sequence is held back until it is known not to be one.
    """
    with contextlib.closing(pieces):  # closing it stops the model
        if not stops:
            yield from pieces
            return
        held, longest = "", max(map(len, stops))
        for piece in pieces:
            held += piece
            found = [at for at in (held.find(stop) for stop in stops) if at >= 0]
            if found:
                if min(found):
                    yield held[: min(found)]
                return
            if len(held) >= longest:
                yield held[: len(held) - longest + 1]
                held = held[len(held) - longest + 1 :]
        if held:
            yield held


def rag_question(request: ChatRequest) -> Question:
    """The last user turn as a question, the turns before it as its history."""
    if request.stops:
        raise TaskInputError("stop", f"{RAG_MODEL} answers from the documents and is not cut at stop sequences; "
                                     "they apply to the generator's own model")
    messages = conversation(request)
    last = last_user_turn(messages)
    text = messages[last]["content"].strip()
    if len(text) > MAX_QUERY_CHARS:
        raise TaskInputError(f"messages[{last}].content", f"the question is longer than {MAX_QUERY_CHARS} characters")
    history = tuple(Turn(m["role"], m["content"]) for m in messages[:last] if m["role"] in ("user", "assistant"))
    if len(history) > MAX_HISTORY_TURNS:
        raise TaskInputError("messages", f"{len(history)} earlier turns; at most {MAX_HISTORY_TURNS} are read")
    options = request.yomitoki or ChatOptions()
    return Question(text=text, mode=options.mode, k=options.k,
                    filters=options.filters.to_filters() if options.filters else Filters(),
                    max_tokens=request.token_limit, history=history, temperature=request.temperature or 0.0)


def answer_usage(response: AskResponse) -> TokenUsage | None:
    """A RAG answer's tokens: the generation model's; none at all for an answer no model wrote."""
    if response.usage is not None or response.reader.startswith("generator:"):
        return response.usage  # None where the generator did not count them
    return NO_TOKENS


NO_TOKENS = TokenUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)


def extension(response: AskResponse) -> ChatExtension:
    cited = {c.n for c in response.citations} if response.mode == "generative" else {1} if response.citations else set()
    shown = sorted([*response.citations, *response.uncited], key=lambda c: c.n)
    return ChatExtension(mode=response.mode, reader=response.reader, answer_found=response.answer_found,
                         search_query=response.search_query,
                         sources=[_source(c, c.n in cited) for c in shown])


def _source(c: CitationOut, cited: bool) -> ChatSource:
    return ChatSource(n=c.n, cited=cited, doc_id=c.doc_id, title=c.title, source=c.source, start=c.start,
                      end=c.end, text=c.text, score=c.score, key=c.key, page=c.page)


class Completion:
    """One chat completion's id, time and model, and its bodies and stream chunks."""

    def __init__(self, model: str) -> None:
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model

    def body(self, content: str, finish: str, ext: ChatExtension | None,
             usage: TokenUsage | None) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}]}
        if usage is not None:
            body["usage"] = usage
        if ext is not None:
            body["yomitoki"] = ext
        return body

    def usage_chunk(self, usage: TokenUsage | None) -> bytes:
        """The last chunk when `stream_options.include_usage` is set: no choices, the tokens (null if unknown)."""
        return msgspec.json.encode({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                    "model": self.model, "choices": [], "usage": usage})

    def chunk(self, delta: dict[str, str], finish: str | None = None,
              ext: ChatExtension | None = None) -> bytes:
        chunk: dict[str, object] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if ext is not None:
            chunk["yomitoki"] = ext
        return msgspec.json.encode(chunk)
