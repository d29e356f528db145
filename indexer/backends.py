"""The search-backend interface, and its embedded implementation (FAISS + SQLite).

    Searcher ── SearchBackend ──┬── EmbeddedBackend   FAISS vectors + SQLite/FTS5 (one generation folder)
    IndexBuilder ── IndexWriter ┴── MilvusBackend     a Milvus collection pair (indexer.milvus_backend)

Everything that decides what a user sees — normalization, keyword tokens, fusion,
highlights, offsets back to the original text — stays above this interface, in
`indexer.search` and `indexer.build`; a backend only stores rows and returns
candidate ids with scores, so both backends produce the same hit shapes.

Where a generation lives is named by its manifest's `store` entry:
`{"kind": "embedded"}` (or no entry: indexes from before backends) or
`{"kind": "milvus", "uri": …, "collection": …}`. `open_backend` turns a
`Generation` into the backend that serves it.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.bm25 import KeywordMatrix
from indexer.errors import InputError
from indexer.generations import STORE_FILE, VECTORS_FILE, Generation, IndexDirectory
from indexer.store import Filters, Store, StoredChunk, StoredDocument
from indexer.vectors import VectorIndex, VectorParams

STORE_KINDS = ("embedded", "milvus")
ALLOWED_CACHE_BYTES = 64 * 2**20  # filtered chunk ids kept per generation: 8M ids


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


class SearchBackend(Protocol):
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

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        """id -> (title, source, language, metadata, key), without the full text."""
        ...

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        """The original text of each chunk: its document's text[start:end]."""
        ...

    def document(self, doc_id: str) -> StoredDocument | None: ...

    def counts(self) -> dict[str, int]: ...

    def vector_count(self) -> int: ...

    def document_frequency(self, column: str, term: str) -> int:
        """In how many chunks a keyword term occurs (`column`: words or grams)."""
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

    def add_document(self, doc: StoredDocument) -> None: ...

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        """Chunk rows with their (words, grams) keyword text; returns their new chunk ids."""
        ...

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def finish(self) -> tuple[dict[str, int], dict[str, object]]:
        """Make everything written durable; returns (counts, vector settings for the manifest)."""
        ...

    def publish(self, manifest: dict[str, Any]) -> Generation:
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


def open_writer(target: BuildTarget, name: str, previous: Generation | None, dimension: int,
                index_type: str = "auto", vector_params: VectorParams | None = None) -> IndexWriter:
    """The writer of a new generation `name` in `target`, starting from a copy of `previous`."""
    if isinstance(target, IndexDirectory):
        return EmbeddedWriter(target, name, previous, dimension, index_type, vector_params)
    return target.writer(name, previous, dimension, index_type, vector_params)  # type: ignore[attr-defined]


def store_kind(generation: Generation) -> str:
    return str((generation.manifest.get("store") or {}).get("kind", "embedded"))


def is_embedded(generation: Generation) -> bool:
    """True for a generation kept in files (checked with sizes and checksums); False for Milvus."""
    return store_kind(generation) == "embedded"


def open_backend(generation: Generation) -> SearchBackend:
    """The backend that serves a generation, from its manifest's `store` entry."""
    kind = store_kind(generation)
    if kind == "embedded":
        return EmbeddedBackend(generation)
    if kind == "milvus":
        from indexer.milvus_backend import MilvusBackend

        return MilvusBackend.for_generation(generation)
    raise ValueError(f"generation {generation.name} names an unknown store {kind!r}: use one of "
                     f"{', '.join(STORE_KINDS)}")


def open_target(index_dir: Path, store: str | None = None, milvus_uri: str | None = None,
                milvus_collection: str | None = None) -> IndexDirectory | Any:
    """Where an index lives, from the command line's choices.

    `--milvus-uri` implies `--store milvus`; the collection defaults to a name
    derived from the index directory's name (`index` → `index`).
    """
    store = store or ("milvus" if milvus_uri else "embedded")
    if store not in STORE_KINDS:
        raise InputError(f"unknown store {store!r}: use one of {', '.join(STORE_KINDS)}", "--store")
    if store == "embedded":
        if milvus_collection:
            raise InputError("--milvus-collection needs --milvus-uri (or --store milvus)")
        return IndexDirectory(index_dir)
    if not milvus_uri:
        raise InputError("--store milvus needs --milvus-uri: a Milvus server (http://HOST:19530) "
                         "or a Milvus Lite file (PATH.db)")
    from indexer.milvus_backend import MilvusIndex, collection_name

    return MilvusIndex(milvus_uri, milvus_collection or collection_name(str(index_dir)))


class EmbeddedBackend:
    """One generation folder: `store.sqlite` (one read-only connection per thread) and `vectors.faiss`."""

    def __init__(self, generation: Generation) -> None:
        import threading

        self.generation = generation
        self.vectors = VectorIndex.load(generation.vectors_path)
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()
        # BM25 from postings in memory: FTS5's scores, ≈ 14× faster; None (FTS5 scores) past its budget
        self.keyword_matrix = KeywordMatrix.from_store(self.store)
        # the chunk ids of recent filters: a generation never changes, and an API key's filter comes back
        # with every request of that key (evaluating metadata in SQLite costs ≈ 1 µs per chunk)
        self._allowed: OrderedDict[Filters, np.ndarray] = OrderedDict()

    @property
    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.generation.store_path, readonly=True)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()

    def dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        return self.vectors.search(vector[None, :], depth, self.allowed(filters))[0]

    def keyword(self, query: KeywordQuery, depth: int, filters: Filters,
                grams_weight: float) -> list[tuple[int, float]]:
        if query.match is None:
            return []
        if self.keyword_matrix is not None:
            found = self.keyword_matrix.search(query.words, query.grams, depth, grams_weight, self.allowed(filters),
                                               own_statistics=filters.access)
            if found is not None:
                return found
        return self.store.keyword_search(query.match, depth, filters, grams_weight)

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """The ids of the chunks that pass the filters (None: no filter), cached up to ALLOWED_CACHE_BYTES."""
        if filters.empty:
            return None
        with self._lock:
            found = self._allowed.get(filters)
            if found is not None:
                self._allowed.move_to_end(filters)
                return found
        found = self.store.filtered_chunk_ids(filters)
        with self._lock:
            self._allowed[filters] = found
            while sum(a.nbytes for a in self._allowed.values()) > ALLOWED_CACHE_BYTES and len(self._allowed) > 1:
                self._allowed.popitem(last=False)
        return found

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        return self.store.chunks(ids)

    def chunk_documents(self, ids: Sequence[int]) -> dict[int, str]:
        return self.store.chunk_documents(ids)

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        return self.store.documents_brief(doc_ids)

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        return self.store.chunk_originals(chunks)

    def document(self, doc_id: str) -> StoredDocument | None:
        return self.store.document(doc_id)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def vector_count(self) -> int:
        return self.vectors.size

    def document_frequency(self, column: str, term: str) -> int:
        match = f'{{{column}}} : "{term.replace(chr(34), chr(34) * 2)}"'
        row = self.store.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", [match]).fetchone()
        return int(row[0])

    def stored_vectors(self, ids: Sequence[int]) -> np.ndarray | None:
        try:
            return np.stack([self.vectors.index.reconstruct(int(i)) for i in ids]) if len(ids) else None
        except RuntimeError:  # an index type that cannot give vectors back
            return None


class EmbeddedWriter:
    """A new generation folder, written in a workspace beside the live one and published by rename."""

    def __init__(self, directory: IndexDirectory, name: str, previous: Generation | None, dimension: int,
                 index_type: str = "auto", vector_params: VectorParams | None = None) -> None:
        self.directory, self.name = directory, name
        self.index_type, self.vector_params = index_type, vector_params or VectorParams()
        self.workspace = directory.workspace(name)
        self.store: Store | None = None
        try:
            if previous is not None:
                shutil.copyfile(previous.store_path, self.workspace / STORE_FILE)
                self.vectors = VectorIndex.load(previous.vectors_path)
            else:
                self.vectors = VectorIndex.create(dimension)
            self.store = Store(self.workspace / STORE_FILE)
        except BaseException:
            self.abort()
            raise

    def _open(self) -> Store:
        if self.store is None:
            raise RuntimeError(f"generation {self.name} is already finished")
        return self.store

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        return self._open().document_hashes()

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        self.vectors.remove(np.array(self._open().delete_documents(doc_ids), dtype=np.int64))

    def add_document(self, doc: StoredDocument) -> None:
        self._open().add_document(doc)

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        return self._open().add_chunks(rows, fts)

    def add_entities(self, chunk_ids: Sequence[int], entities: Sequence[dict[str, list[str]]]) -> None:
        self._open().add_entities(chunk_ids, entities)

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors.add(ids, vectors)

    def finish(self) -> tuple[dict[str, int], dict[str, object]]:
        store = self._open()
        try:
            self.vectors = self.vectors.converted(self.index_type, self.vector_params)
            store.commit()
            counts = store.counts()
        finally:
            store.close()
            self.store = None
        self.vectors.save(self.workspace / VECTORS_FILE)
        return counts, self.vectors.settings()

    def publish(self, manifest: dict[str, Any]) -> Generation:
        return self.directory.publish(self.workspace, self.name, manifest)

    def abort(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        shutil.rmtree(self.workspace, ignore_errors=True)

