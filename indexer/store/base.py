"""What a search store is: the interfaces between the search and build layers and where a generation lives.

    Searcher ── SearchStore ──┬── EmbeddedStore   FAISS vectors + SQLite/FTS5 (one generation folder)
    IndexBuilder ── IndexWriter ┴── MilvusStore     a Milvus collection pair (indexer.store.milvus)

Everything that decides what a user sees — normalization, keyword tokens, fusion,
highlights, offsets back to the original text — stays above these interfaces, in
`indexer.search.searcher` and `indexer.build.builder`; a store only keeps rows and returns
candidate ids with scores, so both stores produce the same hit shapes.

Where a generation lives is named by its manifest's `store` entry
(`indexer.store.manifest.StoreEntry`): none (embedded), or
`{"kind": "milvus", "uri": …, "collection": …}`. `indexer.store.factory.open_store`
turns a `Generation` into the store that serves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from indexer.store.generations import Generation
from indexer.store.manifest import Counts, Manifest, VectorsEntry
from indexer.store.sqlite import Filters, StoredChunk, StoredDocument

STORE_KINDS = ("embedded", "milvus")


@dataclass(frozen=True)
class KeywordQuery:
    """A query's keyword terms, as each backend wants them.

    `match` is the FTS5 expression (`KeywordTokenizer.match_query`), `words`
    and `grams` the unique terms of each column (what Milvus's BM25 sees).
    """

    match: str | None
    words: tuple[str, ...]
    grams: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return self.match is None and not self.words and not self.grams


class SearchStore(Protocol):
    """What `Searcher` needs from where a generation is stored; safe to call from several threads."""

    def dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first, among chunks that pass the filters."""
        ...

    def keyword(self, query: KeywordQuery, depth: int, filters: Filters,
                grams_weight: float) -> list[tuple[int, float]]:
        """(chunk id, BM25 of words + grams_weight × BM25 of grams) best first."""
        ...

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]: ...

    def chunk_documents(self, ids: Sequence[int]) -> dict[int, str]:
        """chunk id -> its document's id (for collapsing and facets, without the chunks' text)."""
        ...

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        """chunk id -> its normalized text (what the compound boost reads: no offsets, sections or ids)."""
        ...

    def document_chunk_ids(self, doc_id: str) -> list[int]:
        """The ids of a document's chunks, in the document's order ([] for no such document)."""
        ...

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        """id -> (title, source, language, metadata, key), without the full text."""
        ...

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        """The original text of each chunk: its document's text[start:end]."""
        ...

    def document(self, doc_id: str) -> StoredDocument | None: ...

    def counts(self, filters: Filters | None = None) -> dict[str, int]:
        """Documents and chunks: all of them, or those that pass `filters`."""
        ...

    def vector_count(self, filters: Filters | None = None) -> int:
        """Vectors (one per chunk): all of them, or those of the chunks that pass `filters`."""
        ...

    def keyword_vocabulary(self, column: str = "words") -> dict[str, int] | None:
        """The distinct terms of a keyword column (`words` or `grams`), each with the number of chunks holding
        it; None where the store keeps terms only hashed."""
        ...

    def document_frequency(self, column: str, term: str, filters: Filters | None = None) -> int:
        """In how many chunks a keyword term occurs (`column`: words or grams), among those that pass `filters`."""
        ...

    def stored_vectors(self, ids: Sequence[int]) -> np.ndarray | None:
        """The stored embeddings of chunks in the order given; None when the backend cannot give them."""
        ...

    def close(self) -> None: ...


class IndexWriter(Protocol):
    """What `IndexBuilder` needs to write one new generation, starting from a copy of the previous one."""

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        """key -> (document id, content hash) of every document carried over."""
        ...

    def delete_documents(self, doc_ids: Sequence[str]) -> None: ...

    def refusal(self, metadata: Mapping[str, object]) -> str | None:
        """Why this store cannot hold a document with this metadata (None: it can), asked before embedding so
        that the build skips that document alone, as an unreadable file, instead of failing."""
        ...

    def add_document(self, doc: StoredDocument) -> None: ...

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        """Chunk rows with their (words, grams) keyword text; returns their new chunk ids."""
        ...

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def finish(self) -> tuple[Counts, VectorsEntry]:
        """Make everything written durable; returns (counts, vector settings) for the manifest."""
        ...

    def publish(self, manifest: Manifest) -> Generation:
        """Make the new generation the live one, atomically."""
        ...

    def abort(self) -> None:
        """Throw the unpublished generation away."""
        ...


class GenerationSource(Protocol):
    """Where generations are published: an `IndexDirectory`, or a Milvus alias (`MilvusIndex`)."""

    def current_name(self) -> str | None: ...

    def current(self) -> Generation: ...

    def open(self, name: str) -> Generation: ...


class BuildTarget(GenerationSource, Protocol):
    """A GenerationSource that `IndexBuilder` can write new generations to."""

    def build_lock(self) -> AbstractContextManager[None]: ...

    def clean_stale(self) -> list[Any]: ...

    def next_name(self) -> str: ...


def store_kind(generation: Generation) -> str:
    return generation.manifest.store_kind


def is_embedded(generation: Generation) -> bool:
    """True for a generation kept in files (checked with sizes and checksums); False for Milvus."""
    return store_kind(generation) == "embedded"
