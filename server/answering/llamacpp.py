"""Generating with a GGUF model through llama.cpp (the `xllamacpp` package).

llama.cpp reads the quantized weights as they are (no de-quantizing to float32
torch) and formats the conversation with the chat template stored in the file.
`xllamacpp.Server` runs llama.cpp's own server in-process: a chat completion is
a call that hands each streamed chunk to a callback, and a callback that returns
True stops the generation — that is how a cancelled request, a closed stream or
the time limit end it. The server also listens on a loopback port (its OpenAI
API, used here for `/tokenize`); it is given a random API key so that nothing
else on the machine can use it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx

from server.answering.generators import TextGenerationLimits, TextGenerationOutcome, check_room
from server.errors import UnavailableError

log = logging.getLogger("yomitoki.answering")
# One thread by default: with the cores busy (searches, other processes) llama.cpp's threads wait on
# each other at every layer; measured with benchmarks/generator_speed.py at load average 16 on 2 cores,
# 1 thread wrote 20-25 tokens/s and 2 threads 1-2 tokens/s (poll 0 or 50 alike).
DEFAULT_THREADS = 1
CONTEXT_WINDOW = 4096   # tokens of prompt and answer per request (SmolLM2 was trained on 8192)
TEMPLATE_TOKENS = 8     # what the chat template adds around each message, and to open the answer (at most)
_END = object()         # the generation call returned


class LlamaCppGenerator:
    def __init__(self, path: Path, name: str, languages: tuple[str, ...], threads: int = DEFAULT_THREADS,
                 context_window: int = CONTEXT_WINDOW) -> None:
        import xllamacpp

        self.name, self.languages, self.context_window = name, languages, context_window
        self.threads = threads
        self._key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_window
        params.n_parallel = 1                  # one generation at a time: on a CPU two only run slower
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.api_keys = [self._key]
        params.warmup = False
        self._server = xllamacpp.Server(params)
        self._http = httpx.Client(base_url=self._server.listening_address, timeout=10,
                                  headers={"Authorization": f"Bearer {self._key}"})
        self._lock = threading.Lock()

    def count_tokens(self, texts: list[str]) -> list[int]:
        counts = []
        for text in texts:
            response = self._http.post("/tokenize", json={"content": text})
            response.raise_for_status()
            counts.append(len(response.json()["tokens"]))
        return counts

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """The conversation's tokens as the model will read it, through its chat template (an estimate of
        `TEMPLATE_TOKENS` a turn if the server cannot apply it)."""
        try:
            prompt = self._http.post("/apply-template", json={"messages": messages})
            prompt.raise_for_status()
            tokens = self._http.post("/tokenize", json={"content": prompt.json()["prompt"], "add_special": True})
            tokens.raise_for_status()
            return len(tokens.json()["tokens"])
        except (httpx.HTTPError, KeyError, ValueError):
            return sum(self.count_tokens([m["content"] for m in messages])) + TEMPLATE_TOKENS * (len(messages) + 1)

    def stream(self, messages: list[dict[str, str]], limits: TextGenerationLimits, cancel: threading.Event,
               outcome: TextGenerationOutcome | None = None) -> Generator[str, None, None]:
        """Text pieces as the model writes them; closing the iterator stops the model."""
        outcome = outcome if outcome is not None else TextGenerationOutcome()
        deadline = time.monotonic() + limits.time_limit_s
        outcome.prompt_tokens = self.prompt_tokens(messages)  # llama.cpp counts them again when it finishes
        check_room(self, outcome.prompt_tokens, limits.max_new_tokens)
        if not self._lock.acquire(timeout=limits.time_limit_s):
            raise UnavailableError(f"generator {self.name!r} is busy with other requests", retry_after=10)
        try:
            yield from self._run(messages, limits, cancel, outcome, deadline)
        finally:
            self._lock.release()
        if outcome.error:
            raise RuntimeError(f"generator {self.name!r} failed: {outcome.error}")

    def _run(self, messages: list[dict[str, str]], limits: TextGenerationLimits, cancel: threading.Event,
             outcome: TextGenerationOutcome, deadline: float) -> Iterator[str]:
        pieces: queue.Queue[Any] = queue.Queue()
        closed = threading.Event()  # the consumer stopped reading

        def on_chunk(chunk: dict[str, Any]) -> bool:
            pieces.put(chunk)
            if cancel.is_set() or closed.is_set():
                outcome.stop = "cancelled"
            elif time.monotonic() >= deadline:
                outcome.stop = "time"
            return bool(outcome.stop)

        def work() -> None:
            request = {"messages": messages, "stream": True, "max_tokens": limits.max_new_tokens,
                       "temperature": limits.temperature, "cache_prompt": True,
                       "stream_options": {"include_usage": True}}  # a last chunk counts the tokens
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # reported to the caller after the stream ends
                outcome.stop, outcome.error = "error", f"{type(exc).__name__}: {exc}"
            pieces.put(_END)

        worker = threading.Thread(target=work, name="yomitoki-llamacpp", daemon=True)
        worker.start()
        try:
            while (chunk := pieces.get(timeout=max(1.0, deadline - time.monotonic() + 30))) is not _END:
                if text := self._read(chunk, outcome):
                    yield text
        finally:
            closed.set()  # also when the consumer stops early (a client that went away)
            worker.join(timeout=30)
        if not outcome.stop:
            outcome.stop = "max_tokens" if outcome.tokens >= limits.max_new_tokens else "eos"

    @staticmethod
    def _read(chunk: dict[str, Any], outcome: TextGenerationOutcome) -> str:
        if "error" in chunk:
            outcome.stop, outcome.error = "error", str(chunk["error"].get("message", chunk["error"]))
            return ""
        text = ""
        for choice in chunk.get("choices", ()):
            text += (choice.get("delta") or {}).get("content") or ""
            if choice.get("finish_reason") == "length" and not outcome.stop:
                outcome.stop = "max_tokens"
        if text:
            outcome.tokens += 1  # llama.cpp streams one token per chunk
        if usage := chunk.get("usage"):
            outcome.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            outcome.tokens = int(usage.get("completion_tokens") or outcome.tokens)
        return text

    def close(self) -> None:
        self._http.close()
        del self._server


def load_llamacpp(path: Path, name: str, languages: tuple[str, ...], threads: int) -> LlamaCppGenerator:
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    started = time.perf_counter()
    generator = LlamaCppGenerator(path, name, languages, threads)
    log.info("llama.cpp loaded %s with %d threads in %.2f s", path.name, threads, time.perf_counter() - started)
    return generator
