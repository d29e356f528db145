"""The on-disk index: a directory of generations and a pointer to the live one.

    INDEX/
      CURRENT              name of the live generation (replaced atomically)
      gen-000007/          manifest.json, store.sqlite, vectors.faiss
      .build.lock          held by the one build allowed at a time
      .tmp-gen-000008-…/   a build in progress (removed if found stale)

A build writes a complete generation beside the live one, renames it into
place and then flips CURRENT with an atomic rename, so a reader sees either
the old generation or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from indexer.errors import UnavailableError
from indexer.store.manifest import FileEntry, FormatStamp, Manifest, decode_manifest, encode_manifest

FORMAT_VERSION = 1
STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"
KEEP_GENERATIONS = 3


class IndexStateError(UnavailableError):
    """Base of index problems; the message says what to run."""


class IndexNotFoundError(IndexStateError):
    http_status = 404


class BuildInProgressError(IndexStateError):
    http_status = 409


class CorruptIndexError(IndexStateError):
    pass


class IndexWriteError(IndexStateError):
    """The index folder cannot be written (a full disk, a read-only folder); the message names the file."""

    @classmethod
    def of(cls, index: object, exc: OSError) -> IndexWriteError:
        where = f" ({exc.filename})" if exc.filename else ""
        return cls(f"cannot update the index in {index}: {exc.strerror or exc}{where}; the live generation is "
                   "unchanged")


@dataclass(frozen=True)
class Generation:
    name: str
    path: Path
    manifest: Manifest

    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    @property
    def vectors_path(self) -> Path:
        return self.path / VECTORS_FILE


def hold(generation: Generation) -> BinaryIO | None:
    """A shared lock on a generation's manifest for as long as the returned file stays open: while any process
    holds one, builds do not prune the generation (`IndexDirectory._prune`). None where it cannot be taken."""
    try:
        handle = generation.path.joinpath(MANIFEST_FILE).open("rb")
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)  # waits only while a prune of this very generation is deciding
    except OSError:
        handle.close()
        return None
    return handle


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_checked(generation: Generation, filename: str, target: Path) -> None:
    """Copy one of a generation's files, checking it against the manifest's sha256 on the way (the bytes are read
    once): a build must not carry a damaged file into a new generation under fresh checksums."""
    expected = generation.manifest.files.get(filename)
    source = generation.path / filename
    digest = hashlib.sha256()
    with source.open("rb") as reading, target.open("wb") as writing:
        for block in iter(lambda: reading.read(1 << 20), b""):
            digest.update(block)
            writing.write(block)
    if expected is not None and digest.hexdigest() != expected.sha256:
        raise damaged_base(source)


def check_files(generation: Generation, skip: Sequence[str] = ()) -> None:
    """Check a generation's files (but `skip`) against the manifest's sha256 before a build reads them."""
    for filename, expected in generation.manifest.files.items():
        path = generation.path / filename
        if filename not in skip and (not path.exists() or file_digest(path) != expected.sha256):
            raise damaged_base(path)


def damaged_base(path: Path) -> CorruptIndexError:
    return CorruptIndexError(f"{path} does not match its manifest (missing or changed since it was built): the live "
                             "generation is damaged, so nothing is built on it; `yomitoki check` lists what is "
                             "wrong, and `yomitoki index … --rebuild` builds anew")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def built_manifest(directory: Any) -> Manifest | None:
    """How an index was built, for a build that goes on from it: its live generation's manifest, or where the
    pointer names none that opens (a build then builds anew, `IndexBuilder.build`), its newest generation's that
    does; None for a new index. `directory`: an index folder or Milvus."""
    names = [directory.current_name()] if directory.current_name() is not None else []
    names += reversed(getattr(directory, "generations", list)())
    for name in dict.fromkeys(names):
        try:
            return directory.open(name).manifest  # type: ignore[no-any-return]
        except CorruptIndexError:
            continue
    return None


def next_generation_name(names: Sequence[str]) -> str:
    """The name after the last of `names` (sorted, `gen-NNNNNN`): `gen-000001` for none."""
    number = int(names[-1].split("-")[1]) + 1 if names else 1
    return f"gen-{number:06d}"


ORIGINALS = "originals"  # INDEX/originals/: the files of PDF, Word... documents written over HTTP


class IndexDirectory:
    """Reading and publishing generations in one index directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def pointer(self) -> Path:
        return self.path / "CURRENT"

    @property
    def originals(self) -> Path:
        """Where the files of PDF, Word... documents written over HTTP are kept: INDEX/originals/."""
        return self.path / ORIGINALS

    def current_name(self) -> str | None:
        self._must_be_a_folder()
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def _must_be_a_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise IndexNotFoundError(f"{self.path} is a file, not an index folder: give --index a folder "
                                     "(a new one is made by `yomitoki index`)")

    def current(self) -> Generation:
        """The live generation; raises IndexNotFoundError with what to run."""
        name = self.current_name()
        if name is None:
            kept = self.generations()
            if self.pointer.exists() or kept:  # emptied or removed by hand, or a first build killed before it
                state = "is empty" if self.pointer.exists() else "is missing"
                raise CorruptIndexError(
                    f"{self.pointer} {state}, so no generation is live (generations in the folder: "
                    f"{', '.join(kept) or 'none'}): write one's name into it, or build with "
                    f"`yomitoki index CORPUS --index {self.path}`"
                )
            raise IndexNotFoundError(
                f"no index in {self.path}: build one with `yomitoki index CORPUS --index {self.path}`"
            )
        return self.open(name)

    def open(self, name: str) -> Generation:
        path = self.path / name
        manifest_path = path / MANIFEST_FILE
        if not path.is_dir():
            raise CorruptIndexError(f"generation {name} is not in {self.path} (no such folder; generations there: "
                                    f"{', '.join(self.generations()) or 'none'}): name another in "
                                    f"{self.pointer.name}, or build with `yomitoki index CORPUS --index {self.path}`")
        try:
            data = manifest_path.read_bytes()
        except FileNotFoundError as exc:
            raise CorruptIndexError(f"{manifest_path} is missing: rebuild with `yomitoki index … --rebuild`") from exc
        try:
            version = msgspec.json.decode(data, type=FormatStamp).format_version
            if version != FORMAT_VERSION:
                raise CorruptIndexError(
                    f"{path} has index format {version!r}, this yomitoki reads "
                    f"{FORMAT_VERSION}: rebuild with `yomitoki index … --rebuild`"
                )
            manifest = decode_manifest(data)
        except msgspec.ValidationError as exc:  # names the entry: "Expected `int`, got `str` - at `$.counts.chunks`"
            raise CorruptIndexError(f"{manifest_path} is not a manifest this yomitoki reads ({exc}): "
                                    "rebuild with `yomitoki index … --rebuild`") from exc
        except msgspec.DecodeError as exc:
            raise CorruptIndexError(f"{manifest_path} is not valid JSON ({exc})") from exc
        return Generation(name=name, path=path, manifest=manifest)

    def verify(self, generation: Generation) -> list[str]:
        """Problems found by checking each file against the manifest's checksums."""
        problems = []
        for filename, expected in generation.manifest.files.items():
            file = generation.path / filename
            if not file.exists():
                problems.append(f"{file}: missing")
            elif file.stat().st_size != expected.bytes:
                problems.append(f"{file}: {file.stat().st_size} bytes, manifest says {expected.bytes}")
            elif file_digest(file) != expected.sha256:
                problems.append(f"{file}: checksum does not match the manifest")
        return problems

    def generations(self) -> list[str]:
        if not self.path.exists():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and p.name.startswith("gen-"))

    def next_name(self) -> str:
        return next_generation_name(self.generations())

    @contextlib.contextmanager
    def build_lock(self) -> Iterator[None]:
        """Hold the build lock; a second build at once is refused with a clear message."""
        self._must_be_a_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / ".build.lock").open("a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise BuildInProgressError(
                    f"another build of {self.path} is running (pid {holder}); wait for it to finish"
                ) from exc
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()

    def clean_stale(self) -> list[Path]:
        """Remove leftovers of interrupted builds; call with the build lock held."""
        stale = [p for p in self.path.glob(".tmp-*") if p.is_dir()]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.path.glob("CURRENT.tmp*"):
            path.unlink(missing_ok=True)
        return stale

    def workspace(self, name: str) -> Path:
        path = self.path / f".tmp-{name}-{os.getpid()}"
        path.mkdir(parents=True)
        return path

    def publish(self, workspace: Path, name: str, manifest: Manifest) -> Generation:
        """Checksum, fsync, rename into place and flip CURRENT atomically."""
        files = {}
        vectors = Path(VECTORS_FILE).stem  # and its sidecars: vectors.json (type, parameters), tombstones…
        sidecars = sorted(p.name for p in workspace.glob(f"{vectors}.*") if p.name != VECTORS_FILE and p.is_file())
        for filename in (STORE_FILE, VECTORS_FILE, *sidecars):
            file = workspace / filename
            _fsync(file)
            files[filename] = FileEntry(bytes=file.stat().st_size, sha256=file_digest(file))
        manifest = msgspec.structs.replace(manifest, format_version=FORMAT_VERSION, generation=name, files=files)
        manifest_path = workspace / MANIFEST_FILE
        manifest_path.write_bytes(encode_manifest(manifest, indent=2))
        _fsync(manifest_path)
        final = self.path / name
        os.rename(workspace, final)
        pointer_tmp = self.path / f"CURRENT.tmp{os.getpid()}"
        pointer_tmp.write_text(name + "\n")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, self.pointer)
        _fsync(self.path)
        self._prune(keep=name)
        return Generation(name=name, path=final, manifest=manifest)

    def _prune(self, keep: str) -> None:
        """Keep the newest few generations, and any older one a process still has open (`hold`): a server
        opens SQLite connections by path as its threads need them, so a folder removed under it fails them."""
        for name in self.generations()[:-KEEP_GENERATIONS]:
            if name == keep:
                continue
            try:
                handle = (self.path / name / MANIFEST_FILE).open("rb")
            except OSError:  # no manifest: a folder no process can have opened as a generation
                shutil.rmtree(self.path / name, ignore_errors=True)
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use: a later build prunes it once it is closed
                shutil.rmtree(self.path / name, ignore_errors=True)  # under the lock: no one opens it meanwhile
