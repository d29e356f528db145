"""Checking that a generation on disk is the one its build wrote.

Three depths, by cost:

- `check_sizes`: every file the manifest lists exists with the recorded size
  (a `stat` per file; catches truncation). The server does this at start.
- `check_checksums`: the sha256 of every file against the manifest (reads
  every byte). The server does this before it swaps to a new generation, and
  once for the live generation in the background after it starts.
- `check_generation`: checksums, SQLite's `PRAGMA integrity_check`, and FAISS
  loading with its vector count and dimension compared with the manifest.
  `yomitoki check` runs it.

Every problem is one line that starts with the path of the file concerned.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.store.generations import (
    MANIFEST_FILE,
    STORE_FILE,
    VECTORS_FILE,
    CorruptIndexError,
    Generation,
    IndexDirectory,
)
from indexer.store.manifest import Counts

_SQLITE_HEADER = b"SQLite format 3\x00"


def check_sizes(generation: Generation) -> list[str]:
    """Files listed in the manifest that are missing or have another size than recorded."""
    files = generation.manifest.files
    if not files:
        return [f"{generation.path / MANIFEST_FILE}: lists no files with sizes and checksums"]
    problems = []
    for filename, expected in files.items():
        path = generation.path / filename
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        if size != expected.bytes:
            problems.append(f"{path}: {size:,} bytes, the manifest says {expected.bytes:,} "
                            "(truncated or replaced)")
    return problems


def check_checksums(generation: Generation) -> list[str]:
    """Sizes, then the sha256 of each file against the manifest."""
    return check_sizes(generation) or IndexDirectory(generation.path.parent).verify(generation)


def probe_store(path: Path) -> list[str]:
    """A cheap look at the SQLite file: its header and schema can be read."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return [f"{path}: cannot read ({exc.strerror})"]
    if header != _SQLITE_HEADER:
        return [f"{path}: not an SQLite database (bad header)"]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"{path}: unreadable SQLite database ({exc})"]
    missing = {"documents", "chunks"} - tables
    return [f"{path}: SQLite database without table(s) {', '.join(sorted(missing))}"] if missing else []


def check_store(path: Path, counts: Counts | None = None) -> list[str]:
    """SQLite's full `integrity_check`, then the row counts against the manifest's."""
    problems = probe_store(path)
    if problems:
        return problems
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"{path}: SQLite integrity check failed ({exc})"]
    if result != ["ok"]:
        return [f"{path}: SQLite integrity check: {'; '.join(result[:5])}"]
    if counts is not None and (documents, chunks) != (counts.documents, counts.chunks):
        return [f"{path}: {documents} documents and {chunks} chunks, the manifest says "
                f"{counts.documents} and {counts.chunks}"]
    return []


def check_vectors(path: Path, chunks: int | None = None, dimension: int | None = None) -> list[str]:
    """FAISS can load the file, and it holds one vector per chunk of the manifest's dimension."""
    import faiss

    if not path.exists():
        return [f"{path}: missing"]
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return [f"{path}: FAISS cannot load it ({reason})"]
    problems = []
    if chunks is not None and index.ntotal != chunks:
        problems.append(f"{path}: {index.ntotal} vectors, the manifest says {chunks} chunks")
    if dimension is not None and index.d != dimension:
        problems.append(f"{path}: vectors of dimension {index.d}, the manifest's model has {dimension}")
    return problems


def check_generation(generation: Generation) -> list[str]:
    """Everything: checksums, SQLite integrity and counts, FAISS loadability, count and dimension."""
    problems = check_checksums(generation)
    counts = generation.manifest.counts
    problems += check_store(generation.path / STORE_FILE, counts)
    problems += check_vectors(generation.path / VECTORS_FILE, counts.chunks, generation.manifest.model.dimension)
    return list(dict.fromkeys(problems))


def ensure_openable(generation: Generation) -> None:
    """The checks made when a generation is opened: sizes and the SQLite header and schema.

    Raises CorruptIndexError naming each damaged file and what to run.
    """
    problems = check_sizes(generation) or probe_store(generation.path / STORE_FILE)
    if problems:
        raise corrupt(generation, problems)


def corrupt(generation: Generation, problems: list[str]) -> CorruptIndexError:
    """The error for a damaged generation: each problem, then what to run."""
    index = generation.path.parent
    return CorruptIndexError(
        f"generation {generation.name} is damaged: {'; '.join(problems)}. "
        f"Run `yomitoki check --index {index}` for details and rebuild with "
        f"`yomitoki index CORPUS --index {index} --rebuild`"
    )


def check_index(directory: IndexDirectory, *, every: bool = False) -> dict[str, list[str]]:
    """Problems per generation: the live one, or with `every` all generations on disk."""
    live = directory.current_name()
    names = directory.generations() if every else [live] if live else []
    if live is None:
        directory.current()  # raises, saying what to run: no index, or an emptied pointer
    elif live not in names:
        names.append(live)  # the pointer names a generation that is gone: the worst damage there is
    results: dict[str, list[str]] = {}
    for name in names:
        try:
            generation = directory.open(name)
        except CorruptIndexError as exc:
            results[name] = [str(exc)]
            continue
        results[name] = check_generation(generation)
    return results
