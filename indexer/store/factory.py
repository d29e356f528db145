"""Opening a search store, for reading or for a build: the one factory over both kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.errors import InputError
from indexer.store.ann import VectorParams
from indexer.store.base import STORE_KINDS, BuildTarget, IndexWriter, SearchStore, store_kind
from indexer.store.embedded import EmbeddedStore, EmbeddedWriter
from indexer.store.generations import Generation, IndexDirectory
from indexer.store.milvus import MilvusIndex, MilvusStore, collection_name


def open_writer(target: BuildTarget, name: str, previous: Generation | None, dimension: int,
                index_type: str = "auto", vector_params: VectorParams | None = None) -> IndexWriter:
    """The writer of a new generation `name` in `target`, starting from a copy of `previous`."""
    if isinstance(target, IndexDirectory):
        return EmbeddedWriter(target, name, previous, dimension, index_type, vector_params)
    return target.writer(name, previous, dimension, index_type, vector_params)  # type: ignore[attr-defined]


def open_store(generation: Generation) -> SearchStore:
    """The backend that serves a generation, from its manifest's `store` entry."""
    kind = store_kind(generation)
    if kind == "embedded":
        return EmbeddedStore(generation)
    if kind == "milvus":
        return MilvusStore.for_generation(generation)
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
        if milvus_uri:
            raise InputError("--store embedded keeps the index in --index; --milvus-uri would put it in Milvus: "
                             "give one of them", "--milvus-uri")
        if milvus_collection:
            raise InputError("--milvus-collection needs --milvus-uri (or --store milvus)")
        return IndexDirectory(index_dir)
    if not milvus_uri:
        raise InputError("--store milvus needs --milvus-uri: a Milvus server (http://HOST:19530) "
                         "or a Milvus Lite file (PATH.db)")
    return MilvusIndex(milvus_uri, milvus_collection or collection_name(str(index_dir)))
