"""Choosing the embedding model for a corpus when the user names none.

An existing index keeps the model it was built with. For a new index, the
corpus's dominant language decides: all-MiniLM-L6-v2 is the stronger and
faster model for English, the multilingual Universal Sentence Encoder the one
that understands Japanese (figures in the README's "Choosing a model").
"""

from __future__ import annotations

from pathlib import Path

from indexer.embedders import DEFAULT_EMBEDDER, MULTILINGUAL_EMBEDDER
from indexer.generations import IndexDirectory
from indexer.language import detect_language
from indexer.loaders import SUPPORTED_SUFFIXES

JAPANESE_SHARE = 0.5  # more than this share of Japanese documents picks the multilingual model
SAMPLE_CHARS = 4000


def corpus_japanese_share(corpus: Path, limit: int = 500) -> float:
    """Share of (up to `limit`) files whose opening text is Japanese."""
    files = [corpus] if corpus.is_file() else sorted(
        p for p in corpus.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()
    )[:limit]
    languages = []
    for file in files:
        try:
            with file.open(encoding="utf-8", errors="ignore") as handle:
                languages.append(detect_language(handle.read(SAMPLE_CHARS)))
        except OSError:
            continue
    return languages.count("ja") / len(languages) if languages else 0.0


def choose_embedder(directory: IndexDirectory, corpus: Path, *, rebuild: bool = False) -> str:
    """The model to build with: the index's own, else the one the corpus's language calls for."""
    if not rebuild and directory.current_name() is not None:
        return str(directory.current().manifest["model"]["name"])
    if corpus_japanese_share(corpus) > JAPANESE_SHARE:
        return MULTILINGUAL_EMBEDDER
    return DEFAULT_EMBEDDER
