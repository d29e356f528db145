"""`POST /ask`: an answer from the documents, with citations; streamed over SSE on request."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec
from litestar import Request, Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from indexer.store.sqlite import Filters
from indexer.text.normalize import normalize_query
from server.access import scoped
from server.answering import Answerer, Question
from server.answering.followups import Turn
from server.answering.pipeline import AnswerEvent, AnswerSettings
from server.answering.schemas import AskRequest, AskResponse
from server.errors import client_status, log_internal
from server.nlp.errors import TaskInputError
from server.services import Services
from server.streaming import in_thread

T = TypeVar("T")


def _question(data: AskRequest) -> Question:
    if not normalize_query(data.question).strip():
        raise TaskInputError("question", "is empty once normalized (only whitespace or control characters)")
    filters = data.filters.to_filters() if data.filters else Filters()
    history = tuple(Turn(t.role, t.content) for t in data.history)
    return Question(text=data.question, mode=data.mode, k=data.k, filters=filters, max_tokens=data.max_tokens,
                    history=history)


def answerer(services: Services) -> Answerer:
    """The answering pipeline over the served index and the configured models."""
    return Answerer(services.index.lease, services.models,
                    AnswerSettings(rerank_depth=services.settings.rerank_depth))


async def _until_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set `cancel` when the client goes away (the request body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


async def _answer(request: Request, answerer: Answerer, question: Question) -> AskResponse:
    """The whole answer; a client that disconnects meanwhile stops its generation."""
    return await until_disconnect(request, lambda cancel: answerer.answer(question, cancel))


async def until_disconnect(request: Request, work: Callable[[threading.Event], T]) -> T:
    """`work(cancel)` run in a worker thread, with `cancel` set if the client goes away meanwhile."""
    cancel = threading.Event()
    outcome: list[T | Exception] = []

    async def run() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(work, cancel))
        except Exception as exc:  # re-raised below, outside the task group, for the error handlers
            outcome.append(exc)
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await _until_disconnect(request, cancel)
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


class EventStream(ServerSentEvent):
    """Server-sent events that keep their media type in a handler that otherwise answers JSON."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)


def _error_event(exc: Exception) -> ServerSentEventMessage:
    status = client_status(exc)
    if status is None:
        request_id = log_internal(exc, "POST /ask (stream)")
        status, detail = 500, f"internal server error (request id {request_id})"
    else:
        detail = str(exc)
    return ServerSentEventMessage(event="error", data=msgspec.json.encode(
        {"status_code": status, "detail": detail}).decode())


def _message(event: AnswerEvent) -> ServerSentEventMessage:
    if event.response is not None:
        return ServerSentEventMessage(event="done", data=msgspec.json.encode(event.response).decode())
    return ServerSentEventMessage(event="token", data=msgspec.json.encode({"text": event.text}).decode())


async def answer_events(answerer: Answerer, question: Question,
                        cancel: threading.Event) -> AsyncIterator[ServerSentEventMessage]:
    """The answer as server-sent events; leaving early (a disconnect) stops the generation."""
    async with aclosing(in_thread(answerer.stream(question, cancel), cancel)) as events:
        async for event in events:
            yield _error_event(event) if isinstance(event, Exception) else _message(event)


@post("/ask", status_code=200, summary="Answer a question from the documents, with citations",
      description="Extractive (QA model or best sentence) or generative; `stream: true` answers with "
                  "server-sent events: `token` events as the answer is written, then one `done` event "
                  "holding this response (or an `error` event).")
async def ask(data: JSONBody[AskRequest], services: NamedDependency[Services],
              request: Request) -> AskResponse:
    question = _question(data)
    question = dataclasses.replace(question, filters=scoped(question.filters, request))  # the key's documents only
    pipeline = answerer(services)
    if data.stream:
        return EventStream(answer_events(pipeline, question, threading.Event()))  # type: ignore[return-value]
    return await _answer(request, pipeline, question)


router = Router(path="/", route_handlers=[ask])
