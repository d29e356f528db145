"""The generator interface, and generating with a transformers causal or seq2seq model.

The server runs GGUF files (the bundled SmolLM2 included) on llama.cpp
(`llamacpp.py`) and OpenAI-compatible upstreams through `upstream.py`;
`loading.py` picks the runtime. This transformers path serves a local folder or
hub id of a causal or seq2seq model (and can still read a `.gguf` through
transformers' `gguf_file=`, which `benchmarks/generator_speed.py` compares). Generation runs
in its own thread and streams through `TextIteratorStreamer`; a stopping
criterion ends it at the request's time limit or as soon as the caller cancels
(a client that disconnects), and `max_new_tokens` bounds its length. One
generation runs at a time per model: on a CPU, two at once only run slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from indexer.embed.locations import locate_generator, reach_hub
from server.answering.schemas import TokenUsage
from server.errors import UnavailableError
from server.nlp.errors import TaskInputError

log = logging.getLogger("yomitoki.answering")
REPETITION_PENALTY = 1.0  # above 1 it also punishes copying words from the passages, which answers need


@dataclass(frozen=True)
class TextGenerationLimits:
    max_new_tokens: int = 128
    time_limit_s: float = 60.0
    temperature: float = 0.0     # 0: greedy (the transformers path is always greedy)


@dataclass
class TextGenerationOutcome:
    """How a generation ended: filled in once the stream is exhausted or closed."""

    tokens: int = 0          # written: the completion's tokens
    prompt_tokens: int = 0   # the prompt's tokens as the model counted them; 0 where it did not say
    stop: str = ""           # "eos", "max_tokens", "time", "cancelled", "error" or "repetition"
    error: str | None = None

    @property
    def cut(self) -> bool:
        """Whether the generator was still writing when a limit stopped it: `max_tokens` or the time limit."""
        return self.stop in ("max_tokens", "time")


def token_usage(outcome: TextGenerationOutcome) -> TokenUsage | None:
    """OpenAI's `usage` of a finished generation, or None where the model did not count its prompt."""
    if not outcome.prompt_tokens:
        return None
    return TokenUsage(prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.tokens,
                      total_tokens=outcome.prompt_tokens + outcome.tokens)


def check_room(generator: TextGenerator, prompt_tokens: int, max_new_tokens: int) -> None:
    """A 400 naming `messages` when the prompt and the answer cannot both fit the generator's context."""
    if prompt_tokens + max_new_tokens > generator.context_window:
        raise TaskInputError("messages", f"the conversation is {prompt_tokens} of {generator.name}'s tokens and the "
                                         f"answer may take {max_new_tokens} more, over its context of "
                                         f"{generator.context_window}: send fewer or shorter turns, or a smaller "
                                         "max_tokens")


class TextGenerator(Protocol):
    name: str
    context_window: int
    languages: tuple[str, ...]   # what it writes well ("en", "ja"); `auto` answers other questions extractively

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def stream(self, messages: list[dict[str, str]], limits: TextGenerationLimits, cancel: threading.Event,
               outcome: TextGenerationOutcome | None = None) -> Generator[str, None, None]: ...


class _Stop:
    """A stopping criterion: the caller cancelled, or the deadline passed."""

    def __init__(self, cancel: threading.Event, deadline: float) -> None:
        self.cancel, self.deadline, self.reason = cancel, deadline, ""
        self.closed = threading.Event()  # the consumer stopped reading

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.cancel.is_set() or self.closed.is_set():
            self.reason = "cancelled"
        elif time.monotonic() >= self.deadline:
            self.reason = "time"
        return torch.full((input_ids.shape[0],), bool(self.reason), dtype=torch.bool)


class TransformersGenerator:
    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.languages: tuple[str, ...] = ("ja", "en")
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.context_window = int(getattr(model.config, "max_position_embeddings", None) or 1024)
        self._lock = threading.Lock()

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode(self, messages: list[dict[str, str]]) -> Any:
        """Prompt token ids, through the model's chat template when it has one."""
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                         return_tensors="pt", return_dict=True)
            return encoded["input_ids"]
        text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
        return self.tokenizer(text, return_tensors="pt")["input_ids"]

    def stream(self, messages: list[dict[str, str]], limits: TextGenerationLimits, cancel: threading.Event,
               outcome: TextGenerationOutcome | None = None) -> Generator[str, None, None]:
        """Text pieces as the model writes them; closing the iterator stops the model."""
        from transformers import TextIteratorStreamer

        outcome = outcome if outcome is not None else TextGenerationOutcome()
        deadline = time.monotonic() + limits.time_limit_s
        if not self._lock.acquire(timeout=limits.time_limit_s):
            raise UnavailableError(f"generator {self.name!r} is busy with other requests", retry_after=10)
        stop = _Stop(cancel, deadline)
        try:
            ids = self.encode(messages)
            outcome.prompt_tokens = int(ids.shape[1])
            check_room(self, outcome.prompt_tokens, limits.max_new_tokens)
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                            timeout=limits.time_limit_s + 60)
            worker = threading.Thread(target=self._generate, args=(ids, streamer, stop, limits, outcome),
                                      name="yomitoki-generate", daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if cancel.is_set():
                        break
                    if piece:
                        yield piece
            finally:
                stop.closed.set()  # also when the consumer stops early (a client that went away)
                worker.join()
        finally:
            self._lock.release()
        if outcome.error:
            raise RuntimeError(f"generator {self.name!r} failed: {outcome.error}")

    def _generate(self, ids: Any, streamer: Any, stop: _Stop, limits: TextGenerationLimits,
                  outcome: TextGenerationOutcome) -> None:
        import torch
        from transformers import StoppingCriteriaList

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=limits.max_new_tokens,
                    do_sample=False, streamer=streamer, stopping_criteria=StoppingCriteriaList([stop]),
                    pad_token_id=pad, repetition_penalty=REPETITION_PENALTY,
                )
            outcome.tokens = int(output.shape[1] - (1 if self.encoder_decoder else ids.shape[1]))
            outcome.stop = stop.reason or ("max_tokens" if outcome.tokens >= limits.max_new_tokens else "eos")
        except Exception as exc:  # reported to the caller after the stream ends
            log.exception("generation failed")
            outcome.stop, outcome.error = "error", f"{type(exc).__name__}: {exc}"
            streamer.end()
        if outcome.stop in ("time", "cancelled"):
            log.info("generation stopped (%s) after %d tokens", outcome.stop, outcome.tokens)


def _gguf_location(name: str) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for a generator name."""
    location = reach_hub(locate_generator(name))
    path = location.path
    if path is not None and path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path is not None and path.is_dir():
        ggufs = sorted(Path(path).glob("*.gguf"))
        if ggufs and not (path / "config.json").exists():
            return str(path), ggufs[0].name
    return location.reference, None


def load_generator(name: str) -> TransformersGenerator:
    """A causal or seq2seq model: bundled name, local folder, `.gguf` file or hub id."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, gguf = _gguf_location(name)
    extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    config = AutoConfig.from_pretrained(folder, **extra)
    family = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    model = family.from_pretrained(folder, **extra)
    return TransformersGenerator(model, tokenizer, name)
