"""Building an index: load → normalize → chunk → embed → write a generation.

Incremental by default: documents are keyed by source and content hash, so an
unchanged document keeps its chunks and vectors, a changed one is re-chunked
and re-embedded, and a document whose file is gone leaves the index. The new
generation is written beside the live one and published atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.chunking import Chunk, ChunkSettings, chunk_document
from indexer.embedders import Embedder
from indexer.fusion import FusionSettings
from indexer.generations import STORE_FILE, VECTORS_FILE, Generation, IndexDirectory
from indexer.keywords import KeywordTokenizer
from indexer.loaders import LoadFailure, SourceDocument, load_corpus
from indexer.normalize import normalize
from indexer.store import Store, StoredDocument, encode_offsets
from indexer.vectors import VectorIndex, VectorParams

NORMALIZER = {"name": "nfkc-clusters", "version": 1}
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BuildOptions:
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    rebuild: bool = False
    batch_size: int = 64
    follow_symlinks: bool = False
    max_file_bytes: int = 10_000_000
    index_type: str = "auto"      # flat | hnsw | ivfpq | auto (by size; see indexer.vectors.choose_type)
    vector_params: VectorParams = field(default_factory=VectorParams)


@dataclass(frozen=True)
class BuildReport:
    generation: str
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks_embedded: int
    documents: int
    chunks: int
    failures: tuple[LoadFailure, ...]
    seconds: float
    embed_seconds: float
    rebuilt: bool


@dataclass
class _Plan:
    add: list[SourceDocument]
    changed_keys: set[str]
    delete_ids: list[str]
    unchanged: int


def document_id(key: str) -> str:
    """A stable id for a document: the same source gives the same id in every generation."""
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def content_hash(doc: SourceDocument) -> str:
    payload = json.dumps([doc.title, doc.text, doc.metadata], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def embedding_text(title: str, chunk_text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its title as context, then its text."""
    title = normalize(title).text.strip()
    if not title or chunk_text.startswith(title) or chunk_text.lstrip("# ").startswith(title):
        return chunk_text
    return f"{title}\n{chunk_text}"


def _compatible(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    keys = ("model", "normalizer", "chunker", "keywords")
    return all(previous.get(k) == current.get(k) for k in keys)


def _plan(docs: Sequence[SourceDocument], stored: dict[str, tuple[str, str]]) -> _Plan:
    add, changed, unchanged = [], set(), 0
    seen = set()
    for doc in docs:
        seen.add(doc.key)
        old = stored.get(doc.key)
        if old is not None and old[1] == content_hash(doc):
            unchanged += 1
            continue
        if old is not None:
            changed.add(doc.key)
        add.append(doc)
    delete = [doc_id for key, (doc_id, _) in stored.items() if key not in seen or key in changed]
    return _Plan(add=add, changed_keys=changed, delete_ids=delete, unchanged=unchanged)


class IndexBuilder:
    """Writes one new generation of an index directory."""

    def __init__(
        self,
        directory: IndexDirectory,
        embedder: Embedder,
        keywords: KeywordTokenizer,
        options: BuildOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.directory = directory
        self.embedder = embedder
        self.keywords = keywords
        self.options = options or BuildOptions()
        self.progress = progress or (lambda stage, done, total: None)

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.embedder.describe(),
            "normalizer": NORMALIZER,
            "chunker": {**self.options.chunking.as_dict(), "title_context": True},
            "keywords": self.keywords.settings,
        }

    def build(self, corpus: Path) -> BuildReport:
        started = time.perf_counter()
        docs, failures = load_corpus(
            corpus, follow_symlinks=self.options.follow_symlinks, max_bytes=self.options.max_file_bytes
        )
        with self.directory.build_lock():
            self.directory.clean_stale()
            name = self.directory.next_name()
            workspace = self.directory.workspace(name)
            try:
                report = self._build_into(workspace, name, docs, failures, started)
            except BaseException:
                shutil.rmtree(workspace, ignore_errors=True)
                raise
        return report

    def _previous(self) -> Generation | None:
        if self.options.rebuild or self.directory.current_name() is None:
            return None
        previous = self.directory.current()
        return previous if _compatible(previous.manifest, self.settings()) else None

    def _build_into(
        self, workspace: Path, name: str, docs: list[SourceDocument],
        failures: list[LoadFailure], started: float,
    ) -> BuildReport:
        previous = self._previous()
        if previous is not None:
            shutil.copyfile(previous.store_path, workspace / STORE_FILE)
            vectors = VectorIndex.load(previous.vectors_path)
        else:
            vectors = VectorIndex.create(self.embedder.dimension)
        store = Store(workspace / STORE_FILE)
        try:
            plan = _plan(docs, store.document_hashes())
            vectors.remove(np.array(store.delete_documents(plan.delete_ids), dtype=np.int64))
            embedded, embed_seconds = self._add(store, vectors, plan.add)
            vectors = vectors.converted(self.options.index_type, self.options.vector_params)
            store.commit()
            counts = store.counts()
        finally:
            store.close()
        vectors.save(workspace / VECTORS_FILE)
        seconds = time.perf_counter() - started
        manifest = self._manifest(counts, vectors, plan, embedded, seconds)
        self.directory.publish(workspace, name, manifest)
        return BuildReport(
            generation=name, added=len(plan.add) - len(plan.changed_keys),
            changed=len(plan.changed_keys),
            removed=len(plan.delete_ids) - len(plan.changed_keys), unchanged=plan.unchanged,
            chunks_embedded=embedded, documents=counts["documents"], chunks=counts["chunks"],
            failures=tuple(failures), seconds=seconds, embed_seconds=embed_seconds,
            rebuilt=previous is None,
        )

    def _add(self, store: Store, vectors: VectorIndex, docs: list[SourceDocument]) -> tuple[int, float]:
        """Chunk, keyword-index and embed new documents; returns (chunks embedded, seconds embedding)."""
        texts: list[str] = []
        ids: list[int] = []
        for done, doc in enumerate(docs, 1):
            doc_texts, doc_ids = self._store_document(store, doc)
            texts += doc_texts
            ids += doc_ids
            self.progress("chunking", done, len(docs))
        started = time.perf_counter()
        batch = self.options.batch_size * 8
        for offset in range(0, len(texts), batch):
            part = texts[offset : offset + batch]
            embedded = self.embedder.embed(part, batch_size=self.options.batch_size)
            vectors.add(np.array(ids[offset : offset + batch], dtype=np.int64), embedded)
            self.progress("embedding", offset + len(part), len(texts))
        return len(texts), time.perf_counter() - started

    def _store_document(self, store: Store, doc: SourceDocument) -> tuple[list[str], list[int]]:
        norm = normalize(doc.text)
        chunks = chunk_document(doc, self.embedder, self.options.chunking, norm=norm)
        doc_id = document_id(doc.key)
        store.add_document(StoredDocument(
            id=doc_id, key=doc.key, source=doc.source, title=doc.title, text=doc.text,
            language=str(doc.metadata.get("language", "en")), metadata=dict(doc.metadata),
            content_hash=content_hash(doc),
        ))
        texts = [embedding_text(doc.title, c.text) for c in chunks]
        rows = [_chunk_row(doc_id, i, c, norm.starts, norm.ends, doc.text) for i, c in enumerate(chunks)]
        ids = store.add_chunks(rows, [self.keywords.index_text(t) for t in texts])
        return texts, ids

    def _manifest(
        self, counts: dict[str, int], vectors: VectorIndex, plan: _Plan, embedded: int, seconds: float
    ) -> dict[str, Any]:
        from indexer import versions

        return {
            **self.settings(),
            "fusion": FusionSettings().as_dict(),
            "vectors": vectors.settings(),
            "counts": counts,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "last_build": {"added_or_changed": len(plan.add), "removed": len(plan.delete_ids),
                           "unchanged": plan.unchanged, "chunks_embedded": embedded,
                           "seconds": round(seconds, 3)},
        }


def _chunk_row(
    doc_id: str, ordinal: int, chunk: Chunk, starts: Sequence[int], ends: Sequence[int], original: str
) -> dict[str, Any]:
    return {
        "doc_id": doc_id, "ordinal": ordinal, "start": chunk.start, "end": chunk.end,
        "text": chunk.text, "section": chunk.section, "tokens": chunk.tokens,
        "offsets": encode_offsets(chunk.text, original, starts[chunk.norm_start : chunk.norm_end],
                                  ends[chunk.norm_start : chunk.norm_end]),
    }
