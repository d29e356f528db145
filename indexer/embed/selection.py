"""Choosing the embedding model for a corpus when the user names none.

An existing index keeps the model it was built with. A new index gets
multilingual-e5-small whatever its languages: it reads Japanese and English
and matches across them, and it is the better model for similarity and
classification in English too (`python benchmarks/embedders.py`, README
"Choosing a model"). all-MiniLM-L6-v2, asked for by name, is the faster choice
for a corpus that will stay English, and ranks SciFact slightly better inside
yomitoki's chunks; it cannot read a Japanese document added later.
"""

from __future__ import annotations

from pathlib import Path

from indexer.embed.base import DEFAULT_EMBEDDER
from indexer.store.generations import IndexDirectory, built_manifest


def choose_embedder(directory: IndexDirectory, corpus: Path, *, rebuild: bool = False) -> str:
    """The model to build with: the index's own (`--rebuild` too re-embeds with it), else the default."""
    manifest = built_manifest(directory)
    return manifest.model.name if manifest is not None else DEFAULT_EMBEDDER
