"""Searching one generation: dense, keyword and hybrid, with filters and highlights.

    query ─ normalize ─┬─ embed ─ backend dense top-n ───┐
                       └─ terms ─ backend keyword top-n ─┴─ fuse ─ hits (+ highlight spans)

The backend (`indexer.backends`: FAISS + SQLite, or Milvus) only returns
candidate ids and stored rows; fusion, highlights and offsets are computed here.

Every offset in a hit points into the original, un-normalized document text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.backends import EmbeddedBackend, KeywordQuery, SearchBackend, open_backend
from indexer.embedders import Embedder, embed_for
from indexer.fusion import FusionSettings, fuse
from indexer.generations import Generation
from indexer.keywords import KeywordTokenizer, load_keyword_tokenizer, match_expression
from indexer.language import detect_language
from indexer.normalize import normalize_query
from indexer.store import Filters, Store, StoredChunk, StoredDocument
from indexer.vectors import VectorIndex

MODES = ("dense", "keyword", "hybrid")


class IndexMismatchError(Exception):
    """The index was built with another model than the one loaded."""


class QueryError(ValueError):
    """A query that cannot be searched (empty after normalization, unknown mode)."""


@dataclass(frozen=True)
class Hit:
    doc_id: str
    chunk_id: int
    title: str
    source: str
    section: tuple[str, ...]
    text: str                            # the chunk's original text: document.text[start:end]
    start: int
    end: int
    score: float
    highlights: tuple[tuple[int, int], ...]  # spans in the original document text
    language: str
    metadata: dict[str, Any]


def check_model(generation: Generation, embedder: Embedder) -> None:
    """Refuse to search an index with a model other than the one it was built with."""
    built = generation.manifest.get("model", {})
    loaded = embedder.describe()
    for key in ("name", "dimension", "revision"):
        if built.get(key) != loaded.get(key):
            raise IndexMismatchError(
                f"index {generation.path} was built with model {built.get('name')!r} "
                f"({key} {built.get(key)!r}), but {loaded.get('name')!r} ({key} {loaded.get(key)!r}) "
                f"is loaded: serve it with `--model {built.get('name')}` or rebuild it with "
                f"`yomitoki index CORPUS --index {generation.path.parent} --rebuild`"
            )
    backend = built.get("backend", loaded.get("backend"))  # indexes from before backends: any
    if backend != loaded.get("backend"):
        raise IndexMismatchError(
            f"index {generation.path} was built with the {backend!r} backend of {built.get('name')!r}, but the "
            f"{loaded.get('backend')!r} backend is loaded: load it with backend={backend!r} (the server does "
            f"this by itself) or rebuild with `yomitoki index CORPUS --index {generation.path.parent} "
            f"--rebuild --backend {loaded.get('backend')}`"
        )


class Searcher:
    """Read-only search over one generation; safe to call from several threads."""

    def __init__(self, generation: Generation, embedder: Embedder, backend: SearchBackend | None = None) -> None:
        check_model(generation, embedder)
        self.generation = generation
        self.embedder = embedder
        self.keywords: KeywordTokenizer = load_keyword_tokenizer(generation.manifest.get("keywords"))
        self.fusion = FusionSettings.from_dict(generation.manifest.get("fusion"))
        self.backend: SearchBackend = backend if backend is not None else open_backend(generation)

    @property
    def store(self) -> Store:
        """The SQLite store of an embedded generation (this thread's connection)."""
        if not isinstance(self.backend, EmbeddedBackend):
            raise AttributeError(f"generation {self.generation.name} is not kept in SQLite: use Searcher.document")
        return self.backend.store

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index of an embedded generation."""
        if not isinstance(self.backend, EmbeddedBackend):
            raise AttributeError(f"generation {self.generation.name} is not kept in FAISS")
        return self.backend.vectors

    def document(self, doc_id: str) -> StoredDocument | None:
        """A document with its original text, or None."""
        return self.backend.document(doc_id)

    def close(self) -> None:
        self.backend.close()

    def embed_query(self, query: str) -> np.ndarray:
        return embed_for(self.embedder, [normalize_query(query)], "query")[0]

    def search(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        k: int = 10,
        filters: Filters | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The k best chunks for a query; `query_vector` may be given if already embedded."""
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        text = normalize_query(query).strip()
        if not text:
            raise QueryError("query is empty after normalization")
        filters = filters or Filters()
        depth = max(k, self.fusion.candidates)
        dense: list[tuple[int, float]] = []
        keyword: list[tuple[int, float]] = []
        weight = 1.0
        if mode in ("keyword", "hybrid"):
            keyword = self._keyword(text, depth, filters)
        if mode == "hybrid":
            weight = self.fusion.dense_weight(self.embedder.coverage(text), detect_language(text))
        if mode == "dense" or (mode == "hybrid" and (weight > 0 or not keyword)):
            vector = query_vector if query_vector is not None else embed_for(self.embedder, [text], "query")[0]
            dense = self._dense(vector, depth, filters)
        if mode == "dense":
            ranked = dense
        elif mode == "keyword":
            ranked = keyword
        else:
            ranked = fuse(dense, keyword, weight, self.fusion)
        return self._hits(text, ranked[:k])

    def _dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        return self.backend.dense(vector, depth, filters)

    def _keyword(self, text: str, depth: int, filters: Filters) -> list[tuple[int, float]]:
        words = tuple(dict.fromkeys(t.text for t in self.keywords.words(text)))
        grams = tuple(dict.fromkeys(t.text for t in self.keywords.grams(text)))
        query = KeywordQuery(match=match_expression(words, grams), words=words, grams=grams)
        if query.empty:
            return []
        return self.backend.keyword(query, depth, filters, self.grams_weight)

    @property
    def grams_weight(self) -> float:
        return float(self.keywords.settings.get("grams_weight", 1.0))  # type: ignore[arg-type]

    def _hits(self, query: str, ranked: list[tuple[int, float]]) -> list[Hit]:
        chunks = self.backend.chunks([cid for cid, _ in ranked])
        docs = self.backend.documents_brief(list({c.doc_id for c in chunks.values()}))
        originals = self.backend.chunk_originals(list(chunks.values()))
        terms = self._query_terms(query)
        hits = []
        for cid, score in ranked:
            chunk = chunks.get(cid)
            if chunk is None:
                continue
            title, source, language, metadata = docs[chunk.doc_id]
            hits.append(Hit(
                doc_id=chunk.doc_id, chunk_id=cid, title=title, source=source,
                section=chunk.section, text=originals[cid], start=chunk.start, end=chunk.end,
                score=round(score, 6), highlights=self.highlights(chunk, terms),
                language=language, metadata=metadata,
            ))
        return hits

    def _query_terms(self, query: str) -> re.Pattern[str] | None:
        """One pattern matching the query's terms as they can appear in a chunk's text.

        English terms match as word prefixes of their stem (run → running),
        Japanese words by their surface, and the query's character bigrams
        as they are: the same evidence the keyword index ranks by, found with
        one regular expression instead of re-analysing every hit.
        """
        parts = set()
        for term in self.keywords.words(query):
            if term.text.isascii():
                parts.add(rf"\b{re.escape(term.text)}\w*")
            else:
                parts.add(re.escape(query[term.start : term.end].lower()))
        parts.update(re.escape(gram.text) for gram in self.keywords.grams(query))
        if not parts:
            return None
        return re.compile("|".join(sorted(parts, key=len, reverse=True)), re.IGNORECASE)

    def highlights(self, chunk: StoredChunk, pattern: re.Pattern[str] | None) -> tuple[tuple[int, int], ...]:
        """Spans of the chunk where query terms occur, merged, in original-text offsets."""
        if pattern is None:
            return ()
        merged: list[list[int]] = []
        for match in pattern.finditer(chunk.text):
            start, end = match.span()
            if end == start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return tuple(chunk.to_original(s, e) for s, e in merged)
