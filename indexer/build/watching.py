"""Keeping an index in step with a folder: `yomitoki index DIR --index IDX --watch`.

watchfiles reports changed files in debounced groups; before each build the changed
files must stay the same size and age for `settle` seconds, so that a file still being
written is not published half-done. Each build is the ordinary incremental one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import watchfiles

from indexer.build.builder import BuildReport
from indexer.text.exclusions import IGNORE_FILE, ExclusionError, walk_excludes
from indexer.text.loaders import DOCUMENT_SUFFIXES, SUPPORTED_SUFFIXES

Report = TypeVar("Report")

MAX_SETTLE_WAIT_S = 300.0  # a file written for longer than this is indexed as it stands, and again when done


def _state(paths: Iterable[Path]) -> dict[Path, tuple[int, int] | None]:
    state: dict[Path, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = path.stat()
            state[path] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            state[path] = None  # gone (or moved away): that is settled too
    return state


def wait_until_settled(paths: Iterable[Path], settle: float, *,
                       stop: threading.Event | None = None) -> dict[Path, tuple[int, int] | None]:
    """Once no file in `paths` has changed size or modification time for `settle` seconds: their state."""
    paths = list(paths)
    before = _state(paths)
    deadline = time.monotonic() + MAX_SETTLE_WAIT_S
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        time.sleep(settle)
        after = _state(paths)
        if after == before:
            break
        before = after
    return before


class CorpusFilter:
    """Which changes under the corpus can change the index: supported files (and folders, whose names
    mostly have no dot) that the exclusions leave in, and any `.yomitokiignore`. The ignore files
    on the way to a changed path are read again for each change."""

    def __init__(self, corpus: Path, exclude: Sequence[str] = (), images: bool = False) -> None:
        self.root = corpus.resolve()
        self.exclude = tuple(exclude)
        self.suffixes = SUPPORTED_SUFFIXES if images else DOCUMENT_SUFFIXES

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        name = Path(path).name
        if name == IGNORE_FILE:
            return True
        if name.startswith(".") or not (name.lower().endswith(self.suffixes) or "." not in name):
            return False
        relative = os.path.relpath(path, self.root)
        if relative.startswith(".."):
            return True
        try:  # a name without a dot is a folder's (supported files have suffixes), even once it is deleted
            return not walk_excludes(self.root, Path(relative).as_posix(), self.exclude, folder="." not in name)
        except ExclusionError:  # an ignore file is not valid: let the build say so
            return True


def watch_corpus(corpus: Path, build: Callable[[], Report], on_report: Callable[[Report], None], *,
                 exclude: Sequence[str] = (), images: bool = False, debounce_ms: int = 500, settle: float = 1.0,
                 stop: threading.Event | None = None) -> None:
    """Build whenever files under `corpus` change, until `stop` is set (or the process is interrupted).

    Changes reported while waiting for files to settle come again in the next group; files that
    are as they were when last built from are not built again.
    """
    built: dict[Path, tuple[int, int] | None] = {}
    watch_filter = CorpusFilter(corpus, exclude, images)
    for changes in watchfiles.watch(corpus, watch_filter=watch_filter, debounce=debounce_ms, step=100,
                                    stop_event=stop, raise_interrupt=False):
        paths = {Path(path) for _, path in changes}
        state = wait_until_settled(paths, settle, stop=stop)
        if stop is not None and stop.is_set():
            return
        if all(path in built and built[path] == state[path] for path in paths):
            continue
        built.update(state)
        on_report(build())


def describe(report: BuildReport) -> str:
    """The one log line of a watched build."""
    skipped = f", {len(report.failures)} skipped" if report.failures else ""
    if not report.published:
        return (f"No changes: {report.unchanged} documents unchanged{skipped}, nothing embedded; "
                f"{report.generation} stays live.")
    return (f"{report.generation}: {report.added} added, {report.changed} changed, {report.removed} removed, "
            f"{report.unchanged} unchanged{skipped}; {report.documents} documents")
