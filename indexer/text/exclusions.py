"""The corpus paths a build leaves out: `.yomitokiignore` files, and `--exclude` patterns.

Both are written in .gitignore's syntax (read by pathspec). Patterns of the corpus root's
file and `--exclude` are matched against paths relative to the corpus root: `node_modules/`
leaves out every folder of that name and all below it, `/drafts/` only the one at the root,
`*.json` every JSON file, and `!catalog.json` takes one back in. A folder's own
`.yomitokiignore` works as git reads a `.gitignore` there: its patterns are relative to that
folder and apply below it only, and they come after (so override) those of the folders above
it; `--exclude` comes last of all. A left-out file is neither indexed nor reported; a
left-out folder is not entered, so an ignore file inside it is not read. A file left out
after it was indexed is removed from the next generation, like a deleted one.
"""

from __future__ import annotations

import functools
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from indexer.errors import InputError

IGNORE_FILE = ".yomitokiignore"


class ExclusionError(InputError):
    """A pattern that is not valid .gitignore syntax, or an ignore file that cannot be read."""


@dataclass(frozen=True)
class Exclusions:
    """The patterns in force for one folder of a corpus walk."""

    spec: pathspec.GitIgnoreSpec
    files: tuple[str, ...] = ()   # the ignore files' patterns, made relative to the corpus root
    extra: tuple[str, ...] = ()   # --exclude, after them all
    nested: bool = True           # whether folders' own ignore files are read

    def excludes(self, relative: str, *, folder: bool = False) -> bool:
        """Whether the file (or folder) at this corpus-relative posix path is left out."""
        return self.spec.match_file(f"{relative}/" if folder else relative)

    def below(self, folder: Path, relative: str) -> Exclusions:
        """The patterns in force in `folder` (at corpus-relative posix path `relative`, not the root):
        these, then those of the folder's own `.yomitokiignore` if it has one."""
        lines = _read(folder / IGNORE_FILE) if self.nested else []
        if not lines:
            return self
        files = (*self.files, *(_under(relative, line) for line in lines))
        return Exclusions(_spec((*files, *self.extra)), files, self.extra)


def _read(ignore_file: Path) -> list[str]:
    """The checked lines of an ignore file; none where there is no such file. Read again only when
    the file changes: the watcher asks for the files on the way to every changed path."""
    try:
        found = ignore_file.stat()
    except OSError:
        return []
    if not stat.S_ISREG(found.st_mode):
        return []
    return list(_checked_lines(ignore_file, found.st_mtime_ns, found.st_size, found.st_ino))


@functools.lru_cache(maxsize=256)
def _checked_lines(ignore_file: Path, mtime_ns: int, size: int, inode: int) -> tuple[str, ...]:
    """An ignore file's lines, checked; cached by what `stat` says of the file."""
    try:
        lines = ignore_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExclusionError(f"{ignore_file}: cannot be read ({exc})") from exc
    _check(lines, lambda n: f"{ignore_file}, line {n + 1}")
    return tuple(lines)


@functools.lru_cache(maxsize=256)
def _spec(lines: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


_GLOB = re.compile(r"([*?\[\]\\])")


def _under(folder: str, line: str) -> str:
    """A pattern of the ignore file in `folder` (corpus-relative) as a pattern relative to the corpus root.

    As in git, a pattern with a slash before its end is anchored to the folder of its file
    (`/drafts/`, `docs/*.md`), and one without matches at any depth below it (`*.json`).
    """
    if not line.strip() or line.startswith("#"):
        return line
    negated = line.startswith("!")
    pattern = line[1:] if negated else line
    anchored = "/" in pattern.rstrip().rstrip("/")
    prefix = _GLOB.sub(r"\\\1", folder)
    if prefix.startswith(("#", "!")):
        prefix = "\\" + prefix
    rooted = f"{prefix}/{pattern.lstrip('/')}" if anchored else f"{prefix}/**/{pattern}"
    return f"!{rooted}" if negated else rooted


def _check(lines: Sequence[str], where: Callable[[int], str]) -> None:
    """Each line parsed alone, so that an error names the one that is wrong."""
    for number, line in enumerate(lines):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError as exc:  # pathspec's pattern errors are ValueErrors
            raise ExclusionError(f"{where(number)}: {line!r} is not a .gitignore pattern ({exc})") from exc


def corpus_exclusions(root: Path, extra: Sequence[str] = ()) -> Exclusions:
    """The patterns of `root`'s `.yomitokiignore` (when `root` is a folder that has one), then `extra`;
    a walk adds each folder's own (`Exclusions.below`)."""
    from_file = _read(root / IGNORE_FILE) if root.is_dir() else []
    _check(extra, lambda n: "--exclude")
    return Exclusions(_spec((*from_file, *extra)), tuple(from_file), tuple(extra))


def walk_excludes(root: Path, relative: str, extra: Sequence[str] = (), *, folder: bool = False) -> bool:
    """Whether a walk of the corpus at `root` leaves out the file (or folder) at corpus-relative posix
    path `relative`: a folder on the way to it is left out, or it is, by the patterns in force there."""
    parts = relative.split("/")
    exclusions = corpus_exclusions(root, extra)
    for depth in range(1, len(parts)):
        above = "/".join(parts[:depth])
        if exclusions.excludes(above, folder=True):
            return True
        exclusions = exclusions.below(root / above, above)
    return exclusions.excludes(relative, folder=folder)


NO_EXCLUSIONS = Exclusions(pathspec.GitIgnoreSpec.from_lines([]), nested=False)
