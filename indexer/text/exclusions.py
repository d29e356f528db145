"""The corpus paths a build leaves out: `.yomitokiignore` at the corpus root, and `--exclude` patterns.

Both are written in .gitignore's syntax (read by pathspec) and matched against paths
relative to the corpus root: `node_modules/` leaves out every folder of that name and
all below it, `/drafts/` only the one at the root, `*.json` every JSON file, and
`!catalog.json` takes one back in. A left-out file is neither indexed nor reported; a
left-out folder is not entered. A file left out after it was indexed is removed from the
next generation, like a deleted one.
"""

from __future__ import annotations

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
    """The patterns in force for one corpus walk."""

    spec: pathspec.GitIgnoreSpec

    def excludes(self, relative: str, *, folder: bool = False) -> bool:
        """Whether the file (or folder) at this corpus-relative posix path is left out."""
        return self.spec.match_file(f"{relative}/" if folder else relative)


def _check(lines: Sequence[str], where: Callable[[int], str]) -> None:
    """Each line parsed alone, so that an error names the one that is wrong."""
    for number, line in enumerate(lines):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError as exc:  # pathspec's pattern errors are ValueErrors
            raise ExclusionError(f"{where(number)}: {line!r} is not a .gitignore pattern ({exc})") from exc


def corpus_exclusions(root: Path, extra: Sequence[str] = ()) -> Exclusions:
    """The patterns of `root`'s `.yomitokiignore` (when `root` is a folder that has one), then `extra`."""
    from_file: list[str] = []
    ignore_file = root / IGNORE_FILE
    if root.is_dir() and ignore_file.is_file():
        try:
            from_file = ignore_file.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExclusionError(f"{ignore_file}: cannot be read ({exc})") from exc
    _check(from_file, lambda n: f"{ignore_file}, line {n + 1}")
    _check(extra, lambda n: "--exclude")
    return Exclusions(pathspec.GitIgnoreSpec.from_lines([*from_file, *extra]))


NO_EXCLUSIONS = Exclusions(pathspec.GitIgnoreSpec.from_lines([]))
