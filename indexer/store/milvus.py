"""Milvus as the search store: one collection pair per generation, an alias as the live pointer.

    alias NAME ─────────────► NAME__gen_000007__chunks   id, vector, chunk metadata, keyword terms
                              NAME__gen_000007__docs     original text in parts, document metadata,
                                                         and the generation's manifest (row `__manifest__`)

Where the pointer lives (the choice this module makes): in Milvus itself. A
build writes a complete new collection pair, then publishes it by switching
the alias with one `alter_alias` call — atomic on the Milvus side — so every
`yomitoki serve --milvus-uri` process, on any machine and with no shared disk,
finds the same live generation by asking Milvus; the manifest travels with the
generation in its documents collection. Servers are stateless: they hold a
client and a `Searcher`, nothing else. The local `--index` directory is only
used to derive the default collection name.

Keyword search: Milvus Lite's analyzers are `standard` and `jieba` only, so
nothing in Milvus understands Japanese. Each term of our own `KeywordTokenizer`
(Sudachi words, English stems, CJK bigrams) is therefore written as a 16-hex
digit hash (`term_token`): a single alphanumeric word that the `standard`
analyzer keeps as it is, on Lite and on a Milvus server alike. Two VARCHAR
fields (`words`, `grams`) feed two BM25 functions; a keyword query searches
both and sums `words + grams_weight × grams` (a `WeightedRanker` without score
normalization), as FTS5's column-weighted bm25 does. Milvus's BM25 statistics
(row count, IDF, average length) count the whole collection; a search under an
API key's access filter scores instead with the statistics of the rows the
filter lets through (`indexer.store.visible_bm25`), so hidden documents shift nothing.

Vectors are searched with inner product (they are L2-normalized): FLAT below
`AUTO_HNSW_FROM` chunks, HNSW above, searched with `ef ≥ depth` because highly
selective filters lose recall at a low `ef`. Milvus Lite builds its HNSW
index in the background after `flush`; until then its searches are exact.

Limits: a build takes no lock against another build of the same collection on
another machine (Milvus Lite itself admits one process per file); generations
are full copies, so an incremental build copies the carried-over rows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from indexer.errors import InputError
from indexer.store.ann import VectorParams
from indexer.store.base import KeywordQuery
from indexer.store.generations import (
    KEEP_GENERATIONS,
    BuildInProgressError,
    CorruptIndexError,
    Generation,
    IndexNotFoundError,
    IndexStateError,
    next_generation_name,
)
from indexer.store.manifest import Counts, Manifest, MilvusStoreEntry, VectorsEntry, decode_manifest, encode_manifest
from indexer.store.sqlite import EntityFilterError, Filters, StoredChunk, StoredDocument
from indexer.store.vectors import AUTO_HNSW_FROM, KEEP, kept_type
from indexer.store.visible_bm25 import MILVUS, ColumnTerms, Formula, Statistics, score
from indexer.store.where import milvus_prefix, to_milvus

MANIFEST_ID = "__manifest__"
TEXT_PART_CHARS = 16_000      # at most 64,000 bytes of UTF-8: under VARCHAR's 65,535
MAX_VARCHAR = 65_535
MAX_TAGS = 256
MAX_TAG_BYTES = 1_024
INSERT_BATCH = 256
PLACEHOLDER_DIM = 2           # the documents collection's vector: Milvus wants one in every collection
ID_BATCH = 1_000
VISIBLE_CACHED = 64           # filters whose visible rows' figures a generation keeps (API keys' filters)
_SEPARATORS = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")  # what FTS5's `ascii` tokenizer splits on
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KEPT_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?")  # names collection_name leaves as they are
MAX_COLLECTION_NAME = 255     # Milvus's limit on a collection (or alias) name
_LONGEST_SUFFIX = "__gen_000001__chunks"
MAX_PREFIX = MAX_COLLECTION_NAME - len(_LONGEST_SUFFIX)
_GENERATION = re.compile(r"^(?P<prefix>.+)__(?P<gen>gen_\d{6})__(?P<part>chunks|docs)$")
_CHUNK_FIELDS = ["id", "doc_id", "ordinal", "start", "end", "text", "section", "tokens", "offsets"]
_CHUNK_COPY_FIELDS = [*_CHUNK_FIELDS, "source", "language", "tags", "vector", "words", "grams"]
_DOC_FIELDS = ["id", "doc_id", "part", "text", "key", "source", "title", "language", "metadata", "content_hash"]

NO_ENTITIES = ("an index kept in Milvus holds no entities: entity filters and facets need an embedded index "
               "built with `yomitoki index --entities` (without --milvus-uri)")

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class MilvusUnavailableError(IndexStateError):
    """pymilvus is not installed, or the Milvus URI cannot be opened."""


def connect(uri: str) -> Any:
    """One MilvusClient per URI and process (a Milvus Lite file admits one process; clients are thread-safe)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise MilvusUnavailableError("the Milvus backend needs pymilvus and milvus-lite: "
                                     "pip install 'yomitoki[scale]'") from exc
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            with _lite_failures() as logged:
                try:
                    client = _clients[uri] = MilvusClient(uri=uri)
                except Exception as exc:  # pymilvus raises its own exception types
                    raise MilvusUnavailableError(_open_failure(uri, exc, logged)) from exc
        return client


@contextlib.contextmanager
def _lite_failures() -> Iterator[list[BaseException]]:
    """What milvus_lite logs while a file opens, kept off stderr: it logs the reason with a traceback, then
    pymilvus raises only "Open local milvus failed", so the reason is ours to tell."""
    logger = logging.getLogger("milvus_lite.server_manager")
    handler = _Kept()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield handler.errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class _Kept(logging.Handler):
    """A log handler that keeps the exceptions of the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


def _open_failure(uri: str, exc: Exception, logged: Sequence[BaseException]) -> str:
    """Why `uri` could not be opened; the one-process rule only when another process holds the Lite file."""
    locked = [e for e in (*logged, exc) if type(e).__name__ == "DataDirLockedError" or "holds the lock" in str(e)]
    if locked:
        return (f"cannot open the Milvus Lite file {uri}: {locked[0]}. A Milvus Lite file admits one process "
                "at a time: stop the other one (a server or a build), or keep the index on a Milvus server")
    return f"cannot open Milvus at {uri!r}: {logged[-1] if logged else exc}"


def is_lite(uri: str) -> bool:
    """Whether `uri` names a Milvus Lite file (a path) rather than a Milvus server (http://HOST:PORT)."""
    return "://" not in uri


def release(uri: str) -> None:
    """Close this process's client of `uri`; for a Milvus Lite file, also free the file for other processes."""
    with _clients_lock:
        client = _clients.pop(uri, None)
    if client is not None:
        client.close()
    if is_lite(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def lite_endpoint(uri: str) -> str:
    """The gRPC address (http://127.0.0.1:PORT) at which this process serves a Milvus Lite file to others."""
    connect(uri)
    from milvus_lite.server_manager import server_manager_instance

    found = server_manager_instance.start_and_get_uri(uri)
    if found is None:
        raise MilvusUnavailableError(f"Milvus Lite could not serve {uri!r}")
    return found


def collection_name(name: str) -> str:
    """The Milvus name of an index, from `--milvus-collection` or the index's folder name.

    A name Milvus takes (a letter, then letters, digits and _) is kept as it is.
    Any other is cleaned into one and given 8 hex digits of its sha256, so that
    names the cleaning would merge (議事録2024 and 報告書2024, my-docs and my_docs)
    stay apart: building one must never replace another's documents.
    """
    given = Path(str(name)).name or str(name)
    if _KEPT_NAME.fullmatch(given):
        chosen = given
    else:
        cleaned = re.sub(r"[^A-Za-z0-9_]", "_", given).strip("_")
        base = cleaned if cleaned[:1].isalpha() else f"yomitoki_{cleaned}".rstrip("_")
        digest = hashlib.sha256(given.encode()).hexdigest()[:8]
        chosen = f"{base[: MAX_PREFIX - len(digest) - 1]}_{digest}"
    if len(chosen) > MAX_PREFIX:
        raise InputError(f"{given[:40]}… is {len(chosen)} characters: Milvus names the index's collections "
                         f"NAME{_LONGEST_SUFFIX} and allows {MAX_COLLECTION_NAME} characters, so give a name "
                         f"of at most {MAX_PREFIX}", field="--milvus-collection")
    return chosen


def term_token(term: str) -> str:
    """A keyword term as one word that Milvus's `standard` analyzer keeps intact."""
    return hashlib.blake2b(term.encode(), digest_size=8).hexdigest()


def _tokens(text: str) -> list[str]:
    return [term_token(t.translate(_ASCII_LOWER)) for t in _SEPARATORS.split(text) if t]


def hashed_terms(column: str, limit: int = MAX_VARCHAR) -> str:
    """A space-joined keyword column (KeywordTokenizer output) as hashed tokens, split as FTS5 `ascii` splits.

    A column longer than a VARCHAR holds (about 3,800 terms) keeps its first terms.
    """
    return " ".join(_tokens(column)[: limit // 17])


def query_terms(terms: Sequence[str]) -> str:
    """A query's unique terms of one column, hashed as `hashed_terms` hashes the indexed ones."""
    return " ".join(dict.fromkeys(token for term in terms for token in _tokens(term)))


def string_literal(value: str) -> str:
    """A Milvus filter-expression string literal holding `value` exactly."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def filter_expression(filters: Filters) -> str:
    """The Milvus filter for source prefix, language, tags and a `where` filter ("" when there is none)."""
    if filters.entities:
        raise EntityFilterError(NO_ENTITIES, field="filters.entities")
    clauses = [] if filters.expression is None else [to_milvus(filters.expression)]
    if filters.source is not None:
        clauses.append(milvus_prefix("source", filters.source))
    if filters.language is not None:
        clauses.append(f"language == {string_literal(filters.language)}")
    if filters.tags:
        clauses.append(f"array_contains_any(tags, [{', '.join(string_literal(t) for t in filters.tags)}])")
    return " and ".join(clauses)


def _in(field: str, values: Sequence[Any]) -> str:
    items = ", ".join(string_literal(v) if isinstance(v, str) else str(int(v)) for v in values)
    return f"{field} in [{items}]"


def _encode_offsets(blob: bytes | None, where: str) -> str:
    text = "" if blob is None else base64.b64encode(zlib.compress(blob)).decode()
    if len(text) > MAX_VARCHAR:
        raise ValueError(f"{where}: the chunk's offset map takes {len(text):,} characters, more than Milvus's "
                         f"VARCHAR holds ({MAX_VARCHAR:,}): index with a smaller --max-tokens")
    return text


def _decode_offsets(text: str) -> np.ndarray | None:
    if not text:
        return None
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.int32).reshape(2, -1)


def _collections(prefix: str, gen: str) -> tuple[str, str]:
    return f"{prefix}__{gen}__chunks", f"{prefix}__{gen}__docs"


def _gen_key(name: str) -> str:
    return name.replace("-", "_")


def _text_parts(text: str) -> list[str]:
    return [text[i : i + TEXT_PART_CHARS] for i in range(0, len(text), TEXT_PART_CHARS)] or [""]


class MilvusIndex:
    """The generations of one index in Milvus; the live one is the collection its alias points to."""

    def __init__(self, uri: str, collection: str) -> None:
        self.uri = uri
        self.prefix = collection_name(collection)
        self.client = connect(uri)
        self._build = threading.Lock()
        self.path = Path(f"{uri}#{self.prefix}")  # for messages that name "the index"

    def __repr__(self) -> str:
        return f"MilvusIndex({self.uri!r}, {self.prefix!r})"

    @property
    def originals(self) -> Path | None:
        """Where the files of documents written over HTTP are kept: beside a Milvus Lite file
        (FILE.originals/COLLECTION/); none for a Milvus server, whose serve processes share no disk."""
        return Path(f"{self.uri}.originals") / self.prefix if is_lite(self.uri) else None

    def generations(self) -> list[str]:
        found = set()
        for name in self.client.list_collections():
            match = _GENERATION.match(name)
            if match and match["prefix"] == self.prefix:
                found.add(match["gen"].replace("_", "-"))
        return sorted(found)

    def current_name(self) -> str | None:
        if self.prefix not in self.client.list_aliases().get("aliases", []):
            return None  # nothing published yet
        target = self.client.describe_alias(self.prefix)["collection_name"]
        match = _GENERATION.match(target)
        return match["gen"].replace("_", "-") if match else None

    def current(self) -> Generation:
        name = self.current_name()
        if name is None:
            raise IndexNotFoundError(
                f"no index {self.prefix!r} in Milvus at {self.uri}: build one with "
                f"`yomitoki index CORPUS --milvus-uri {self.uri} --milvus-collection {self.prefix}`")
        return self.open(name)

    def open(self, name: str) -> Generation:
        chunks, docs = _collections(self.prefix, _gen_key(name))
        try:
            ensure_loaded(self.client, chunks, docs)
            rows = self.client.query(docs, filter=f'doc_id == "{MANIFEST_ID}"', output_fields=["part", "text"])
        except Exception as exc:
            raise CorruptIndexError(f"generation {name} of {self.prefix!r} cannot be read from Milvus at "
                                    f"{self.uri}: {exc}") from exc
        if not rows:
            raise CorruptIndexError(f"generation {name} of {self.prefix!r} in Milvus has no manifest: rebuild "
                                    f"with `yomitoki index … --milvus-uri {self.uri} --rebuild`")
        text = "".join(r["text"] for r in sorted(rows, key=lambda r: r["part"]))
        try:
            manifest = decode_manifest(text)
        except msgspec.DecodeError as exc:
            raise CorruptIndexError(f"the manifest of generation {name} of {self.prefix!r} in Milvus cannot be "
                                    f"read ({exc}): rebuild with `yomitoki index … --milvus-uri {self.uri} "
                                    "--rebuild`") from exc
        if not isinstance(manifest.store, MilvusStoreEntry):
            raise CorruptIndexError(f"the manifest of generation {name} of {self.prefix!r} in Milvus names no "
                                    "Milvus store: rebuild with `yomitoki index … --rebuild`")
        # this reader's address of the same Milvus
        manifest = msgspec.structs.replace(manifest, store=msgspec.structs.replace(manifest.store, uri=self.uri))
        return Generation(name=name, path=Path(f"{self.uri}#{self.prefix}") / name, manifest=manifest)

    def next_name(self) -> str:
        return next_generation_name(self.generations())

    @contextlib.contextmanager
    def build_lock(self) -> Iterator[None]:
        """One build at a time in this process (Milvus Lite admits one process per file)."""
        if not self._build.acquire(blocking=False):
            raise BuildInProgressError(f"another build of {self.prefix!r} is running in this process")
        try:
            yield
        finally:
            self._build.release()

    def clean_stale(self) -> list[str]:
        """Drop collections of generations newer than the live one: leftovers of interrupted builds."""
        current = self.current_name() or ""
        stale = [name for name in self.generations() if name > current]
        for name in stale:
            self._drop(name)
        return stale

    def _drop(self, name: str) -> None:
        for collection in _collections(self.prefix, _gen_key(name)):
            if self.client.has_collection(collection):
                self.client.drop_collection(collection)

    def writer(self, name: str, previous: Generation | None, dimension: int, index_type: str = "auto",
               vector_params: VectorParams | None = None) -> MilvusWriter:
        return MilvusWriter(self, name, previous, dimension, index_type, vector_params or VectorParams())

    def publish(self, name: str, manifest: Manifest) -> Generation:
        """Store the manifest, then switch the alias to the new generation (atomic) and prune old ones."""
        chunks, docs = _collections(self.prefix, _gen_key(name))
        text = encode_manifest(manifest).decode()
        rows = [_doc_row(MANIFEST_ID, i, part)
                for i, part in enumerate(_text_parts(text))]
        self.client.insert(docs, rows)
        self.client.flush(docs)
        if self.current_name() is None:
            with contextlib.suppress(Exception):  # an alias left from a dropped collection
                self.client.drop_alias(self.prefix)
            self.client.create_alias(chunks, self.prefix)
        else:
            self.client.alter_alias(chunks, self.prefix)
        for old in self.generations()[:-KEEP_GENERATIONS]:
            if old != name:
                self._drop(old)
        return self.open(name)

    def drop(self) -> None:
        """Remove this index from Milvus: its alias and every generation."""
        with contextlib.suppress(Exception):
            self.client.drop_alias(self.prefix)
        for name in self.generations():
            self._drop(name)


def _doc_row(doc_id: str, part: int, text: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"{doc_id}:{part:05d}", "doc_id": doc_id, "part": part, "text": text,
            "key": fields.get("key", ""), "source": fields.get("source", ""), "title": fields.get("title", ""),
            "language": fields.get("language", ""), "metadata": fields.get("metadata", {}),
            "content_hash": fields.get("content_hash", ""), "placeholder": [0.0] * PLACEHOLDER_DIM}


def _schemas(client: Any, dimension: int) -> tuple[Any, Any]:
    from pymilvus import DataType, Function, FunctionType

    chunks = client.create_schema(auto_id=False, description="yomitoki chunks")
    chunks.add_field("id", DataType.INT64, is_primary=True)
    chunks.add_field("doc_id", DataType.VARCHAR, max_length=64)
    for field in ("ordinal", "start", "end", "tokens"):
        chunks.add_field(field, DataType.INT64)
    chunks.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    chunks.add_field("section", DataType.VARCHAR, max_length=MAX_VARCHAR)
    chunks.add_field("offsets", DataType.VARCHAR, max_length=MAX_VARCHAR)
    chunks.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR)
    chunks.add_field("language", DataType.VARCHAR, max_length=64)
    chunks.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_TAGS,
                     max_length=MAX_TAG_BYTES)
    chunks.add_field("metadata", DataType.JSON)  # the document's, for `where` filters before ranking
    chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    for column in ("words", "grams"):
        chunks.add_field(column, DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                         enable_match=True, analyzer_params={"tokenizer": "standard"})
        chunks.add_field(f"{column}_sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_function(Function(name=f"{column}_bm25", function_type=FunctionType.BM25,
                                     input_field_names=[column], output_field_names=[f"{column}_sparse"]))
    docs = client.create_schema(auto_id=False, description="yomitoki documents")
    docs.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
    docs.add_field("doc_id", DataType.VARCHAR, max_length=64)
    docs.add_field("part", DataType.INT64)
    docs.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    for field in ("key", "source", "title"):
        docs.add_field(field, DataType.VARCHAR, max_length=MAX_VARCHAR)
    docs.add_field("language", DataType.VARCHAR, max_length=64)
    docs.add_field("content_hash", DataType.VARCHAR, max_length=128)
    docs.add_field("metadata", DataType.JSON)
    docs.add_field("placeholder", DataType.FLOAT_VECTOR, dim=PLACEHOLDER_DIM)
    return chunks, docs


def _tags(metadata: Mapping[str, object]) -> list[str]:
    """A document's tags as the chunk rows keep them: strings, each once."""
    tags = metadata.get("tags") or []
    return list(dict.fromkeys(str(t) for t in tags)) if isinstance(tags, list) else []


def _iterate(client: Any, collection: str, expr: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    iterator = client.query_iterator(collection, batch_size=1000, filter=expr, output_fields=fields)
    try:
        while batch := iterator.next():
            yield batch
    finally:
        iterator.close()


class MilvusWriter:
    """A new generation's collection pair, filled from a copy of the previous one, then published."""

    def __init__(self, index: MilvusIndex, name: str, previous: Generation | None, dimension: int,
                 index_type: str, params: VectorParams) -> None:
        if index_type == KEEP:  # the previous generation's type when it was asked for, else by size
            built = previous.manifest.vectors if previous is not None else None
            index_type = kept_type(built.type, built.count or 0) if built is not None else "auto"
        if index_type not in ("auto", "flat", "hnsw"):
            raise ValueError(f"index type {index_type!r} is not offered on Milvus: use auto, flat or hnsw")
        self.index, self.name, self.client = index, name, index.client
        self.dimension, self.index_type, self.params = dimension, index_type, params
        self.chunks, self.docs = _collections(index.prefix, _gen_key(name))
        index._drop(name)
        chunk_schema, doc_schema = _schemas(self.client, dimension)
        self.client.create_collection(self.chunks, schema=chunk_schema)
        self.client.create_collection(self.docs, schema=doc_schema)
        # id -> (source, language, tags, metadata) for chunk rows
        self._docs: dict[str, tuple[str, str, list[str], dict[str, Any]]] = {}
        self._pending: dict[int, dict[str, Any]] = {}            # chunk rows waiting for their vectors
        self._doc_rows: list[dict[str, Any]] = []
        self.next_id = 1
        if previous is not None:
            self._copy(previous)

    def _copy(self, previous: Generation) -> None:
        store = _milvus_entry(previous)
        if store.dimension != self.dimension:
            raise ValueError(f"generation {previous.name} holds {store.dimension}-d vectors, "
                             f"the model gives {self.dimension}: rebuild with --rebuild")
        expr = f'doc_id != "{MANIFEST_ID}"'
        metadata: dict[str, Any] = {}
        for batch in _iterate(self.client, store.documents, expr, [*_DOC_FIELDS, "placeholder"]):
            metadata.update((row["doc_id"], row["metadata"] or {}) for row in batch if row["part"] == 0)
            self.client.insert(self.docs, batch)
        # chunk rows take their document's metadata afresh: generations from before `where` filters lack it
        for batch in _iterate(self.client, store.chunks, "id >= 0", _CHUNK_COPY_FIELDS):
            self.client.insert(self.chunks, [{**row, "metadata": metadata.get(row["doc_id"], {})} for row in batch])
        self.next_id = store.next_chunk_id

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        self.client.flush(self.docs)
        self._load(self.docs, "placeholder")
        expr = f'part == 0 and doc_id != "{MANIFEST_ID}"'
        found = {}
        for batch in _iterate(self.client, self.docs, expr, ["doc_id", "key", "content_hash"]):
            found.update({row["key"]: (row["doc_id"], row["content_hash"]) for row in batch})
        return found

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        for offset in range(0, len(doc_ids), ID_BATCH):
            expr = _in("doc_id", doc_ids[offset : offset + ID_BATCH])
            self.client.delete(self.chunks, filter=expr)
            self.client.delete(self.docs, filter=expr)

    def refusal(self, metadata: Mapping[str, object]) -> str | None:
        tags = _tags(metadata)
        longest = max((len(t.encode()) for t in tags), default=0)
        if len(tags) <= MAX_TAGS and longest <= MAX_TAG_BYTES:
            return None
        return (f"Milvus holds at most {MAX_TAGS} tags of at most {MAX_TAG_BYTES:,} bytes each per document; this "
                f"one has {len(tags)}, the longest of {longest:,} bytes: use fewer or shorter tags, or the embedded "
                "store")

    def add_document(self, doc: StoredDocument) -> None:
        if (refused := self.refusal(doc.metadata)) is not None:
            raise ValueError(f"{doc.source}: {refused}")
        tags = _tags(doc.metadata)
        self._docs[doc.id] = (doc.source, doc.language, tags, doc.metadata)
        for part, text in enumerate(_text_parts(doc.text)):
            extra = {} if part else {"key": doc.key, "source": doc.source, "title": doc.title,
                                     "language": doc.language, "metadata": doc.metadata,
                                     "content_hash": doc.content_hash}
            self._doc_rows.append(_doc_row(doc.id, part, text, **extra))
        if len(self._doc_rows) >= INSERT_BATCH:
            self._flush_docs()

    def _flush_docs(self) -> None:
        if self._doc_rows:
            self.client.insert(self.docs, self._doc_rows)
            self._doc_rows = []

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        ids = []
        for row, (words, grams) in zip(rows, fts, strict=True):
            chunk_id, self.next_id = self.next_id, self.next_id + 1
            source, language, tags, metadata = self._docs[row["doc_id"]]
            self._pending[chunk_id] = {
                "id": chunk_id, "doc_id": row["doc_id"], "ordinal": row["ordinal"], "start": row["start"],
                "end": row["end"], "tokens": row["tokens"], "text": row["text"],
                "section": json.dumps(list(row["section"]), ensure_ascii=False),
                "offsets": _encode_offsets(row["offsets"], source), "source": source, "language": language,
                "tags": tags, "metadata": metadata, "words": hashed_terms(words), "grams": hashed_terms(grams),
            }
            ids.append(chunk_id)
        return ids

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        rows = []
        for chunk_id, vector in zip(np.asarray(ids).tolist(), np.asarray(vectors, dtype=np.float32), strict=True):
            row = self._pending.pop(int(chunk_id), None)
            if row is None:
                raise ValueError(f"chunk {chunk_id} has no row: add its chunk before its vector")
            rows.append({**row, "vector": vector.tolist()})
        for offset in range(0, len(rows), INSERT_BATCH):
            self.client.insert(self.chunks, rows[offset : offset + INSERT_BATCH])

    def finish(self) -> tuple[Counts, VectorsEntry]:
        if self._pending:
            raise ValueError(f"{len(self._pending)} chunks were added without vectors")
        self._flush_docs()
        self.client.flush(self.chunks)
        self.client.flush(self.docs)
        counts = _count(self.client, self.chunks, ""), _count(self.client, self.docs, "")
        kind = self.index_type if self.index_type != "auto" else (
            "hnsw" if counts[0] >= AUTO_HNSW_FROM else "flat")
        self._index_vectors(kind)
        documents = _count(self.client, self.docs, f'part == 0 and doc_id != "{MANIFEST_ID}"')
        settings = VectorsEntry(type=kind, metric="inner_product", backend="milvus", count=counts[0])
        if kind == "hnsw":
            settings = msgspec.structs.replace(settings, m=self.params.hnsw_m,
                                               ef_construction=self.params.ef_construction,
                                               ef_search=self.params.ef_search)
        return Counts(documents=documents, chunks=counts[0]), settings

    def _index_vectors(self, kind: str) -> None:
        params = self.client.prepare_index_params()
        if kind == "hnsw":
            params.add_index("vector", index_type="HNSW", metric_type="IP",
                             params={"M": self.params.hnsw_m, "efConstruction": self.params.ef_construction})
        else:
            params.add_index("vector", index_type="FLAT", metric_type="IP")
        for column in ("words", "grams"):
            params.add_index(f"{column}_sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.release_collection(self.chunks)
        self.client.create_index(self.chunks, params)
        self.client.load_collection(self.chunks)
        self._load(self.docs, "placeholder")

    def _load(self, collection: str, field: str) -> None:
        if not self.client.list_indexes(collection):
            params = self.client.prepare_index_params()
            params.add_index(field, index_type="FLAT", metric_type="IP")
            self.client.create_index(collection, params)
        self.client.load_collection(collection)

    def publish(self, manifest: Manifest) -> Generation:
        store = MilvusStoreEntry(uri=self.index.uri, collection=self.index.prefix, chunks=self.chunks,
                           documents=self.docs, next_chunk_id=self.next_id, dimension=self.dimension)
        return self.index.publish(self.name, msgspec.structs.replace(manifest, store=store))

    def abort(self) -> None:
        self.index._drop(self.name)


def _milvus_entry(generation: Generation) -> MilvusStoreEntry:
    """The Milvus collections of a generation kept in Milvus."""
    store = generation.manifest.store
    if not isinstance(store, MilvusStoreEntry):
        raise CorruptIndexError(f"generation {generation.name} is not kept in Milvus (its store is "
                                f"{generation.manifest.store_kind!r})")
    return store


def ensure_loaded(client: Any, *collections: str) -> None:
    """Load collections that are not: Milvus Lite forgets what was loaded when its file is reopened."""
    from pymilvus.client.types import LoadState

    for collection in collections:
        if client.get_load_state(collection)["state"] != LoadState.Loaded:
            client.load_collection(collection)


def _count(client: Any, collection: str, expr: str) -> int:
    rows = client.query(collection, filter=expr, output_fields=["count(*)"])
    return int(rows[0]["count(*)"]) if rows else 0


class MilvusStore:
    """Searching one generation's collection pair; thread-safe (one gRPC client per URI)."""

    def __init__(self, client: Any, chunks: str, docs: str, vectors: VectorsEntry | None = None) -> None:
        self.client, self.chunks_collection, self.docs_collection = client, chunks, docs
        ef_search = vectors.ef_search if vectors is not None else None
        self.ef_search = ef_search if ef_search is not None else VectorParams().ef_search
        self.hnsw = vectors is not None and vectors.type == "hnsw"
        self._visible: dict[str, tuple[Statistics, set[str]]] = {}  # filter expression -> its rows' figures
        self._visible_lock = threading.Lock()
        self._formula: Formula | None = None

    @classmethod
    def for_generation(cls, generation: Generation) -> MilvusStore:
        store = _milvus_entry(generation)
        client = connect(store.uri)
        ensure_loaded(client, store.chunks, store.documents)
        return cls(client, store.chunks, store.documents, generation.manifest.vectors)

    def close(self) -> None:
        """Nothing to close: the client is shared by every generation of its URI (see `release`)."""

    def dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.hnsw:
            params["params"] = {"ef": max(self.ef_search, depth)}
        found = self.client.search(self.chunks_collection, data=[np.asarray(vector, dtype=np.float32).tolist()],
                                   anns_field="vector", limit=depth, filter=filter_expression(filters),
                                   search_params=params, output_fields=["id"])
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def keyword(self, query: KeywordQuery, depth: int, filters: Filters,
                grams_weight: float) -> list[tuple[int, float]]:
        expr = filter_expression(filters)
        sides = [(column, query_terms(terms), weight)
                 for column, terms, weight in (("words", query.words, 1.0), ("grams", query.grams, grams_weight))
                 if query_terms(terms) and weight > 0]
        if not sides:
            return []
        if filters.statistics is not None:
            return self._keyword_within(sides, depth, expr)
        if len(sides) == 1:
            column, text, weight = sides[0]
            found = self.client.search(self.chunks_collection, data=[text], anns_field=f"{column}_sparse",
                                       limit=depth, filter=expr, search_params={"metric_type": "BM25"},
                                       output_fields=["id"])
            # Milvus Lite reports BM25 as a negated distance, a server as the score: both mean abs()
            return [(int(hit["id"]), weight * abs(float(hit["distance"]))) for hit in found[0]]
        from pymilvus import AnnSearchRequest, WeightedRanker

        requests = [AnnSearchRequest(data=[text], anns_field=f"{column}_sparse", param={"metric_type": "BM25"},
                                     limit=depth, expr=expr or None) for column, text, _ in sides]
        found = self.client.hybrid_search(self.chunks_collection, requests,
                                          WeightedRanker(*(w for _, _, w in sides), norm_score=False),
                                          limit=depth, output_fields=["id"])
        return [(int(hit["id"]), abs(float(hit["distance"]))) for hit in found[0]]

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        out: dict[int, StoredChunk] = {}
        for offset in range(0, len(ids), ID_BATCH):
            part = ids[offset : offset + ID_BATCH]
            rows = self.client.query(self.chunks_collection, filter=_in("id", part), output_fields=_CHUNK_FIELDS)
            for row in rows:
                out[int(row["id"])] = StoredChunk(
                    id=int(row["id"]), doc_id=row["doc_id"], ordinal=int(row["ordinal"]), start=int(row["start"]),
                    end=int(row["end"]), text=row["text"], section=tuple(json.loads(row["section"] or "[]")),
                    tokens=int(row["tokens"]), offsets=_decode_offsets(row["offsets"]))
        return out

    def chunk_documents(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for offset in range(0, len(ids), ID_BATCH):
            rows = self.client.query(self.chunks_collection, filter=_in("id", ids[offset : offset + ID_BATCH]),
                                     output_fields=["id", "doc_id"])
            out.update((int(row["id"]), row["doc_id"]) for row in rows)
        return out

    def document_chunk_ids(self, doc_id: str) -> list[int]:
        rows = self.client.query(self.chunks_collection, filter=f"doc_id == {string_literal(doc_id)}",
                                 output_fields=["id", "ordinal"])
        return [int(row["id"]) for row in sorted(rows, key=lambda row: int(row["ordinal"]))]

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for offset in range(0, len(ids), ID_BATCH):
            rows = self.client.query(self.chunks_collection, filter=_in("id", ids[offset : offset + ID_BATCH]),
                                     output_fields=["id", "text"])
            out.update((int(row["id"]), row["text"]) for row in rows)
        return out

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        if not doc_ids:
            return {}
        rows = self.client.query(self.docs_collection, filter=_in("id", [f"{d}:00000" for d in doc_ids]),
                                 output_fields=["doc_id", "title", "source", "language", "metadata", "key"])
        return {r["doc_id"]: (r["title"], r["source"], r["language"], dict(r["metadata"] or {}), r["key"])
                for r in rows}

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        wanted = sorted({f"{c.doc_id}:{p:05d}" for c in chunks
                         for p in range(c.start // TEXT_PART_CHARS, max(c.start, c.end - 1) // TEXT_PART_CHARS + 1)})
        texts = {}
        if wanted:
            rows = self.client.query(self.docs_collection, filter=_in("id", wanted), output_fields=["id", "text"])
            texts = {r["id"]: r["text"] for r in rows}
        out = {}
        for c in chunks:
            first = c.start // TEXT_PART_CHARS
            last = max(c.start, c.end - 1) // TEXT_PART_CHARS
            joined = "".join(texts.get(f"{c.doc_id}:{p:05d}", "") for p in range(first, last + 1))
            base = first * TEXT_PART_CHARS
            out[c.id] = joined[c.start - base : c.end - base]
        return out

    def document(self, doc_id: str) -> StoredDocument | None:
        if doc_id == MANIFEST_ID:
            return None
        rows = self.client.query(self.docs_collection, filter=f"doc_id == {string_literal(doc_id)}",
                                 output_fields=_DOC_FIELDS)
        if not rows:
            return None
        rows.sort(key=lambda r: r["part"])
        head = rows[0]
        return StoredDocument(id=doc_id, key=head["key"], source=head["source"], title=head["title"],
                              text="".join(r["text"] for r in rows), language=head["language"],
                              metadata=dict(head["metadata"] or {}), content_hash=head["content_hash"])

    def _keyword_within(self, sides: list[tuple[str, str, float]], depth: int, expr: str) -> list[tuple[int, float]]:
        """BM25 computed as if the rows outside `expr` were not in the collection (an API key's view)."""
        statistics, _ = self._visible_rows(expr)
        columns = [ColumnTerms(tuple(text.split()), weight,
                               {token: self._matching(expr, column, token) for token in text.split()})
                   for column, text, weight in sides]
        matches = " or ".join(f"TEXT_MATCH({column}, {string_literal(text)})" for column, text, _ in sides)
        fields = [column for column, _, _ in sides]
        candidates = ((int(row["id"]), [row[field].split() for field in fields])
                      for batch in _iterate(self.client, self.chunks_collection, f"({expr}) and ({matches})",
                                            ["id", *fields])
                      for row in batch)
        formula = self._bm25_formula()
        statistics = Statistics(statistics.rows, tuple(statistics.tokens[("words", "grams").index(field)]
                                                       for field in fields))
        return score(candidates, columns, statistics, formula, depth)

    def _visible_rows(self, expr: str) -> tuple[Statistics, set[str]]:
        """The rows a filter lets through: their count and tokens per column (words, grams), and their documents;
        read once per filter (a generation never changes)."""
        with self._visible_lock:
            found = self._visible.get(expr)
        if found is not None:
            return found
        rows, tokens, documents = 0, [0, 0], set()
        for batch in _iterate(self.client, self.chunks_collection, expr or "id >= 0", ["doc_id", "words", "grams"]):
            rows += len(batch)
            for row in batch:
                documents.add(row["doc_id"])
                tokens[0] += len(row["words"].split())
                tokens[1] += len(row["grams"].split())
        found = (Statistics(rows, (tokens[0], tokens[1])), documents)
        with self._visible_lock:
            self._visible[expr] = found
            while len(self._visible) > VISIBLE_CACHED:
                self._visible.pop(next(iter(self._visible)))
        return found

    def _matching(self, expr: str, column: str, token: str) -> int:
        match = f"TEXT_MATCH({column}, {string_literal(token)})"
        return _count(self.client, self.chunks_collection, f"({expr}) and {match}" if expr else match)

    def _bm25_formula(self) -> Formula:
        """Milvus's BM25 parameters for this collection: those its index states, else Milvus's defaults."""
        if self._formula is None:
            stated = self.client.describe_index(self.chunks_collection, "words_sparse") or {}
            self._formula = Formula(k1=float(stated.get("bm25_k1", MILVUS.k1)), b=float(stated.get("bm25_b", MILVUS.b)),
                                    columns_apart=True)
        return self._formula

    def counts(self, filters: Filters | None = None) -> dict[str, int]:
        if filters is None or filters.empty:
            return {"documents": _count(self.client, self.docs_collection,
                                        f'part == 0 and doc_id != "{MANIFEST_ID}"'),
                    "chunks": _count(self.client, self.chunks_collection, "")}
        statistics, documents = self._visible_rows(filter_expression(filters))
        return {"documents": len(documents), "chunks": statistics.rows}

    def vector_count(self, filters: Filters | None = None) -> int:
        return _count(self.client, self.chunks_collection, filter_expression(filters) if filters else "")

    def keyword_vocabulary(self, column: str = "words") -> dict[str, int] | None:
        return None  # terms are stored as hashes (`term_token`): kana in queries is not converted

    def document_frequency(self, column: str, term: str, filters: Filters | None = None) -> int:
        if column not in ("words", "grams"):
            raise ValueError(f"unknown keyword column {column!r}: use words or grams")
        return self._matching(filter_expression(filters) if filters else "", column,
                              term_token(term.translate(_ASCII_LOWER)))

    def stored_vectors(self, ids: Sequence[int]) -> np.ndarray | None:
        if not len(ids):
            return None
        rows = self.client.query(self.chunks_collection, filter=_in("id", ids), output_fields=["id", "vector"])
        found = {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}
        if len(found) != len(set(int(i) for i in ids)):
            return None
        return np.stack([found[int(i)] for i in ids])
