"""Cross-encoders: models that read two texts at once and give one score for the pair.

One loader serves both of their uses: a reranker for search (`--reranker`,
`indexer.search.rerank`) and an STS model for `/similarity` (`--sts-model`).
Any sentence-transformers CrossEncoder with a single output works, by local path
or hub id; none ships offline.

Runtimes: `torch` (sentence-transformers itself), or `onnx` / `onnx-int8`: the
model exported once to ONNX (`indexer.embed.onnx_export`, cached by its
fingerprint) and run by onnxruntime, with the same tokenizer and the same
activation on the scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, Protocol

import numpy as np

from indexer.embed.locations import ModelLocation, ModelNotFoundError, locate_model, reach_hub
from indexer.errors import UnavailableError
from indexer.text.normalize import normalize_query

BATCH_SIZE = 32
RUNTIMES = ("torch", "onnx", "onnx-int8")
# onnxruntime reads pairs in batches of about this many tokens (rows × the longest): as for the ONNX
# embedders (indexer.embed.onnx.BATCH_TOKENS), small batches run fastest on a small CPU.
ONNX_BATCH_TOKENS = 256


class PairScorer(Protocol):
    """A model that scores text pairs directly (a cross-encoder)."""

    location: ModelLocation

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


class CrossEncoderLoadError(UnavailableError):
    """The configured cross-encoder could not be loaded or does not give one score per pair."""


@dataclass
class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder with a single output (a relevance or similarity score)."""

    location: ModelLocation
    model: Any
    _lock: Lock = field(default_factory=Lock, repr=False)  # one forward pass at a time per model

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score per pair, both texts NFKC-normalized as search normalizes them."""
        if not pairs:
            return []
        inputs = [(normalize_query(a), normalize_query(b)) for a, b in pairs]
        with self._lock:
            scores = self.model.predict(inputs, batch_size=BATCH_SIZE, show_progress_bar=False,
                                        convert_to_numpy=True)
        return [float(s) for s in np.asarray(scores, dtype=np.float64).reshape(-1)]


@dataclass
class OnnxCrossEncoder:
    """A CrossEncoder exported to ONNX: the same scores as `CrossEncoderScorer` (within int8's error)."""

    location: ModelLocation
    runtime: str
    session: Any
    tokenizer: Any
    inputs: list[str]
    max_tokens: int
    _lock: Lock = field(default_factory=Lock, repr=False)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        inputs = [(normalize_query(a), normalize_query(b)) for a, b in pairs]
        lengths = [len(ids) for ids in self.tokenizer([a for a, _ in inputs], [b for _, b in inputs],
                                                      truncation=True, max_length=self.max_tokens)["input_ids"]]
        order = sorted(range(len(inputs)), key=lambda i: lengths[i])
        scores = np.zeros(len(inputs), dtype=np.float64)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * lengths[order[end]] <= ONNX_BATCH_TOKENS:
                end += 1
            batch = [inputs[i] for i in order[start:end]]
            encoded = self.tokenizer([a for a, _ in batch], [b for _, b in batch], truncation=True,
                                     max_length=self.max_tokens, padding=True, return_tensors="np")
            feed = {name: encoded[name].astype(np.int64) for name in self.inputs}
            with self._lock:
                out = self.session.run(["score"], feed)[0]
            scores[order[start:end]] = np.asarray(out, dtype=np.float64).reshape(-1)
            start = end
        return [float(s) for s in scores]


def load_cross_encoder(name: str, purpose: str = "/similarity needs a model with one similarity score "
                                              "(an STS cross-encoder, not an NLI one)",
                       runtime: str = "torch", threads: int | None = None) -> PairScorer:
    """Load a CrossEncoder by local path or hub id; refuse one that gives several scores per pair.

    `purpose` ends the refusal's message: what the caller needs the one score for.
    `runtime` "onnx" or "onnx-int8" runs it on onnxruntime (exported once).
    """
    if runtime not in RUNTIMES:
        raise CrossEncoderLoadError(f"unknown cross-encoder runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    location = locate_model(name)
    try:
        location = reach_hub(location)
    except ModelNotFoundError as exc:
        raise CrossEncoderLoadError(f"cannot load cross-encoder {name!r}: {exc}") from exc
    if runtime != "torch":  # the torch model is loaded only to export it, once
        return _onnx_cross_encoder(location, runtime, threads, purpose)
    from sentence_transformers import CrossEncoder

    try:
        model = CrossEncoder(location.reference, device="cpu")
    except Exception as exc:
        raise CrossEncoderLoadError(f"cannot load cross-encoder {name!r}: {exc}") from exc
    _check_outputs(name, int(getattr(model, "num_labels", 1)), purpose)
    return CrossEncoderScorer(location=location, model=model)


def _check_outputs(name: str, outputs: int, purpose: str) -> None:
    if outputs != 1:
        raise CrossEncoderLoadError(f"cross-encoder {name!r} gives {outputs} scores per pair; {purpose}")


def _onnx_cross_encoder(location: ModelLocation, runtime: str, threads: int | None,
                        purpose: str) -> OnnxCrossEncoder:
    from transformers import AutoConfig, AutoTokenizer

    from indexer.embed.onnx import open_session, session_options
    from indexer.embed.onnx_export import INT8_FILE, ONNX_FILE, export_folder

    folder = location.path if location.path is not None else _downloaded(location.name)
    try:
        outputs = int(AutoConfig.from_pretrained(str(folder)).num_labels)
    except Exception as exc:
        raise CrossEncoderLoadError(f"cannot load cross-encoder {location.name!r}: {exc}") from exc
    _check_outputs(location.name, outputs, purpose)
    exported = export_folder(folder, kind="cross-encoder")
    layout = json.loads((exported / "layout.json").read_text())
    session = open_session(exported / (INT8_FILE if runtime == "onnx-int8" else ONNX_FILE), session_options(threads))
    return OnnxCrossEncoder(location=location, runtime=runtime, session=session,
                            tokenizer=AutoTokenizer.from_pretrained(str(folder)), inputs=list(layout["inputs"]),
                            max_tokens=int(layout["max_tokens"]))


def _downloaded(repo_id: str) -> Path:
    """A hub model's local folder (the ONNX runtimes export from files on disk): the cached copy, or fetched."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:
        raise CrossEncoderLoadError(f"cannot fetch cross-encoder {repo_id!r} for the ONNX runtimes: {exc}") from exc
