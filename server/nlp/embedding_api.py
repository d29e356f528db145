"""Raw vectors for other tools, the way OpenAI's embeddings endpoint hands them out.

The request names a model; the served embedding model answers to its own name
and the aliases it is bundled under. Inputs are NFKC-normalized like everything
else; an input longer than the model's window is refused (or cut, if asked),
never silently truncated.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.embed.base import Embedder, prompt_for
from indexer.embed.locations import BUNDLED_ALIASES
from indexer.text.normalize import normalize_query
from server.errors import NotFoundError
from server.nlp.encoding import embed_texts
from server.nlp.errors import TaskInputError


def served_names(embedder: Embedder) -> list[str]:
    """Names the served model answers to: its own, the aliases it is bundled under, its folder name."""
    name = str(embedder.describe()["name"])
    names = [name, *(alias for alias, canonical in BUNDLED_ALIASES.items() if canonical == name and alias != name)]
    if embedder.location.kind == "path" and embedder.location.path is not None:
        names.append(Path(embedder.location.path).name)
    return list(dict.fromkeys(names))


def check_model_name(requested: str, embedder: Embedder) -> str:
    """The served model's name if `requested` names it (case-insensitive); 404 otherwise."""
    names = served_names(embedder)
    if requested.strip().lower() in {n.lower() for n in names}:
        return names[0]
    raise NotFoundError(f"model {requested!r} is not served here: this server embeds with {names[0]!r} "
                        f"(also accepted: {', '.join(repr(n) for n in names[1:]) or 'no other names'})")


def special_tokens(embedder: Embedder) -> int:
    tokenizer = getattr(embedder, "tokenizer", None)
    return int(tokenizer.num_special_tokens_to_add(pair=False)) if tokenizer is not None else 0


@dataclass(frozen=True)
class EmbeddedBatch:
    vectors: np.ndarray   # (inputs, dimension), float32, L2-normalized
    tokens: int           # tokens read, special tokens included (the `usage` figure)


def embed_inputs(embedder: Embedder, inputs: Sequence[str], *, truncate: bool = False,
                 kind: str = "query") -> EmbeddedBatch:
    """Embed the inputs as `kind` (see `embed_for`) after checking each fits the model's window.

    The model's prefix for `kind` (E5's `query: `) takes room in the window and counts as read; it is counted
    together with the text, as it is embedded (its last piece can merge with the text's first).
    """
    prefix = prompt_for(embedder, kind)
    special = special_tokens(embedder)
    window = embedder.max_tokens - special
    counts = embedder.count_tokens([prefix + normalize_query(text) for text in inputs])
    if not truncate:
        with_prefix = f" with the prefix {prefix!r}" if prefix else ""
        for i, count in enumerate(counts):
            if count > window:
                raise TaskInputError(
                    f"input[{i}]", f"{count} tokens{with_prefix} is more than {embedder.describe()['name']} reads "
                                   f"({window} tokens plus {special} special ones): shorten it, split it, "
                                   "or send \"truncate\": true to embed only its beginning")
    vectors = embed_texts(embedder, inputs, kind=kind)
    return EmbeddedBatch(vectors=vectors, tokens=sum(min(c, window) + special for c in counts))


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as JSON floats, or as base64 of little-endian float32 (what OpenAI's client decodes)."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector.tolist()]
