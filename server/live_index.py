"""The generation being served, swapped for a newer one without dropping requests.

Requests lease the current `Searcher` for their duration. When a build
publishes a new generation, the next poll opens it and makes it current; the
old one is closed once its last lease is returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from indexer.embedders import Embedder
from indexer.generations import IndexDirectory
from indexer.search import Searcher

log = logging.getLogger("yomitoki.index")


class _Entry:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.leases = 0
        self.retired = False


class LiveIndex:
    def __init__(self, directory: IndexDirectory, embedder: Embedder) -> None:
        self.directory = directory
        self.embedder = embedder
        self._lock = threading.Lock()
        self._entry = _Entry(Searcher(directory.current(), embedder))
        self.last_error: str | None = None

    @property
    def generation(self) -> str:
        return self._entry.searcher.generation.name

    @property
    def manifest(self) -> dict[str, object]:
        return self._entry.searcher.generation.manifest

    @contextmanager
    def lease(self) -> Iterator[Searcher]:
        with self._lock:
            entry = self._entry
            entry.leases += 1
        try:
            yield entry.searcher
        finally:
            with self._lock:
                entry.leases -= 1
                close = entry.retired and entry.leases == 0
            if close:
                entry.searcher.close()

    def refresh(self) -> bool:
        """Open a newly published generation, if any; True when it swapped."""
        name = self.directory.current_name()
        if name is None or name == self.generation:
            return False
        try:
            searcher = Searcher(self.directory.open(name), self.embedder)
        except Exception as exc:  # keep serving the generation we have
            message = f"not switching to generation {name}: {exc}"
            if message != self.last_error:
                log.error(message)
            self.last_error = message
            return False
        with self._lock:
            old, self._entry = self._entry, _Entry(searcher)
            old.retired = True
            close = old.leases == 0
        if close:
            old.searcher.close()
        self.last_error = None
        log.info("serving generation %s", name)
        return True

    def close(self) -> None:
        with self._lock:
            self._entry.retired = True
            close = self._entry.leases == 0
        if close:
            self._entry.searcher.close()
