"""Keeping an index in step with a folder: `yomitoki index DIR --index IDX --watch`.

watchfiles reports changed files in debounced groups; before each build the changed
files, and any other file in the folder written in the last `settle` seconds, must stay
the same size and age for `settle` seconds, so that a file still being written is not
published half-done (a build reads the whole folder). Each build is the ordinary
incremental one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError

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
    """Which changes under the corpus can change the index: supported files and folders that the
    exclusions leave in, and any `.yomitokiignore`, never inside a folder whose name starts with a dot
    (the build does not read those). The ignore files on the way to a changed path are read again for
    each change. Folders are known by looking (and, once gone, by having been seen), not by their names:
    `v1.2/` is a folder."""

    def __init__(self, corpus: Path, exclude: Sequence[str] = (), images: bool = False) -> None:
        self.root = corpus.resolve()
        self.exclude = tuple(exclude)
        self.suffixes = SUPPORTED_SUFFIXES if images else DOCUMENT_SUFFIXES
        self.folders: set[str] = set(_folders_under(self.root))

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        relative = os.path.relpath(path, self.root)
        if relative == "." or relative.startswith(".."):  # the folder itself (moved, deleted): the build says
            return True
        parts = Path(relative).parts
        if any(part.startswith(".") for part in parts[:-1]):
            return False
        name = parts[-1]
        if name == IGNORE_FILE:
            return True
        folder = self._is_folder(path)
        if name.startswith(".") or not (folder or name.lower().endswith(self.suffixes)):
            return False
        try:
            return not walk_excludes(self.root, Path(relative).as_posix(), self.exclude, folder=folder)
        except ExclusionError:  # an ignore file is not valid: let the build say so
            return True

    def _is_folder(self, path: str) -> bool:
        if os.path.isdir(path):  # there now: made, or moved in with whatever it holds
            self.folders.update(_folders_under(Path(path)), (path,))
            return True
        if path in self.folders:  # gone, and it was one
            self.folders = {known for known in self.folders if known != path and not known.startswith(path + os.sep)}
            return True
        return "." not in Path(path).name  # gone before it was seen: supported files have suffixes


def _folders_under(root: Path) -> Iterator[str]:
    """The folders below `root` that a build enters (none whose name starts with a dot)."""
    for folder, subfolders, _ in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        yield from (os.path.join(folder, name) for name in subfolders)


def recently_written(corpus: Path, within: float, suffixes: tuple[str, ...]) -> set[Path]:
    """Files of the corpus modified in the last `within` seconds (or dated in the future): being written,
    perhaps, though no change of theirs is in the group a build is about to run for."""
    since = time.time() - within
    found: set[Path] = set()
    for folder, subfolders, files in os.walk(corpus):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            path = Path(folder, name)
            try:
                if path.stat().st_mtime >= since:
                    found.add(path)
            except OSError:
                continue  # gone meanwhile
    return found


def settle(corpus: Path, paths: set[Path], seconds: float, suffixes: tuple[str, ...], *,
           stop: threading.Event | None = None) -> dict[Path, tuple[int, int] | None]:
    """Wait until the changed paths, and every other file in the folder still being written, have settled."""
    state = wait_until_settled(paths, seconds, stop=stop)
    deadline = time.monotonic() + MAX_SETTLE_WAIT_S
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        busy = recently_written(corpus, seconds, suffixes) - state.keys()
        if not busy:
            break
        state.update(wait_until_settled(busy, seconds, stop=stop))
    return state


def watch_corpus(corpus: Path, build: Callable[[], Report], on_report: Callable[[Report], None], *,
                 exclude: Sequence[str] = (), images: bool = False, debounce_ms: int = 500, settle_s: float = 1.0,
                 stop: threading.Event | None = None, on_error: Callable[[str], None] | None = None) -> None:
    """Build whenever files under `corpus` change, until `stop` is set (or the process is interrupted).

    Changes reported while waiting for files to settle come again in the next group; files that
    are as they were when last built from are not built again. When watchfiles itself fails (a file
    name that is not UTF-8, which it cannot report), `on_error` is told, a build catches up on what
    was missed, and watching starts again; failing again and again within a minute ends it.
    """
    built: dict[Path, tuple[int, int] | None] = {}
    watch_filter = CorpusFilter(corpus, exclude, images)
    failures: list[float] = []
    while True:
        try:
            for changes in watchfiles.watch(corpus, watch_filter=watch_filter, debounce=debounce_ms, step=100,
                                            stop_event=stop, raise_interrupt=False):
                paths = {Path(path) for _, path in changes}
                state = settle(corpus, paths, settle_s, watch_filter.suffixes, stop=stop)
                if stop is not None and stop.is_set():
                    return
                if all(path in built and built[path] == state[path] for path in paths):
                    continue
                built.update(state)
                on_report(build())
            return
        except WatchfilesRustInternalError as exc:
            now = time.monotonic()
            failures = [at for at in failures if now - at < 60] + [now]
            if len(failures) > 5:
                raise
            if on_error is not None:
                on_error(f"{exc}; watching again")
            on_report(build())


def describe(report: BuildReport) -> str:
    """The one log line of a watched build."""
    skipped = f", {len(report.failures)} skipped" if report.failures else ""
    if not report.published:
        return (f"No changes: {report.unchanged} documents unchanged{skipped}, nothing embedded; "
                f"{report.generation} stays live.")
    return (f"{report.generation}: {report.added} added, {report.changed} changed, {report.removed} removed, "
            f"{report.unchanged} unchanged{skipped}; {report.documents} documents")
