"""Choosing the embedding model for a corpus when the user names none.

An existing index keeps the model it was built with. A new index gets
multilingual-e5-small whatever its languages: it reads Japanese and English,
and on the figures in the README's "Choosing a model" it is the better model
for both (`python benchmarks/embedders.py`); all-MiniLM-L6-v2 remains the
faster choice for English-only corpora when asked for by name.
"""

from __future__ import annotations

from pathlib import Path

from indexer.embed.base import DEFAULT_EMBEDDER
from indexer.store.generations import IndexDirectory


def choose_embedder(directory: IndexDirectory, corpus: Path, *, rebuild: bool = False) -> str:
    """The model to build with: the index's own, else the default."""
    if not rebuild and directory.current_name() is not None:
        return directory.current().manifest.model.name
    return DEFAULT_EMBEDDER
