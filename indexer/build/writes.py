"""Writing single documents into a live index: the path behind `PUT` and `DELETE /documents/{key}`.

Every write goes through `IndexBuilder.apply` (the incremental build) and publishes a new
generation. Writers never build at the same time: one worker thread takes every write
waiting for it and applies them together, so writes arriving close together share one
generation, and each caller learns the generation that holds its write. A write that
fails changes nothing: the generation it was building is thrown away.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.build.builder import BuildOptions, BuildReport, IndexBuilder, document_id
from indexer.embed.base import Embedder
from indexer.errors import InputError
from indexer.ner.index_entities import ChunkEntities
from indexer.store.generations import IndexDirectory
from indexer.store.manifest import Manifest
from indexer.text.chunking import ChunkSettings
from indexer.text.keywords import load_keyword_tokenizer
from indexer.text.loaders import (
    MANY_DOCUMENT_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TITLE_MAX_CHARS,
    SourceDocument,
    finite,
    given_metadata,
    load_file,
)

MAX_KEY_CHARS = 512
MAX_TEXT_CHARS = 1_000_000  # a document written over HTTP, as JSON text or as the text of an uploaded file
_BAD_KEY = re.compile(r"[\x00-\x1f\x7f/]")


class WriteError(InputError):
    """A write that cannot be made as asked (a bad key, an unreadable upload)."""


def check_key(key: str) -> str:
    """A document key as given, or a WriteError saying what is wrong with it."""
    if not key or key != key.strip():
        raise WriteError("key must be non-empty without leading or trailing spaces")
    if len(key) > MAX_KEY_CHARS:
        raise WriteError(f"key is longer than {MAX_KEY_CHARS} characters")
    if _BAD_KEY.search(key):
        raise WriteError("key must not contain '/' or control characters")
    return key


def uploaded_document(key: str, filename: str, content: bytes, title: str | None = None,
                      metadata: dict[str, Any] | None = None) -> SourceDocument:
    """The document in an uploaded file of any supported format but those of many documents (one per key)."""
    if title is not None and len(title) > TITLE_MAX_CHARS:  # as in a JSON write; a title leads every chunk
        raise WriteError(f"title: {len(title):,} characters, at most {TITLE_MAX_CHARS}")
    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES or suffix in MANY_DOCUMENT_SUFFIXES:
        kinds = ", ".join(s for s in SUPPORTED_SUFFIXES if s not in MANY_DOCUMENT_SUFFIXES)
        raise WriteError(f"unsupported file type {suffix or '(none)'!r} of {filename!r} (supported: {kinds})")
    with tempfile.TemporaryDirectory(prefix="yomitoki-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(content)
        try:
            [doc] = load_file(path, path)
        except Exception as exc:  # LoadError, and anything a damaged file makes a parser raise
            reason = getattr(exc, "reason", None) or f"{exc.__class__.__name__}: {exc}"
            # a parser's message may quote the scratch copy's path: the user knows the file by its name
            raise WriteError(f"{filename}: {reason.replace(str(path), filename)}") from exc
    if len(doc.text) > MAX_TEXT_CHARS:
        raise WriteError(f"{filename}: its text holds {len(doc.text):,} characters; a document written over HTTP "
                         f"holds at most {MAX_TEXT_CHARS:,} (index a bigger file from a folder with `yomitoki index`)")
    merged = finite({**doc.metadata, **given_metadata(metadata), "format": doc.metadata.get("format"),
                     "filename": filename})
    return dataclasses.replace(doc, key=key, source=key, title=(title or doc.title).strip() or doc.title,
                               metadata=merged)


def builder_for(directory: IndexDirectory | Any, embedder: Embedder) -> IndexBuilder:
    """A builder with the chunking, keyword and entity settings the index's current generation was built with."""
    manifest = directory.current().manifest
    keywords = load_keyword_tokenizer(manifest.keywords)
    entities = ChunkEntities.recorded(manifest.entities, getattr(directory, "path", None)) \
        if manifest.entities is not None else None
    return IndexBuilder(directory, embedder, keywords, BuildOptions(chunking=manifest_chunking(manifest)),
                        entities=entities)


def manifest_chunking(manifest: Manifest) -> ChunkSettings:
    """The chunk sizes a generation was built with (the defaults for one that did not record them)."""
    chunker = manifest.chunker
    return ChunkSettings(chunker.max_tokens, chunker.overlap) if chunker is not None else ChunkSettings()


@dataclass(frozen=True)
class _Write:
    upsert: SourceDocument | None = None
    delete: str | None = None
    original: bytes | None = None   # an uploaded PDF or Word file, kept to serve as it was


def original_path(folder: Path, doc_id: str, source_format: object) -> Path:
    """Where an uploaded document's original file is kept."""
    return folder / f"{doc_id}.{source_format}"


class DocumentWriter:
    """Applies writes one build at a time; the writes that wait together share one generation."""

    def __init__(self, directory: IndexDirectory | Any, embedder: Embedder, originals: Path | None) -> None:
        self.directory = directory
        self.embedder = embedder
        self.originals = originals  # the folder where uploaded PDF and Word files are kept (None: not kept)
        self._lock = threading.Lock()
        self._pending: list[tuple[_Write, Future[BuildReport]]] = []
        self._working = False

    def put(self, doc: SourceDocument, original: bytes | None = None) -> Future[BuildReport]:
        return self._submit(_Write(upsert=doc, original=original))

    def delete(self, key: str) -> Future[BuildReport]:
        return self._submit(_Write(delete=key))

    def _submit(self, write: _Write) -> Future[BuildReport]:
        future: Future[BuildReport] = Future()
        with self._lock:
            self._pending.append((write, future))
            start, self._working = not self._working, True
        if start:
            threading.Thread(target=self._work, name="yomitoki-writer", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._working = False
                    return
            try:
                report = self._apply([write for write, _ in batch])
            except BaseException as exc:  # every waiting caller hears of it; the worker goes on
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for _, future in batch:
                    future.set_result(report)

    def _apply(self, writes: list[_Write]) -> BuildReport:
        """One build for a batch: a later write to a key wins over an earlier one."""
        last: dict[str, _Write] = {}
        for write in writes:
            key = write.upsert.key if write.upsert is not None else str(write.delete)
            last.pop(key, None)
            last[key] = write
        upserts = [w.upsert for w in last.values() if w.upsert is not None]
        deletes = [key for key, w in last.items() if w.upsert is None]
        report = builder_for(self.directory, self.embedder).apply(upserts, deletes)
        self._keep_originals(last.values())
        return report

    def _keep_originals(self, writes: Iterable[_Write]) -> None:
        """After a write: keep each uploaded file. The build removed those of replaced or deleted documents
        (`IndexBuilder._drop_originals`); an unchanged document's file, of the same format, is written over."""
        for write in writes:
            if write.upsert is not None and write.original is not None and self.originals is not None:
                self.originals.mkdir(parents=True, exist_ok=True)
                path = original_path(self.originals, document_id(write.upsert.key), write.upsert.metadata.get("format"))
                path.write_bytes(write.original)

