"""Opening an index for reading: the one way the server, every command and the benchmarks do it.

    open_index(index_dir | source, milvus_uri=…, model=…, threads=…) -> Searcher

The index describes itself: the embedding model *and the runtime it was built
with* (torch, torch-bf16, onnx, onnx-int8) come from the live generation's
manifest, and the store (FAISS + SQLite in the folder, or Milvus) from its
`store` entry, so an index opens the same way wherever it is read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.embed.base import Embedder
from indexer.embed.loading import load_manifest_embedder
from indexer.search.searcher import Searcher
from indexer.store.base import GenerationSource, is_embedded
from indexer.store.factory import open_target
from indexer.store.generations import Generation, IndexDirectory, IndexNotFoundError
from indexer.store.integrity import check_checksums, corrupt, ensure_openable
from indexer.store.milvus import MilvusIndex, is_lite


def index_source(index_dir: Path, milvus_uri: str | None = None,
                 milvus_collection: str | None = None) -> GenerationSource:
    """Where an index lives (its folder, or a Milvus alias), with its live generation checked to open.

    A truncated or overwritten file stops us here, before the slow model load.
    """
    source = read_target(index_dir, milvus_uri, milvus_collection)
    generation = source.current()
    if is_embedded(generation):
        ensure_openable(generation)
    return source


def read_target(index_dir: Path, milvus_uri: str | None = None,
                milvus_collection: str | None = None) -> IndexDirectory | MilvusIndex:
    """Where an index lives, to read it: a Milvus Lite path that does not exist is an error, for opening it
    would leave a new, empty database there (a mistyped path should not)."""
    if milvus_uri and is_lite(milvus_uri) and not Path(milvus_uri).exists():
        raise IndexNotFoundError(f"no Milvus Lite file at {milvus_uri}: build one with "
                                 f"`yomitoki index CORPUS --index {index_dir} --milvus-uri {milvus_uri}`")
    return open_target(index_dir, None, milvus_uri, milvus_collection)


def manifest_embedder(generation: Generation, *, model: str | None = None, threads: int | None = None) -> Embedder:
    """The embedder a generation was built with, on its runtime; `model` asks for another.

    (A `Searcher` refuses a model other than the index's, with a message saying what to run.)
    """
    return load_manifest_embedder(generation.manifest.model, threads=threads, override=model)


def open_searcher(generation: Generation, embedder: Embedder, *, verify: bool = False) -> Searcher:
    """A Searcher over a generation whose files passed the checks; CorruptIndexError names the file.

    `verify` also compares every file with its sha256 checksum (reads every byte).
    """
    if not is_embedded(generation):  # kept in Milvus: nothing on disk to check
        return Searcher(generation, embedder)
    ensure_openable(generation)
    if verify and (problems := check_checksums(generation)):
        raise corrupt(generation, problems)
    try:
        return Searcher(generation, embedder)
    except RuntimeError as exc:  # FAISS reports a damaged file as a RuntimeError
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise corrupt(generation, [f"{generation.vectors_path}: FAISS cannot load it ({reason})"]) from exc
    except sqlite3.DatabaseError as exc:  # damage inside the store that its size and header did not show
        raise corrupt(generation, [f"{generation.store_path}: SQLite cannot read it ({_first_line(exc)})"]) from exc


def _first_line(exc: Exception) -> str:
    """An error's message cut before the damaged bytes it may quote."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" with text ")[0]


def open_index(index: Path | GenerationSource, *, milvus_uri: str | None = None,
               milvus_collection: str | None = None, model: str | None = None,
               threads: int | None = None) -> Searcher:
    """A ready Searcher over an index's live generation: its model on its runtime, from either store.

    `index` is an index folder (with `milvus_uri`, the name the Milvus
    collection is derived from) or an already opened `index_source`.
    """
    source = index if not isinstance(index, Path) else index_source(index, milvus_uri, milvus_collection)
    generation = source.current()
    return open_searcher(generation, manifest_embedder(generation, model=model, threads=threads))
