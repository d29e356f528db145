"""Building an index: load → normalize → chunk → embed → write a generation.

Incremental by default: documents are keyed by source and content hash, so an
unchanged document keeps its chunks and vectors, a changed one is re-chunked
and re-embedded, and a document whose file is gone leaves the index. The new
generation is written beside the live one and published atomically.

Where it is written is the target's business (`indexer.store.factory.open_writer`):
a generation folder of an `IndexDirectory` (FAISS + SQLite), or a collection
pair in Milvus (`indexer.store.milvus.MilvusIndex`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from indexer.embed.base import Embedder, default_batch_size, embed_for, passage_room
from indexer.errors import ConflictError, InputError
from indexer.ner.index_entities import ChunkEntities
from indexer.search.fusion import FusionSettings
from indexer.store.ann import VectorParams
from indexer.store.base import BuildTarget, GenerationSource, IndexWriter
from indexer.store.factory import open_writer
from indexer.store.generations import CorruptIndexError, Generation, IndexDirectory, IndexWriteError
from indexer.store.identity import document_id
from indexer.store.manifest import (
    ChunkerEntry,
    Counts,
    LastBuild,
    Manifest,
    ModelEntry,
    NormalizerEntry,
    VectorsEntry,
)
from indexer.store.sqlite import StoredDocument, encode_offsets
from indexer.store.vectors import KEEP
from indexer.text import file_cache
from indexer.text.chunking import Chunk, ChunkSettings, chunk_document, embedding_text
from indexer.text.exclusions import corpus_exclusions
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import LoadFailure, SourceDocument, load_corpus
from indexer.text.normalize import normalize

log = logging.getLogger("yomitoki.index")
NORMALIZER = NormalizerEntry(name="nfkc-clusters", version=1)
Progress = Callable[[str, int, int], None]
EMBED_PART = 1024  # chunks embedded per call: sorted by length within it, and a progress step


@dataclass(frozen=True)
class BuildOptions:
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    rebuild: bool = False
    batch_size: int | None = None  # None: the backend's fastest (indexer.embed.base.BATCH_SIZES)
    follow_symlinks: bool = False
    exclude: tuple[str, ...] = ()  # .gitignore patterns, after the corpus's .yomitokiignore (text.exclusions)
    images: bool = False           # read image files (.png .jpg .tiff) by OCR, as scanned pages
    max_file_bytes: int = 10_000_000
    index_type: str = KEEP        # flat | hnsw | ivfpq | auto (by size) | keep (as before; indexer.store.vectors)
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
    entity_seconds: float = 0.0   # extracting entities (index --entities)
    entity_chunks: int = 0        # chunks entities were extracted from
    published: bool = True        # False: nothing changed, and `generation` is the live one, kept


@dataclass(frozen=True)
class PreparedDocument:
    """One document made ready to write: its row, chunk rows, keyword text and the texts to embed.

    `vectors` is None when the builder embeds (the local path) and holds one row
    per chunk when the document was prepared elsewhere (indexer.build.distributed).
    """

    document: StoredDocument
    chunks: list[dict[str, Any]]
    keyword_texts: list[tuple[str, str]]
    texts: list[str]
    vectors: np.ndarray | None = None


class Preparer(Protocol):
    """Prepares (loads, normalizes, chunks, keyword-tokenizes, embeds) documents away from the builder.

    It yields one `PreparedDocument`, with vectors, per given document, in the given order.
    """

    def prepare(self, docs: Sequence[SourceDocument]) -> Iterator[PreparedDocument]: ...


class VectorSink(Protocol):
    """Where the builder puts embedded chunks' vectors."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...


class _VectorsOf:
    """The vector side of an IndexWriter."""

    def __init__(self, writer: IndexWriter) -> None:
        self.add = writer.add_vectors


@dataclass
class _Plan:
    add: list[SourceDocument]
    changed_keys: set[str]
    delete_ids: list[str]
    unchanged: int


def content_hash(doc: SourceDocument) -> str:
    payload = json.dumps([doc.title, doc.text, doc.metadata], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_document(
    doc: SourceDocument, embedder: Embedder, keywords: KeywordTokenizer, chunking: ChunkSettings
) -> PreparedDocument:
    """Normalize, chunk and keyword-tokenize one document (not embedded yet)."""
    norm = normalize(doc.text)
    room = passage_room(embedder)
    if chunking.max_tokens > room:  # chunks must fit the window beside the special tokens and prefix
        chunking = replace(chunking, max_tokens=room, overlap=min(chunking.overlap, room // 2 - 1))
    chunks = chunk_document(doc, embedder, chunking, norm=norm)
    doc_id = document_id(doc.key)
    document = StoredDocument(
        id=doc_id, key=doc.key, source=doc.source, title=doc.title, text=doc.text,
        language=str(doc.metadata.get("language", "en")), metadata=dict(doc.metadata),
        content_hash=content_hash(doc),
    )
    texts = [embedding_text(doc.title, c.text) for c in chunks]
    rows = [_chunk_row(doc_id, i, c, norm.starts, norm.ends, doc.text) for i, c in enumerate(chunks)]
    return PreparedDocument(document, rows, [keywords.index_text(t) for t in texts], texts)


def _compatible(previous: Manifest, current: Manifest, *, chunker_version: bool = True) -> bool:
    """Whether a generation's documents can be carried over: built with the same model and settings (and,
    unless `chunker_version` is False, cut into chunks by the same version of the chunker)."""
    if not chunker_version and previous.chunker is not None and current.chunker is not None:
        current = msgspec.structs.replace(
            current, chunker=msgspec.structs.replace(current.chunker, version=previous.chunker.version))
    return all(getattr(previous, k) == getattr(current, k)
               for k in ("model", "normalizer", "chunker", "keywords", "entities"))


def originals_folder(target: BuildTarget | GenerationSource) -> Path | None:
    """Where the uploaded files of an index's documents are kept (`originals` of an index folder or a Milvus
    Lite file); None where no disk is shared (a Milvus server)."""
    folder = getattr(target, "originals", None)
    return Path(folder) if folder is not None else None


# What a generation holds and how it answers; the rest of a manifest (when, by which versions, the last
# build's counts, files) says how it came to be.
_CONTENT = ("model", "normalizer", "chunker", "keywords", "entities", "fusion", "vectors", "counts", "corpus")


def _same_index(previous: Manifest, current: Manifest) -> bool:
    """Whether a new generation would hold and serve exactly what the previous one does."""
    return all(getattr(previous, k) == getattr(current, k) for k in _CONTENT)


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


def _plan_changes(upserts: Sequence[SourceDocument], deletes: Sequence[str],
                  stored: dict[str, tuple[str, str]]) -> _Plan:
    """Add or replace `upserts`, remove the documents keyed `deletes`, keep every other document."""
    plan = _Plan(add=[], changed_keys=set(), delete_ids=[], unchanged=0)
    for doc in upserts:
        old = stored.get(doc.key)
        if old is not None and old[1] == content_hash(doc):
            plan.unchanged += 1
            continue
        if old is not None:
            plan.changed_keys.add(doc.key)
            plan.delete_ids.append(old[0])
        plan.add.append(doc)
    plan.delete_ids += [stored[key][0] for key in dict.fromkeys(deletes) if key in stored]
    return plan


class NoIndexError(ConflictError):
    """A change to an index that has no compatible generation to change."""


class IndexBuilder:
    """Writes one new generation of an index directory."""

    def __init__(
        self,
        directory: IndexDirectory | BuildTarget,
        embedder: Embedder,
        keywords: KeywordTokenizer,
        options: BuildOptions | None = None,
        progress: Progress | None = None,
        preparer: Preparer | None = None,
        entities: ChunkEntities | None = None,
    ) -> None:
        self.directory = directory
        self.embedder = embedder
        self.keywords = keywords
        self.options = options or BuildOptions()
        self.progress = progress or (lambda stage, done, total: None)
        self.preparer = preparer  # None: prepare here, in this process (see _add)
        self.corpus: Path | None = None  # the folder of the last build: its original files are served from there
        self.entities = entities  # None: no entities extracted
        self.entity_seconds = 0.0
        self.entity_chunks = 0

    def settings(self) -> Manifest:
        """The manifest's entries that say how documents are turned into chunks, terms and vectors."""
        chunking = self.options.chunking
        return Manifest(
            model=ModelEntry.described(self.embedder.describe()),
            normalizer=NORMALIZER,
            chunker=ChunkerEntry(strategy=chunking.strategy, max_tokens=chunking.max_tokens,
                                 overlap=chunking.overlap, title_context=True,
                                 version=chunking.version),
            keywords=dict(self.keywords.settings),
            entities=self.entities.settings() if self.entities is not None else None,
        )

    def build(self, corpus: Path) -> BuildReport:
        started = time.perf_counter()
        self.corpus = corpus.resolve()
        file_cache.limit_bytes()  # a bad YOMITOKI_CACHE_MB stops the build before anything is read
        docs, failures = load_corpus(
            corpus, follow_symlinks=self.options.follow_symlinks, max_bytes=self.options.max_file_bytes,
            exclusions=corpus_exclusions(corpus, self.options.exclude), images=self.options.images,
            progress=lambda done, total: self.progress("reading", done, total),
        )
        with self._writing(), self.directory.build_lock():
            self.directory.clean_stale()
            name = self.directory.next_name()
            try:
                previous = self._previous()
                writer = open_writer(self.directory, name, previous, self.embedder.dimension,
                                     self.options.index_type, self.options.vector_params)
            except CorruptIndexError as exc:  # the live generation is missing, or its files fail their checksums
                # a folder holds every document: build anew from it rather than carry the damage forward
                log.warning("%s; building %s anew from %s", exc, name, corpus)
                previous = None
                writer = open_writer(self.directory, name, None, self.embedder.dimension,
                                     self.options.index_type, self.options.vector_params)
            try:
                report = self._build_into(writer, name, previous, docs, failures, started)
            except BaseException:
                writer.abort()
                raise
        return report

    def apply(self, upserts: Sequence[SourceDocument], deletes: Sequence[str] = ()) -> BuildReport:
        """Add or replace some documents and remove others, keeping the rest: a new generation.

        The same incremental path as `build` (unchanged documents keep their vectors), for
        writes that come one document at a time (the server's `PUT /documents/{key}`).
        """
        started = time.perf_counter()
        with self._writing(), self.directory.build_lock():
            self.directory.clean_stale()
            # A write changes a few documents and keeps the rest as they are, so an index a later chunker
            # version would cut otherwise still takes writes; it keeps its version, and a folder build
            # chunks it anew (only a folder holds everything a document's chunks are cut from).
            previous = self._previous(chunker_version=False)
            if previous is None and self.directory.current_name() is None:
                raise NoIndexError("the index has no generation to change: build it first with `yomitoki index`")
            if previous is None:
                raise NoIndexError("the index's live generation was built with a model, chunking, keyword or entity "
                                   "settings this server does not have: rebuild it with `yomitoki index`, or serve "
                                   "it with the model it names")
            name = self.directory.next_name()
            writer = open_writer(self.directory, name, previous, self.embedder.dimension,
                                 self.options.index_type, self.options.vector_params)
            try:
                for doc in upserts:  # one document written at a time: refused outright, with the reason
                    if (reason := writer.refusal(doc.metadata)) is not None:
                        raise InputError(f"{doc.key}: {reason}")
                return self._build_into(writer, name, previous, [], [], started,
                                        plan=_plan_changes(upserts, deletes, writer.document_hashes()),
                                        chunker=previous.manifest.chunker)
            except BaseException:
                writer.abort()
                raise

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A full disk or a read-only folder as one clear error naming the file (the workspace is removed by
        the writer's abort, and the live generation never changes)."""
        try:
            yield
        except OSError as exc:
            where = getattr(self.directory, "path", None) or getattr(self.directory, "prefix", "its store")
            raise IndexWriteError.of(where, exc) from exc

    def _previous(self, *, chunker_version: bool = True) -> Generation | None:
        if self.options.rebuild or self.directory.current_name() is None:
            return None
        previous = self.directory.current()
        compatible = _compatible(previous.manifest, self.settings(), chunker_version=chunker_version)
        return previous if compatible else None

    def _build_into(
        self, writer: IndexWriter, name: str, previous: Generation | None, docs: list[SourceDocument],
        failures: list[LoadFailure], started: float, plan: _Plan | None = None, chunker: ChunkerEntry | None = None,
    ) -> BuildReport:
        """Apply the plan to a copy of the previous generation held by `writer` (any backend), then publish.

        `chunker`: the manifest's chunker entry when it is not this build's (a write keeps the previous one)."""
        refused = [LoadFailure(doc.source, reason) for doc in docs
                   if (reason := writer.refusal(doc.metadata)) is not None]
        if refused:  # a document the store cannot hold is skipped as an unreadable file is, before embedding
            skipped = {failure.path for failure in refused}
            docs, failures = [doc for doc in docs if doc.source not in skipped], [*failures, *refused]
        plan = plan if plan is not None else _plan(docs, writer.document_hashes())
        writer.delete_documents(plan.delete_ids)
        embedded, embed_seconds = self._add(writer, _VectorsOf(writer), plan.add)
        folder = originals_folder(self.directory)
        kept = {doc_id for doc_id, _ in writer.document_hashes().values()} \
            if previous is None and folder is not None and folder.is_dir() else None  # built anew: the ids it holds
        counts, vector_settings = writer.finish()
        seconds = time.perf_counter() - started
        manifest = self._manifest(counts, vector_settings, plan, embedded, seconds, chunker)
        if previous is not None and not plan.add and not plan.delete_ids and _same_index(previous.manifest, manifest):
            # Nothing changed: publishing would only push an older generation kept for rollback out of the
            # folder (a cron job or `--watch` runs often). The live generation stays, and the report names it.
            writer.abort()
            name, published = previous.name, False
        else:
            writer.publish(manifest)
            published = True
            self._drop_originals(plan.delete_ids, kept)
        return BuildReport(
            generation=name, added=len(plan.add) - len(plan.changed_keys),
            changed=len(plan.changed_keys),
            removed=len(plan.delete_ids) - len(plan.changed_keys), unchanged=plan.unchanged,
            chunks_embedded=embedded, documents=counts.documents, chunks=counts.chunks,
            failures=tuple(failures), seconds=seconds, embed_seconds=embed_seconds,
            rebuilt=previous is None, entity_seconds=self.entity_seconds, entity_chunks=self.entity_chunks,
            published=published,
        )

    def _drop_originals(self, doc_ids: Sequence[str], kept: set[str] | None = None) -> None:
        """Remove the uploaded files of documents a published build removed or replaced; for a build made
        anew (`kept`: the ids it holds), those of every document it does not hold."""
        folder = originals_folder(self.directory)
        if folder is None or not folder.is_dir():
            return
        dropped = set(doc_ids)
        for path in folder.iterdir():
            doc_id = path.name.split(".", 1)[0]
            if doc_id in dropped or (kept is not None and doc_id not in kept):
                path.unlink(missing_ok=True)

    def _add(self, store: IndexWriter, vectors: VectorSink, docs: list[SourceDocument]) -> tuple[int, float]:
        """Chunk, keyword-index and embed new documents; returns (chunks embedded, seconds embedding)."""
        if self.preparer is not None:
            if self.entities is not None:
                raise ValueError("entities are extracted by local builds only: leave out --ray or --entities")
            return self._add_prepared(store, vectors, docs, self.preparer)
        texts: list[str] = []
        ids: list[int] = []
        for done, doc in enumerate(docs, 1):
            doc_texts, doc_ids = self._store_document(store, doc)
            texts += doc_texts
            ids += doc_ids
            self.progress("chunking", done, len(docs))
        started = time.perf_counter()
        size = self.options.batch_size or default_batch_size(self.embedder)
        batch = max(EMBED_PART, size)  # texts handed to the embedder at once: it sorts them by length
        for offset in range(0, len(texts), batch):
            part = texts[offset : offset + batch]
            embedded = embed_for(self.embedder, part, "passage", batch_size=size)
            vectors.add(np.array(ids[offset : offset + batch], dtype=np.int64), embedded)
            self.progress("embedding", offset + len(part), len(texts))
        return len(texts), time.perf_counter() - started

    def _add_prepared(
        self, store: IndexWriter, vectors: VectorSink, docs: list[SourceDocument], preparer: Preparer
    ) -> tuple[int, float]:
        """Write documents prepared and embedded by `preparer`, in plan order (same ids as a local build)."""
        started = time.perf_counter()
        embedded = 0
        for done, prepared in enumerate(preparer.prepare(docs), 1):
            ids = self._write_prepared(store, prepared)
            if prepared.vectors is None or len(prepared.vectors) != len(ids):
                raise ValueError(f"{prepared.document.source}: the preparer returned no vector for some chunks")
            if ids:
                vectors.add(np.array(ids, dtype=np.int64), prepared.vectors)
            embedded += len(ids)
            self.progress("embedding", done, len(docs))
        return embedded, time.perf_counter() - started

    def _store_document(self, store: IndexWriter, doc: SourceDocument) -> tuple[list[str], list[int]]:
        prepared = prepare_document(doc, self.embedder, self.keywords, self.options.chunking)
        ids = self._write_prepared(store, prepared)
        if self.entities is not None and ids and self.entities.covers(prepared.document.language):
            self._store_entities(store, ids, [row["text"] for row in prepared.chunks])
        return prepared.texts, ids

    def _store_entities(self, store: IndexWriter, ids: list[int], texts: list[str]) -> None:
        add = getattr(store, "add_entities", None)
        if add is None:
            raise ValueError("this store does not keep entities: index --entities needs the embedded store")
        started = time.perf_counter()
        found = self.entities.extract(texts)  # type: ignore[union-attr]
        self.entity_seconds += time.perf_counter() - started
        self.entity_chunks += len(texts)
        add(ids, found)

    @staticmethod
    def _write_prepared(store: IndexWriter, prepared: PreparedDocument) -> list[int]:
        store.add_document(prepared.document)
        return store.add_chunks(prepared.chunks, prepared.keyword_texts)

    def _kept_corpus(self) -> str | None:
        """The corpus folder the current generation names, carried over by a write that is not a build."""
        name = self.directory.current_name()
        return self.directory.current().manifest.corpus if name is not None else None

    def _manifest(
        self, counts: Counts, vectors: VectorsEntry, plan: _Plan, embedded: int, seconds: float,
        chunker: ChunkerEntry | None = None,
    ) -> Manifest:
        from indexer import versions

        settings = self.settings()
        return msgspec.structs.replace(
            settings,
            chunker=chunker or settings.chunker,
            fusion=FusionSettings.for_model(self.embedder.coverage, str(self.embedder.describe()["name"])).as_entry(),
            vectors=vectors,
            counts=counts,
            corpus=str(self.corpus) if self.corpus is not None else self._kept_corpus(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=versions(),
            last_build=LastBuild(added_or_changed=len(plan.add), removed=len(plan.delete_ids),
                                 unchanged=plan.unchanged, chunks_embedded=embedded, seconds=round(seconds, 3)),
        )


def _chunk_row(
    doc_id: str, ordinal: int, chunk: Chunk, starts: Sequence[int], ends: Sequence[int], original: str
) -> dict[str, Any]:
    return {
        "doc_id": doc_id, "ordinal": ordinal, "start": chunk.start, "end": chunk.end,
        "text": chunk.text, "section": chunk.section, "tokens": chunk.tokens,
        "offsets": encode_offsets(chunk.text, original, starts[chunk.norm_start : chunk.norm_end],
                                  ends[chunk.norm_start : chunk.norm_end]),
    }
