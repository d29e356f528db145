"""A generation's manifest: what it was built with and what it holds, as typed structs.

    manifest.json (a generation folder) or the `__manifest__` row (Milvus)
      model        ModelEntry     the embedding model and the runtime it ran on
      normalizer   NormalizerEntry
      chunker      ChunkerEntry
      keywords     {…}            the keyword tokenizer's settings (their shape is the tokenizer's,
                                  checked by `indexer.text.keywords.load_keyword_tokenizer`)
      entities     EntitiesEntry  only when entities were extracted (`index --entities`)
      fusion       FusionEntry    read by `indexer.search.fusion.FusionSettings.from_entry`
      vectors      VectorsEntry   the vector index type and its parameters
      counts       Counts
      corpus, created, versions, last_build
      store        StoreEntry     where the generation lives: MilvusStoreEntry, or absent: embedded
      format_version, generation, files   added when an embedded generation is published

Written by the builder (`indexer.build.builder`) and published by the store
(`IndexDirectory.publish`, `MilvusIndex.publish`); read once, into a
`Generation`, by `IndexDirectory.open` and `MilvusIndex.open`.

The JSON keeps the shape earlier versions wrote. An entry absent from an older
index reads as None or its default (no `store`: embedded; no `backend` in
`model`: built before runtimes were recorded), and a default is left out
when writing, so absent stays absent. Keys this version does not know (an
index written by a newer one) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec


class _Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Config of every manifest struct (inherited; `frozen` repeated for mypy): unknown keys ignored,
    defaults not written."""


class ModelEntry(_Entry, frozen=True):
    """The embedding model, as `Embedder.describe()` tells it."""

    name: str
    family: str | None = None
    backend: str | None = None        # the runtime (torch, torch-bf16, onnx, onnx-int8, numpy); None: any
    source: str | None = None         # package, path or hub
    package: str | None = None
    revision: str | None = None       # a fingerprint of the model's files
    dimension: int | None = None
    max_tokens: int | None = None
    prompts: dict[str, str] | None = None  # {"query": "query: ", "passage": "passage: "} for e5

    @classmethod
    def described(cls, described: Mapping[str, Any]) -> ModelEntry:
        """The entry of an embedder's `describe()`."""
        return msgspec.convert(dict(described), cls)


class NormalizerEntry(_Entry, frozen=True):
    name: str
    version: int


class ChunkerEntry(_Entry, frozen=True):
    strategy: str
    max_tokens: int
    overlap: int
    title_context: bool = False       # chunk titles are embedded with their text
    version: int = 0                  # the chunker's (`ChunkSettings.version`); 0: built before it was recorded


class EntitiesEntry(_Entry, frozen=True):
    """The entity model whose entities the chunks carry."""

    model: str
    revision: str | None = None
    languages: list[str] | None = None  # None: every document's language


class FusionEntry(_Entry, frozen=True):
    """Fusion settings as recorded; None: not recorded (older indexes), the searcher's default applies."""

    method: str | None = None
    k: int | None = None
    keyword_weight: float | None = None
    coverage_floor: float | None = None
    candidates: int | None = None
    language_weights: dict[str, float] | None = None
    model_coverage: dict[str, float] | None = None


class VectorsEntry(_Entry, frozen=True):
    """The vector index: its type and parameters (FAISS in a folder, or Milvus)."""

    type: str                         # flat | hnsw | ivfpq
    metric: str
    faiss: str | None = None          # the FAISS version that wrote it (embedded)
    backend: str | None = None        # "milvus" for a Milvus generation
    count: int | None = None
    m: int | None = None              # HNSW
    ef_construction: int | None = None
    ef_search: int | None = None
    tombstones: int | None = None
    compact_ratio: float | None = None
    nlist: int | None = None          # IVF-PQ
    nprobe: int | None = None
    pq_bytes: int | None = None
    pq_bits: int | None = None
    rescore: int | None = None
    bytes_per_vector_in_memory: int | None = None
    full_vectors: str | None = None


class Counts(_Entry, frozen=True):
    documents: int
    chunks: int


class LastBuild(_Entry, frozen=True):
    added_or_changed: int
    removed: int
    unchanged: int
    chunks_embedded: int
    seconds: float


class EmbeddedStoreEntry(_Entry, frozen=True, tag_field="kind", tag="embedded"):
    """FAISS + SQLite in the generation's folder; what no `store` entry means too (none is written)."""

    kind: ClassVar[str] = "embedded"


class MilvusStoreEntry(_Entry, frozen=True, tag_field="kind", tag="milvus"):
    """A Milvus collection pair (`indexer.store.milvus`)."""

    kind: ClassVar[str] = "milvus"
    uri: str                          # the reader's address of the Milvus (`MilvusIndex.open` sets its own)
    collection: str                   # the alias: the index's name in Milvus
    chunks: str                       # the generation's chunk and document collections
    documents: str
    next_chunk_id: int
    dimension: int


StoreEntry = EmbeddedStoreEntry | MilvusStoreEntry  # told apart by `kind`; another kind does not decode


class FileEntry(_Entry, frozen=True):
    bytes: int
    sha256: str


class FormatStamp(msgspec.Struct):
    """Only the format version: read before the rest, which a newer format may shape differently."""

    format_version: Any = None


class Manifest(_Entry, frozen=True):
    model: ModelEntry
    normalizer: NormalizerEntry | None = None
    chunker: ChunkerEntry | None = None
    keywords: dict[str, Any] | None = None
    entities: EntitiesEntry | None = None
    fusion: FusionEntry | None = None
    vectors: VectorsEntry | None = None
    counts: Counts = msgspec.field(default_factory=lambda: Counts(documents=0, chunks=0))
    corpus: str | None = None         # the folder the documents were read from
    created: str | None = None
    versions: dict[str, str] = msgspec.field(default_factory=dict)
    last_build: LastBuild | None = None
    store: StoreEntry | None = None
    format_version: int | None = None
    generation: str | None = None
    files: dict[str, FileEntry] = msgspec.field(default_factory=dict)

    @property
    def store_kind(self) -> str:
        return self.store.kind if self.store is not None else EmbeddedStoreEntry.kind


def decode_manifest(data: bytes | str) -> Manifest:
    """A manifest from its JSON; raises msgspec.DecodeError (ValidationError naming the field)."""
    return msgspec.json.decode(data, type=Manifest)


def encode_manifest(manifest: Manifest, *, indent: int = 0) -> bytes:
    """The manifest's JSON (UTF-8, non-ASCII characters as they are)."""
    data = msgspec.json.encode(manifest)
    return msgspec.json.format(data, indent=indent) if indent else data


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain JSON values (for `yomitoki info`)."""
    return msgspec.to_builtins(manifest)  # type: ignore[no-any-return]
