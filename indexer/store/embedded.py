"""The embedded search store: one generation folder holding FAISS vectors and SQLite with FTS5."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from indexer.store.ann import VectorParams
from indexer.store.base import KeywordQuery
from indexer.store.bm25 import COLUMNS, KeywordMatrix, ascii_tokens, row_tokens
from indexer.store.generations import (
    STORE_FILE,
    VECTORS_FILE,
    Generation,
    IndexDirectory,
    check_files,
    copy_checked,
    hold,
)
from indexer.store.manifest import Counts, Manifest, VectorsEntry
from indexer.store.sqlite import Filters, SqliteStore, StoredChunk, StoredDocument
from indexer.store.vectors import KEEP, VectorIndex, kept_type
from indexer.store.visible_bm25 import FTS5, ColumnTerms, Statistics
from indexer.store.visible_bm25 import score as visible_score

ALLOWED_CACHE_BYTES = 64 * 2**20  # filtered chunk ids kept per generation: 8M ids
COUNTS_CACHED = 256                # counts and keyword statistics of filters kept per generation


class EmbeddedStore:
    """One generation folder: `store.sqlite` (one read-only connection per thread) and `vectors.faiss`."""

    def __init__(self, generation: Generation) -> None:
        import threading

        self.generation = generation
        self._held = hold(generation)  # a build's pruning leaves the folder alone while this store is open
        self.vectors = VectorIndex.load(generation.vectors_path)
        self._local = threading.local()
        self._stores: list[SqliteStore] = []
        self._lock = threading.Lock()
        # BM25 from postings in memory: FTS5's scores, ≈ 14× faster; None (FTS5 scores) past its budget
        self.keyword_matrix = KeywordMatrix.from_store(self.store)
        # the chunk ids of recent filters: a generation never changes, and an API key's filter comes back
        # with every request of that key (evaluating metadata in SQLite costs ≈ 1 µs per chunk)
        self._allowed: OrderedDict[Filters, np.ndarray] = OrderedDict()
        self._counts: OrderedDict[Filters, dict[str, int]] = OrderedDict()  # an API key's, for /health
        self._statistics: OrderedDict[Filters, Statistics] = OrderedDict()  # FTS5 scoring under a key's filter

    @property
    def store(self) -> SqliteStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = SqliteStore(self.generation.store_path, readonly=True)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
            if self._held is not None:
                self._held.close()  # and with it the shared lock
                self._held = None

    def dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        return self.vectors.search(vector[None, :], depth, self.allowed(filters))[0]

    def keyword(self, query: KeywordQuery, depth: int, filters: Filters,
                grams_weight: float) -> list[tuple[int, float]]:
        if query.match is None:
            return []
        if self.keyword_matrix is not None:
            found = self.keyword_matrix.search(query.words, query.grams, depth, grams_weight, self.allowed(filters),
                                               own_statistics=filters.statistics is not None)
            if found is not None:
                return found
        if filters.statistics is not None:  # FTS5 would count every row in BM25's statistics
            return self._keyword_within(query, depth, filters, grams_weight)
        return self.store.keyword_search(query.match, depth, filters, grams_weight)

    def keyword_vocabulary(self, column: str = "words") -> dict[str, int] | None:
        """The distinct terms of a keyword column and their document frequencies (`indexer.search.readings`)."""
        matrix = self.keyword_matrix
        if matrix is not None:
            number = COLUMNS.index(column)
            counts = np.diff(matrix.starts[number])
            return {term: int(counts[index]) for term, index in matrix.vocab[number].items()}
        return self.store.keyword_vocabulary(column)

    def _keyword_within(self, query: KeywordQuery, depth: int, filters: Filters,
                        grams_weight: float) -> list[tuple[int, float]]:
        """FTS5's BM25 as if only the chunks that pass `filters` were indexed (`indexer.store.visible_bm25`).

        A term FTS5 would match as a phrase of several tokens counts here as those tokens.
        """
        allowed = self.allowed(filters)
        inside = set(allowed.tolist()) if allowed is not None else None
        columns = []
        for column, terms, weight in (("words", query.words, 1.0), ("grams", query.grams, grams_weight)):
            tokens = tuple(dict.fromkeys(token for term in terms for token in ascii_tokens(term)))
            columns.append(ColumnTerms(tokens, weight, {t: self.document_frequency(column, t, filters)
                                                        for t in tokens}))
        rows = self.store.db.execute("SELECT rowid, words, grams FROM chunks_fts WHERE chunks_fts MATCH ?",
                                     [query.match])
        candidates = ((int(rowid), [row_tokens(words or ""), row_tokens(grams or "")])
                      for rowid, words, grams in rows if inside is None or rowid in inside)
        return visible_score(candidates, columns, self._visible_statistics(filters), FTS5, depth)

    def _visible_statistics(self, filters: Filters) -> Statistics:
        """The chunks that pass `filters`: how many, and their keyword tokens per column (read once per filter)."""
        with self._lock:
            found = self._statistics.get(filters)
        if found is None:
            allowed = self.allowed(filters)
            inside = set(allowed.tolist()) if allowed is not None else None
            rows, tokens = 0, [0, 0]
            for rowid, words, grams in self.store.db.execute("SELECT rowid, words, grams FROM chunks_fts"):
                if inside is None or rowid in inside:
                    rows += 1
                    tokens[0] += len(row_tokens(words or ""))
                    tokens[1] += len(row_tokens(grams or ""))
            found = Statistics(rows, (tokens[0], tokens[1]))
            with self._lock:
                self._statistics[filters] = found
                while len(self._statistics) > COUNTS_CACHED:
                    self._statistics.popitem(last=False)
        return found

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

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        return self.store.chunk_texts(ids)

    def document_chunk_ids(self, doc_id: str) -> list[int]:
        return self.store.document_chunk_ids(doc_id)

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        return self.store.documents_brief(doc_ids)

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        return self.store.chunk_originals(chunks)

    def document(self, doc_id: str) -> StoredDocument | None:
        return self.store.document(doc_id)

    def counts(self, filters: Filters | None = None) -> dict[str, int]:
        if filters is None or filters.empty:
            return self.store.counts()
        with self._lock:
            found = self._counts.get(filters)
        if found is None:
            found = self.store.counts(filters)
            with self._lock:
                self._counts[filters] = found
                while len(self._counts) > COUNTS_CACHED:
                    self._counts.popitem(last=False)
        return found

    def vector_count(self, filters: Filters | None = None) -> int:
        allowed = None if filters is None else self.allowed(filters)
        return self.vectors.size if allowed is None else len(allowed)

    def document_frequency(self, column: str, term: str, filters: Filters | None = None) -> int:
        allowed = None if filters is None else self.allowed(filters)
        if self.keyword_matrix is not None:
            found = self.keyword_matrix.document_frequency(column, term, allowed)
            if found is not None:
                return found
        match = f'{{{column}}} : "{term.replace(chr(34), chr(34) * 2)}"'
        if allowed is None:
            row = self.store.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", [match]).fetchone()
            return int(row[0])
        rows = self.store.db.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?", [match])
        return int(np.isin(np.fromiter((r[0] for r in rows), dtype=np.int64), allowed).sum())

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
        self.store: SqliteStore | None = None
        try:
            if previous is not None:
                copy_checked(previous, STORE_FILE, self.workspace / STORE_FILE)
                check_files(previous, skip=(STORE_FILE,))  # the vector index and its sidecars, read next
                self.vectors = VectorIndex.load(previous.vectors_path)
            else:
                self.vectors = VectorIndex.create(dimension)
            if self.index_type == KEEP:
                self.index_type = kept_type(self.vectors.kind, self.vectors.size) if previous else "auto"
            self.store = SqliteStore(self.workspace / STORE_FILE)
        except BaseException:
            self.abort()
            raise

    def _open(self) -> SqliteStore:
        if self.store is None:
            raise RuntimeError(f"generation {self.name} is already finished")
        return self.store

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        return self._open().document_hashes()

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        self.vectors.remove(np.array(self._open().delete_documents(doc_ids), dtype=np.int64))

    def refusal(self, metadata: Mapping[str, object]) -> str | None:
        return None  # SQLite holds any tags and metadata

    def add_document(self, doc: StoredDocument) -> None:
        self._open().add_document(doc)

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        return self._open().add_chunks(rows, fts)

    def add_entities(self, chunk_ids: Sequence[int], entities: Sequence[dict[str, list[str]]]) -> None:
        self._open().add_entities(chunk_ids, entities)

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors.add(ids, vectors)

    def finish(self) -> tuple[Counts, VectorsEntry]:
        store = self._open()
        try:
            self.vectors = self.vectors.converted(self.index_type, self.vector_params)
            store.commit()
            counts = Counts(**store.counts())
        finally:
            store.close()
            self.store = None
        self.vectors.save(self.workspace / VECTORS_FILE)
        return counts, self.vectors.settings()

    def publish(self, manifest: Manifest) -> Generation:
        return self.directory.publish(self.workspace, self.name, manifest)

    def abort(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        shutil.rmtree(self.workspace, ignore_errors=True)
