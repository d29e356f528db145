"""Generating through an OpenAI-compatible chat completions endpoint (Ollama, vLLM, llama.cpp's
server, LM Studio, a hosted API, or another yomitoki), streamed with the `openai` client.

`--generator openai:BASE_URL --generator-model NAME`; the key comes from
YOMITOKI_GENERATOR_API_KEY and is never logged or put in an error. Every wait is
bounded: connecting, and each read of the stream (the time to the first token
and between tokens), plus the request's own time limit. Failures become
`UpstreamError` with the status a client should see: 503 when the upstream
cannot be reached, 504 when it is too slow, 502 when it answers with an error
or with something that is not a chat completion stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from server.answering.generators import TextGenerationLimits, TextGenerationOutcome
from server.errors import UpstreamError

if TYPE_CHECKING:
    import openai

log = logging.getLogger("yomitoki.answering")
PREFIX = "openai:"


@dataclass(frozen=True)
class UpstreamSettings:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    languages: tuple[str, ...] = ("ja", "en")
    connect_timeout_s: float = 5.0
    token_timeout_s: float = 30.0     # the longest wait for the first token or the next one
    context_window: int = 8192


class OpenAIGenerator:
    def __init__(self, settings: UpstreamSettings, http_client: Any = None) -> None:
        self.settings = settings
        self.name = f"{PREFIX}{settings.base_url}#{settings.model}"
        self.languages, self.context_window = settings.languages, settings.context_window
        import openai  # here, not at import: it takes about half a second, and most runs have no upstream

        timeout = openai.Timeout(settings.token_timeout_s, connect=settings.connect_timeout_s)
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key or "none",
                                     timeout=timeout, max_retries=0, http_client=http_client)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """An upper estimate without the upstream's tokenizer: one token per 3 bytes of UTF-8
        (a kana or kanji is 3 bytes and at most a token; English words average 4+ bytes a token)."""
        return [len(text.encode()) // 3 + 1 for text in texts]

    def stream(self, messages: list[dict[str, str]], limits: TextGenerationLimits, cancel: threading.Event,
               outcome: TextGenerationOutcome | None = None) -> Generator[str, None, None]:
        """Text pieces as the upstream sends them; closing the iterator closes the connection."""
        outcome = outcome if outcome is not None else TextGenerationOutcome()
        deadline = time.monotonic() + limits.time_limit_s
        try:
            with self._client.chat.completions.create(  # type: ignore[union-attr,call-overload]
                    model=self.settings.model, messages=messages, stream=True,  # type: ignore[arg-type]
                    max_tokens=limits.max_new_tokens, temperature=limits.temperature,
                    stream_options={"include_usage": True}) as chunks:  # a last chunk counts the tokens
                yield from self._pieces(chunks, cancel, deadline, outcome)
        except UpstreamError:
            raise
        except Exception as exc:
            outcome.stop = "error"
            raise self._failure(exc) from None
        if outcome.stop == "open":
            raise UpstreamError(f"upstream {self.settings.base_url} ended the stream without finishing "
                                f"the answer (after {outcome.tokens} pieces)", 502)

    def _pieces(self, chunks: Any, cancel: threading.Event, deadline: float,
                outcome: TextGenerationOutcome) -> Iterator[str]:
        outcome.stop, seen = "open", False
        for chunk in chunks:
            seen = True
            if not isinstance(chunk.choices, list):
                raise UpstreamError(f"upstream {self.settings.base_url} sent a chunk without choices", 502)
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    outcome.tokens += 1
                    yield choice.delta.content
                if choice.finish_reason:
                    outcome.stop = "max_tokens" if choice.finish_reason == "length" else "eos"
            if usage := getattr(chunk, "usage", None):
                outcome.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                outcome.tokens = int(getattr(usage, "completion_tokens", 0) or outcome.tokens)
            if cancel.is_set():
                outcome.stop = "cancelled"
            elif time.monotonic() >= deadline:
                outcome.stop = "time"
            if outcome.stop in ("cancelled", "time"):
                return
        if not seen:
            raise UpstreamError(f"upstream {self.settings.base_url} sent no chat completion chunks "
                                "(not a server-sent event stream)", 502)

    def _failure(self, exc: Exception) -> UpstreamError:
        import openai

        http = http_library()
        where = f"upstream {self.settings.base_url}"
        if isinstance(exc, openai.APITimeoutError | http.TimeoutException):
            return UpstreamError(f"{where} timed out (no answer or no next token within "
                                 f"{self.settings.token_timeout_s:g} s)", 504)
        if isinstance(exc, openai.APIConnectionError | http.TransportError):
            cause = exc.__cause__ or exc
            return UpstreamError(f"{where} cannot be reached: {type(cause).__name__}: {cause}", 503)
        if isinstance(exc, openai.APIStatusError):
            return UpstreamError(f"{where} answered {exc.status_code}: {_message(exc)}", 502)
        if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError | openai.APIError):
            return UpstreamError(f"{where} sent an invalid stream: {type(exc).__name__}: {exc}", 502)
        log.exception("upstream generation failed")
        return UpstreamError(f"{where} failed: {type(exc).__name__}", 502)


def http_library() -> ModuleType:
    """The HTTP library the openai client runs on: httpx2 since openai 3, httpx before."""
    try:
        import httpx2
    except ImportError:
        import httpx

        return httpx
    return httpx2


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        detail = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        if detail:
            return str(detail)[:300]
    return exc.message[:300]
