"""Preparing documents on a Ray cluster: load → normalize → chunk → keywords → embed, as a Ray Data pipeline.

`yomitoki index CORPUS --ray ADDRESS` hands the documents that the incremental
plan says need work to a Ray Data pipeline: read tasks load their files (every
node must see the corpus at the same path), then a pool of actors, one torch
thread each and the index's own model loaded once per actor, normalize, chunk,
keyword-tokenize and embed them in batches. The driver (the `yomitoki index`
process) keeps the plan and writes what comes back through the same code as a
local build, in plan order, so both give the same index.

Ray is optional (`pip install 'yomitoki[scale]'`) and imported only here, only
when `--ray` is used.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from indexer.build.builder import BuildOptions, PreparedDocument, prepare_document
from indexer.embed.base import Embedder, default_batch_size, embed_for
from indexer.embed.loading import load_manifest_embedder
from indexer.errors import YomitokiError
from indexer.store.manifest import ModelEntry
from indexer.text.chunking import ChunkSettings
from indexer.text.keywords import KeywordTokenizer, load_keyword_tokenizer
from indexer.text.loaders import LoadError, SourceDocument, load_file

CONNECT_TIMEOUT_S = 5.0
BATCHES_PER_WORKER = 4      # documents are cut into about this many batches per actor, for balance
MAX_DOCS_PER_BATCH = 64
ACTORS_START_S = 600        # how long a build waits for every actor of the pool to load its model


class RayIndexingError(YomitokiError):
    """Ray could not be used, or the cluster failed to prepare the documents; the message says why."""


# ---------------------------------------------------------------- connecting


def _host_port(address: str) -> tuple[str, int] | None:
    """The (host, port) to probe for HOST:PORT and ray://HOST:PORT; None for `auto`."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayIndexingError(
            f"--ray {address!r} is not a Ray address: use auto, HOST:PORT (the head's GCS port, "
            "6379 by default) or ray://HOST:PORT (Ray Client, port 10001)"
        )
    return host.strip("[]"), int(port)


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at the address (ray.init itself waits for minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayIndexingError(
            f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` "
            "or check the --ray address"
        ) from exc


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Connect this process to the Ray cluster at `address` (auto, HOST:PORT or ray://HOST:PORT)."""
    try:
        import ray
    except ImportError as exc:
        raise RayIndexingError("--ray needs Ray: pip install 'yomitoki[scale]' (ray[data])") from exc
    _probe(address, timeout)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayIndexingError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    # Work starts once every actor has loaded its model: otherwise the first actor ready (on a busy
    # node, minutes before the others) takes every batch and the other nodes sit idle.
    context.wait_for_min_actors_s = ACTORS_START_S
    logging.getLogger("ray.data").setLevel(logging.WARNING)


# ---------------------------------------------------------------- pipeline stages (run on the cluster)


def _load_files(batch: Any, root: str) -> Any:
    """Read task: load each file and keep the planned documents (`keys`), each with its plan ordinal."""
    import pyarrow as pa
    import ray

    node = ray.get_runtime_context().get_node_id()
    ordinals, docs, errors = [], [], []
    for path, keys, wanted in zip(batch["path"].to_pylist(), batch["keys"].to_pylist(),
                                  batch["ordinals"].to_pylist(), strict=True):
        try:
            loaded = {doc.key: doc for doc in load_file(Path(path), Path(root))}
            error = ""
        except LoadError as exc:
            loaded, error = {}, exc.reason
        for key, ordinal in zip(keys, wanted, strict=True):
            doc = loaded.get(key)
            ordinals.append(ordinal)
            docs.append(pickle.dumps(doc) if doc is not None else b"")
            errors.append("" if doc is not None else error or f"{key} is no longer in {path}")
    return pa.table({"ordinal": pa.array(ordinals, pa.int64()), "doc": pa.array(docs, pa.binary()),
                     "error": pa.array(errors, pa.string()), "loaded_on": pa.array([node] * len(ordinals))})


class _DocumentPreparer:
    """Actor: the index's model and keyword tokenizer, loaded once; prepares and embeds batches of documents."""

    def __init__(self, model: dict[str, Any], keywords: dict[str, object], chunking: dict[str, int],
                 batch_size: int | None) -> None:
        import ray
        import torch

        torch.set_num_threads(1)
        self.embedder = load_manifest_embedder(ModelEntry.described(model), threads=1)
        if self.embedder.describe() != model:
            raise RayIndexingError(
                f"node {ray.get_runtime_context().get_node_id()} has another copy of the model: "
                f"{self.embedder.describe()} instead of {model}; install the same packages on every node"
            )
        self.keywords = load_keyword_tokenizer(keywords)
        self.chunking = ChunkSettings(**chunking)
        self.batch_size = batch_size or default_batch_size(self.embedder)
        context = ray.get_runtime_context()
        self.node, self.worker = context.get_node_id(), context.get_actor_id() or ""

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        prepared = []
        for blob, error in zip(batch["doc"].to_pylist(), batch["error"].to_pylist(), strict=True):
            prepared.append(None if error else
                            prepare_document(pickle.loads(blob), self.embedder, self.keywords, self.chunking))
        texts = [text for item in prepared if item is not None for text in item.texts]
        vectors = embed_for(self.embedder, texts, "passage", batch_size=self.batch_size)
        out, offset = [], 0
        for item in prepared:
            if item is None:
                out.append(b"")
                continue
            part = vectors[offset : offset + len(item.texts)]
            offset += len(item.texts)
            out.append(pickle.dumps(PreparedDocument(item.document, item.chunks, item.keyword_texts,
                                                     item.texts, part)))
        rows = len(out)
        return pa.table({"ordinal": batch["ordinal"], "prepared": pa.array(out, pa.binary()),
                         "error": batch["error"], "loaded_on": batch["loaded_on"],
                         "node": pa.array([self.node] * rows), "worker": pa.array([self.worker] * rows)})


# ---------------------------------------------------------------- the driver's side


@contextmanager
def ray_preparer(address: str, corpus: Path, embedder: Embedder, keywords: KeywordTokenizer,
                 options: BuildOptions, *, workers: int | None = None) -> Iterator[RayPreparer]:
    """Connected to the cluster at `address` for the duration of one build; disconnects after."""
    preparer = RayPreparer.connect(address, corpus, embedder, keywords, options.chunking,
                                   batch_size=options.batch_size, workers=workers)
    try:
        yield preparer
    finally:
        preparer.close()


@dataclass
class RayPreparer:
    """Prepares documents on a Ray cluster for `IndexBuilder(preparer=...)`; see the module docstring."""

    address: str
    corpus: Path
    embedder: Embedder
    keywords: KeywordTokenizer
    chunking: ChunkSettings
    batch_size: int | None = None           # None: the backend's fastest
    workers: int | None = None              # actors; None: one per CPU of the cluster
    _work: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def connect(cls, address: str, corpus: Path, embedder: Embedder, keywords: KeywordTokenizer,
                chunking: ChunkSettings, *, batch_size: int | None = None, workers: int | None = None) -> RayPreparer:
        if workers is not None and workers < 1:
            raise RayIndexingError(f"--ray-workers must be at least 1, got {workers}")
        import ray

        if not ray.is_initialized():
            connect(address)
        return cls(address, corpus.absolute(), embedder, keywords, chunking, batch_size, workers)

    def close(self) -> None:
        import ray

        ray.shutdown()

    def pool_size(self) -> int:
        import ray

        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def prepare(self, docs: Sequence[SourceDocument]) -> Iterator[PreparedDocument]:
        """Prepared documents, in the order of `docs`."""
        if not docs:
            return
        self._work = {"loaded": Counter(), "prepared": Counter(), "chunks": Counter(), "workers": Counter()}
        pending: dict[int, PreparedDocument] = {}
        following = 0
        for ordinal, prepared in self._results(docs):
            pending[ordinal] = prepared
            while following in pending:
                yield pending.pop(following)
                following += 1
        if following != len(docs):
            raise RayIndexingError(f"the Ray pipeline returned {following} of {len(docs)} documents")

    def _results(self, docs: Sequence[SourceDocument]) -> Iterator[tuple[int, PreparedDocument]]:
        try:
            for batch in self._dataset(docs).iter_batches(batch_size=None, batch_format="pyarrow"):
                yield from self._read_batch(batch, docs)
        except RayIndexingError:
            raise
        except Exception as exc:  # a worker's failure arrives wrapped in Ray's own errors
            raise RayIndexingError(f"Ray indexing failed: {exc}") from exc

    def _read_batch(self, batch: Any, docs: Sequence[SourceDocument]) -> Iterator[tuple[int, PreparedDocument]]:
        columns = {name: batch[name].to_pylist() for name in batch.column_names}
        for ordinal, blob, error, loaded_on, node, worker in zip(
            columns["ordinal"], columns["prepared"], columns["error"], columns["loaded_on"],
            columns["node"], columns["worker"], strict=True,
        ):
            if error:
                raise RayIndexingError(f"{docs[ordinal].source}: {error} (did the file change while indexing, "
                                       "or is the corpus not at the same path on every node?)")
            prepared: PreparedDocument = pickle.loads(blob)
            self._work["loaded"][loaded_on] += 1
            self._work["prepared"][node] += 1
            self._work["chunks"][node] += len(prepared.texts)
            self._work["workers"][f"{node}/{worker}"] += 1
            yield ordinal, prepared

    def _dataset(self, docs: Sequence[SourceDocument]) -> Any:
        """Two executions: read tasks load the files into blocks of a few documents (materialized, spilled
        to disk by Ray if large), then the actor pool prepares and embeds them. Loading first, while no
        actor holds a CPU, is deliberate: Ray Data's block-splitting tasks wait forever for a CPU that
        a full actor pool never frees."""
        import ray

        workers = self.pool_size()
        per_batch = min(MAX_DOCS_PER_BATCH, max(1, -(-len(docs) // (workers * BATCHES_PER_WORKER))))
        items = self._file_items(docs)
        loaded = (
            ray.data.from_items(items, override_num_blocks=min(len(items), workers * 8))
            .map_batches(partial(_load_files, root=str(self.corpus)), batch_size=1, batch_format="pyarrow")
            .repartition(target_num_rows_per_block=per_batch)
            .materialize()
        )
        return loaded.map_batches(
            _DocumentPreparer, batch_size=per_batch, batch_format="pyarrow", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
            fn_constructor_kwargs={"model": self.embedder.describe(), "keywords": dict(self.keywords.settings),
                                   "chunking": {"max_tokens": self.chunking.max_tokens,
                                                "overlap": self.chunking.overlap},
                                   "batch_size": self.batch_size},
        )  # Ray Data places actors with its default SPREAD strategy: one per node first

    def _file_items(self, docs: Sequence[SourceDocument]) -> list[dict[str, Any]]:
        """One item per file to read: its path as every node sees it, and its planned keys with ordinals."""
        base = self.corpus if self.corpus.is_dir() else self.corpus.parent
        files: dict[str, dict[str, Any]] = {}
        for ordinal, doc in enumerate(docs):
            path = str(base / doc.source)
            item = files.setdefault(path, {"path": path, "keys": [], "ordinals": []})
            item["keys"].append(doc.key)
            item["ordinals"].append(ordinal)
        return list(files.values())

    def summary(self) -> dict[str, Any]:
        """Where the work ran: node and worker counts, and documents/chunks per node (for --json)."""
        work = self._work or {"loaded": Counter(), "prepared": Counter(), "chunks": Counter(), "workers": Counter()}
        nodes = sorted(set(work["prepared"]) | set(work["loaded"]))
        return {
            "address": self.address,
            "nodes": len(set(work["prepared"])),
            "workers": len(work["workers"]),
            "per_node": {node: {"documents_loaded": work["loaded"][node], "documents_embedded": work["prepared"][node],
                                "chunks_embedded": work["chunks"][node],
                                "workers": sum(1 for w in work["workers"] if w.startswith(f"{node}/"))}
                         for node in nodes},
        }
