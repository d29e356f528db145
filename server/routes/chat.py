"""`POST /v1/chat/completions`: RAG answers in OpenAI's chat shape, streamed or not.

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x")
    client.chat.completions.create(model="yomitoki-rag", messages=[{"role": "user", "content": "…"}],
                                   extra_body={"yomitoki": {"k": 5}})

Errors carry OpenAI's `error` object beside the server's usual shape (see
embeddings.py), so the `openai` client raises with the message and parameter.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response.sse import ServerSentEventMessage

from server.access import scoped
from server.answering import Answerer
from server.answering.chat import (
    RAG_MODEL,
    ChatRequest,
    Completion,
    answer_usage,
    conversation,
    extension,
    rag_question,
    until_stop,
)
from server.answering.generators import TextGenerationLimits, TextGenerationOutcome, TextGenerator, token_usage
from server.answering.pipeline import AnswerSettings
from server.errors import EXCEPTION_HANDLERS, NotFoundError, client_status, log_internal
from server.routes.ask import EventStream, _answer, answerer, until_disconnect
from server.routes.embeddings import openai_error
from server.services import Services
from server.streaming import in_thread

log = logging.getLogger("yomitoki.server")


def served_models(services: Services) -> list[str]:
    """The chat models: the RAG model, and the generator by its configured name when there is one."""
    entry = services.models.entry("generator")
    return [RAG_MODEL, *([entry.name] if entry is not None else [])]


@post("/v1/chat/completions", status_code=200, summary="Chat completions, OpenAI-compatible: RAG answers",
      description="`model: yomitoki-rag` answers the last user turn from the documents with `[n]` "
                  "citations; the sources are in the `yomitoki` field (streamed: on the final chunk). "
                  "The generator's own name chats with it without retrieval.")
async def chat_completions(data: JSONBody[ChatRequest], services: NamedDependency[Services],
                           request: Request) -> Any:
    if data.model not in served_models(services):
        raise NotFoundError(f"model {data.model!r} is not served here; use one of: "
                            f"{', '.join(served_models(services))}")
    completion = Completion(data.model)
    if data.model == RAG_MODEL:
        rag = answerer(services)
        question = rag_question(data)
        question = dataclasses.replace(question, filters=scoped(question.filters, request))  # the key's documents
        if data.stream:
            return EventStream(_rag_chunks(rag, question, completion, data.wants_usage))
        response = await _answer(request, rag, question)
        return completion.body(response.answer, finish_reason(response.truncated), extension(response),
                               answer_usage(response))
    messages = conversation(data)
    generator: TextGenerator = await anyio.to_thread.run_sync(services.models.get, "generator")
    limits = TextGenerationLimits(data.token_limit, AnswerSettings().time_limit_s, data.temperature or 0.0)
    if data.stream:
        return EventStream(_direct_chunks(generator, messages, limits, completion, data.stops, data.wants_usage))
    outcome = TextGenerationOutcome()
    text = await until_disconnect(  # a client that goes away stops the model, as when streamed
        request, lambda cancel: "".join(until_stop(generator.stream(messages, limits, cancel, outcome), data.stops)))
    return completion.body(text, finish_reason(outcome.cut), None, token_usage(outcome))


def finish_reason(truncated: bool) -> str:
    """OpenAI's: "length" when the answer was cut at `max_tokens`, so a client knows there was more."""
    return "length" if truncated else "stop"


async def _rag_chunks(answerer: Answerer, question: Any, completion: Completion,
                      wants_usage: bool) -> AsyncIterator[Any]:
    cancel = threading.Event()
    yield _data(completion.chunk({"role": "assistant", "content": ""}))
    async with aclosing(in_thread(answerer.stream(question, cancel), cancel)) as events:
        async for event in events:
            if isinstance(event, Exception):
                yield _data(_error_chunk(event))
                return
            if event.response is None:
                yield _data(completion.chunk({"content": event.text}))
            else:
                yield _data(completion.chunk({}, finish_reason(event.response.truncated), extension(event.response)))
                if wants_usage:
                    yield _data(completion.usage_chunk(answer_usage(event.response)))
    yield _data(b"[DONE]")


async def _direct_chunks(generator: TextGenerator, messages: list[dict[str, str]], limits: TextGenerationLimits,
                         completion: Completion, stops: list[str], wants_usage: bool) -> AsyncIterator[Any]:
    cancel, outcome = threading.Event(), TextGenerationOutcome()
    yield _data(completion.chunk({"role": "assistant", "content": ""}))
    written = until_stop(generator.stream(messages, limits, cancel, outcome), stops)
    async with aclosing(in_thread(written, cancel)) as pieces:
        async for piece in pieces:
            if isinstance(piece, Exception):
                yield _data(_error_chunk(piece))
                return
            yield _data(completion.chunk({"content": piece}))
    yield _data(completion.chunk({}, finish_reason(outcome.cut)))
    if wants_usage:
        yield _data(completion.usage_chunk(token_usage(outcome)))
    yield _data(b"[DONE]")


def _error_chunk(exc: Exception) -> bytes:
    """OpenAI's error object, as a response that is not streamed carries it (`openai_error`), and the status."""
    status = client_status(exc)
    if status is None:
        request_id = log_internal(exc, "POST /v1/chat/completions (stream)")
        status, message = 500, f"internal server error (request id {request_id})"
    else:
        message = str(exc)
    error = {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
             "param": getattr(exc, "field", None), "code": None}
    return msgspec.json.encode({"error": error, "status_code": status})


def _data(payload: bytes) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=payload.decode())


router = Router(path="/", route_handlers=[chat_completions],
                exception_handlers=dict.fromkeys(EXCEPTION_HANDLERS, openai_error))
