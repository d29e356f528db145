"""The generation being served, swapped for a newer one without dropping requests.

Requests lease the current `Searcher` for their duration, so one request sees
one generation from start to end. The watcher calls `refresh()` every second:
when a build has published a new generation it is checked (file sizes and
sha256 checksums against its manifest, FAISS and SQLite opened, the model
compared) off the request path, then made current; the old one is closed once
its last lease is returned. A generation that fails its checks is not served:
the error names the damaged file, is logged once and shown by /health, and the
generation already being served stays.

What is checked when:

- at start: sizes of every file and the SQLite header and schema (cheap), so a
  truncated or overwritten file stops the server with its path;
- once after start, in the background: the live generation's checksums (reads
  every byte, so it is kept off the start-up path); a mismatch is reported;
- before each swap: sizes and checksums of the new generation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from indexer.embed.base import Embedder
from indexer.search.opening import open_searcher
from indexer.search.searcher import Searcher
from indexer.store.base import GenerationSource, is_embedded
from indexer.store.integrity import check_checksums
from indexer.store.manifest import Manifest

log = logging.getLogger("yomitoki.index")

RETRY_FAILED_AFTER_S = 30.0
# Per request, the names of the generations it leased (set by the request log).
served_generations: ContextVar[list[str] | None] = ContextVar("served_generations", default=None)


class _Entry:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.leases = 0
        self.retired = False
        self.closed = False


class LiveIndex:
    """The served generation, its leases, and the swap to newly published ones."""

    def __init__(self, directory: GenerationSource, embedder: Embedder, searcher: Searcher | None = None) -> None:
        """Serve `directory`'s live generation (`searcher`, when already opened with `open_index`)."""
        self.directory = directory
        self.embedder = embedder
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._entry = _Entry(searcher or open_searcher(directory.current(), embedder))
        self._open: list[_Entry] = [self._entry]
        self._failed: dict[str, float] = {}  # generation name -> when it failed its checks
        self._live_verified = False
        self._live_error: str | None = None    # the served generation failed its checksums
        self._switch_error: str | None = None  # the generation the pointer names could not be switched to
        self.swaps = 0

    @property
    def last_error(self) -> str | None:
        """What is wrong now, for /health and /metrics: the pointer's generation refused, or the served one
        damaged."""
        return self._switch_error or self._live_error

    @property
    def generation(self) -> str:
        return self._entry.searcher.generation.name

    @property
    def manifest(self) -> Manifest:
        return self._entry.searcher.generation.manifest

    @property
    def open_generations(self) -> list[str]:
        """Generations still open: the current one and retired ones with requests in flight."""
        with self._lock:
            return [entry.searcher.generation.name for entry in self._open]

    @contextmanager
    def lease(self) -> Iterator[Searcher]:
        """The current Searcher, kept open until the block ends even if a swap happens meanwhile."""
        with self._lock:
            entry = self._entry
            entry.leases += 1
        record = served_generations.get()
        if record is not None:
            record.append(entry.searcher.generation.name)
        try:
            yield entry.searcher
        finally:
            with self._lock:
                entry.leases -= 1
            self._close_if_done(entry)

    def prepare(self) -> None:
        """Build the served generation's lazy parts before its first query needs them (`Searcher.prepare`)."""
        with self.lease() as searcher:
            _prepare(searcher)

    def _close_if_done(self, entry: _Entry) -> None:
        with self._lock:
            if not entry.retired or entry.leases or entry.closed:
                return
            entry.closed = True
            self._open.remove(entry)
        entry.searcher.close()
        log.info("closed generation %s", entry.searcher.generation.name)

    def refresh(self) -> bool:
        """Verify the live generation once, then open a newly published one if any; True when it swapped."""
        with self._refresh_lock:
            if not self._live_verified:
                self._live_verified = True
                self._verify_live()
            name = self.directory.current_name()
            if name is None:  # the pointer emptied or removed: keep serving, and say so (writes are refused)
                self._report_switch(f"the index names no live generation; still serving {self.generation}: "
                                    f"{self._pointer_problem()}")
                return False
            if name == self.generation and self._switch_error is not None:  # rolled back to the one served
                log.info("the index points at generation %s again, which is served", name)
                self._switch_error = None
            if name is None or name == self.generation or self._recently_failed(name):
                return False
            try:
                searcher = open_searcher(self.directory.open(name), self.embedder, verify=True)
                _prepare(searcher)  # before the swap: the first query after it does not wait
            except Exception as exc:  # keep serving the generation we have
                self._failed[name] = time.monotonic()
                self._report_switch(f"not switching to generation {name}: {exc}")
                return False
            self._swap(searcher)
            self._failed.pop(name, None)
            self._switch_error = self._live_error = None
            log.info("serving generation %s", name)
            return True

    def _pointer_problem(self) -> str:
        try:
            self.directory.current()
        except Exception as exc:  # what opening the index says about its pointer, with what to do
            return str(exc)
        return "its pointer changed while it was read"

    def _swap(self, searcher: Searcher) -> None:
        with self._lock:
            old, self._entry = self._entry, _Entry(searcher)
            self._open.append(self._entry)
            old.retired = True
            self.swaps += 1
        self._close_if_done(old)

    def _recently_failed(self, name: str) -> bool:
        failed = self._failed.get(name)
        return failed is not None and time.monotonic() - failed < RETRY_FAILED_AFTER_S

    def _verify_live(self) -> None:
        generation = self._entry.searcher.generation
        if not is_embedded(generation):
            return
        started = time.perf_counter()
        problems = check_checksums(generation)
        if problems:
            self._live_error = (f"the served generation {generation.name} does not match its checksums: "
                                f"{'; '.join(problems)}; run `yomitoki check --index {generation.path.parent}`")
            log.error(self._live_error)
        else:
            log.info("generation %s verified (sha256) in %.2fs", generation.name, time.perf_counter() - started)

    def _report_switch(self, message: str) -> None:
        if message != self._switch_error:
            log.error(message)
        self._switch_error = message

    def stats(self) -> dict[str, object]:
        """Figures of the served generation for /metrics."""
        searcher = self._entry.searcher
        manifest = searcher.generation.manifest
        return {
            "generation": searcher.generation.name, "model": manifest.model.name,
            "documents": manifest.counts.documents, "chunks": manifest.counts.chunks,
            "vectors": searcher.search_store.vector_count(), "bytes": sum(f.bytes for f in manifest.files.values()),
            "swaps": self.swaps, "open_generations": len(self.open_generations),
            "error": int(self.last_error is not None),
        }

    def close(self) -> None:
        with self._lock:
            entries = list(self._open)
            for entry in entries:
                entry.retired = True
        for entry in entries:
            self._close_if_done(entry)


def _prepare(searcher: Searcher) -> None:
    started = time.perf_counter()
    readings = searcher.prepare()
    if readings is not None:
        log.info("generation %s: %d kana readings in %.2fs", searcher.generation.name, readings,
                 time.perf_counter() - started)
