"""Sentence-transformers models on ONNX Runtime: the `onnx` (fp32) and `onnx-int8` runtimes.

The model is exported once from its local folder (see `indexer.embed.onnx_export`);
texts are tokenized with the model's own fast tokenizer (`tokenizers`),
sorted by length so batches carry little padding, grouped into batches of
about `BATCH_TOKENS` tokens (long texts alone, short ones a few at a time), and run through an
onnxruntime session whose graph ends in pooling and L2 normalization. Token
counting, spans and coverage are the same code as the torch backend's, over
the same tokenizer, so both backends chunk a corpus identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embed.base import TokenizerMethods, normalize_rows
from indexer.embed.locations import ModelLocation
from indexer.embed.onnx_export import INT8_FILE, ONNX_FILE, OnnxExportError, export_folder, model_layout

ONNX_BACKENDS = ("onnx", "onnx-int8")
# A batch holds about this many tokens (rows × the longest row), and never fewer than one text. On
# 2 cores of an AVX-512 VNNI CPU, multilingual-e5-small int8 embeds 200-token chunks 1.5× faster per
# CPU-second one at a time than 8 at a time (512-token texts 1.4×), while ~30-token texts run best 2–4
# at a time; float32 barely cares. Larger batches only spill the activations out of the caches.
BATCH_TOKENS = 128


@dataclass
class OnnxEmbedder(TokenizerMethods):
    """An exported sentence-transformers model run by onnxruntime."""

    location: ModelLocation
    backend: str
    session: Any
    tokenizer: Any   # the Hugging Face fast tokenizer: counting, spans, coverage
    encoder: Any     # a `tokenizers.Tokenizer` copy set up to truncate and pad for the model
    dimension: int
    max_tokens: int
    model_file: Path
    prompts: dict[str, str] = field(default_factory=dict)  # per kind of text, see `embed_for`
    batch_tokens: int = BATCH_TOKENS

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Texts longest first, in batches of at most `batch_size` rows and about `batch_tokens` tokens."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.encoder.encode_batch(list(texts))
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        start = 0
        while start < len(order):
            width = len(encodings[order[start]].ids)  # the longest row sets the batch's width
            rows = order[start : start + max(1, min(batch_size, self.batch_tokens // width))]
            out[rows] = self._run([encodings[i] for i in rows])
            start += len(rows)
        return normalize_rows(out)

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.location.name,
            "family": "sentence-transformers",
            "backend": self.backend,
            "source": self.location.kind,
            "package": self.location.package,
            "revision": self.revision,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            **({"prompts": self.prompts} if self.prompts else {}),
        }


def load_onnx_embedder(
    location: ModelLocation, backend: str = "onnx-int8", *, threads: int | None = None,
    cache_dir: Path | None = None, prompts: dict[str, str] | None = None, bulk: bool = False,
) -> OnnxEmbedder:
    """Load (exporting first, once) a local sentence-transformers folder on onnxruntime."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"unknown ONNX backend {backend!r}: use one of {', '.join(ONNX_BACKENDS)}")
    if location.path is None or not location.path.is_dir():
        raise OnnxExportError(
            f"the {backend} backend needs a local model folder, and {location.name!r} is not one"
        )
    folder = export_folder(location.path, cache_dir)
    model_file = folder / (INT8_FILE if backend == "onnx-int8" else ONNX_FILE)
    layout = model_layout(location.path)
    tokenizer = _hf_tokenizer(location.path)
    encoder = _batch_encoder(tokenizer, layout["max_tokens"])
    session = _session(model_file, threads, bulk)
    probe = session.run(["embedding"], {"input_ids": np.array([[101, 102]], dtype=np.int64),
                                        "attention_mask": np.ones((1, 2), dtype=np.int64)})[0]
    return OnnxEmbedder(location=location, backend=backend, session=session, tokenizer=tokenizer,
                        encoder=encoder, dimension=int(probe.shape[1]), max_tokens=layout["max_tokens"],
                        model_file=model_file, prompts=dict(prompts or {}))


def _hf_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tokenizer, "is_fast", False):
        raise OnnxExportError(f"{path} has no fast tokenizer (tokenizer.json); the ONNX backends need one")
    return tokenizer


def _batch_encoder(tokenizer: Any, max_tokens: int) -> Any:
    """An independent `tokenizers.Tokenizer` that adds special tokens and truncates to the window."""
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    encoder.no_padding()
    encoder.enable_truncation(max_length=max_tokens)
    return encoder


def _session(model_file: Path, threads: int | None, bulk: bool) -> Any:
    return open_session(model_file, session_options(threads, bulk=bulk))


# onnxruntime's graph optimizations that are left out. SkipLayerNormFusion joins each residual Add
# with the LayerNorm after it; on onnxruntime 1.32 that fused kernel is several times slower on CPU
# than the two it replaces (0.43 ms against 0.05 ms for the LayerNorm of 200 tokens × 384, one
# thread), and multilingual-e5-small has 24 of them: unfused, int8 embeds a 200-token chunk ≈ 13%
# faster. The export leaves them unfused too (`onnx_export._fuse`).
UNFUSED = ["SkipLayerNormFusion"]


def open_session(model_file: Path, options: Any) -> Any:
    """An onnxruntime CPU session over an exported model, with the optimizations yomitoki runs them with."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=UNFUSED)


def session_options(threads: int | None, *, bulk: bool = False) -> Any:
    """The onnxruntime options an ONNX backend session runs with (`threads`: intra-op, default 2).

    `bulk` (indexing, one batch after another) lets idle threads spin between
    the model's operators: `yomitoki index --backend onnx-int8` is about 7%
    faster so.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 2
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Otherwise idle threads sleep instead of spinning: on a small shared CPU, and in a server whose
    # other threads search FTS5 and FAISS meanwhile, spinning halves single-query speed and gains nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if bulk else "0")
    return options
