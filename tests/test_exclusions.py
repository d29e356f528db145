"""Leaving corpus paths out: `.yomitokiignore` and `--exclude`, in the walk, the build, the watcher and the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import watchfiles
from click.testing import CliRunner

from indexer.build.watching import CorpusFilter
from indexer.cli import cli
from indexer.embed.base import Embedder
from indexer.store.generations import IndexDirectory
from indexer.text.exclusions import IGNORE_FILE, ExclusionError, corpus_exclusions
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import LoadFailure, discover_files
from tests.conftest import build


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tree(root: Path) -> None:
    write(root / "guide.md", "# Guide\n\nHow to brew tea.\n")
    write(root / "package.json", '{"name": "site", "version": "1.0.0"}')
    write(root / "catalog.json", '[{"id": "tea-1", "text": "Sencha, a green tea."}]')
    write(root / "node_modules" / "lib" / "README.md", "# lib\n")
    write(root / "node_modules" / "lib" / "huge.txt", "x" * 200)  # over the size limit, yet not reported
    write(root / "drafts" / "plan.md", "# Plan\n")
    write(root / "notes" / "drafts" / "idea.md", "# Idea\n")


def relative(files: list[Path], root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in files]


def test_ignore_file_and_patterns_leave_files_and_folders_out(tmp_path: Path) -> None:
    tree(tmp_path)
    files, failures = discover_files(tmp_path, max_bytes=100)
    assert "node_modules/lib/README.md" in relative(files, tmp_path)
    assert failures == [LoadFailure("node_modules/lib/huge.txt", "larger than 100 bytes limit (200 bytes)")]

    write(tmp_path / IGNORE_FILE, "# data files are not documents\n*.json\n!catalog.json\n\nnode_modules/\n")
    files, failures = discover_files(tmp_path, max_bytes=100, exclusions=corpus_exclusions(tmp_path, ["/drafts/"]))
    assert relative(files, tmp_path) == ["catalog.json", "guide.md", "notes/drafts/idea.md"]
    assert failures == []  # a folder left out is not entered: its oversized file is not reported either


def test_a_folders_own_ignore_file_applies_below_it_after_the_ones_above(tmp_path: Path) -> None:
    tree(tmp_path)
    write(tmp_path / "notes" / "local.md", "# Local\n")
    write(tmp_path / "notes" / "sub" / "local.md", "# Deeper\n")
    write(tmp_path / "notes" / "data.json", '[{"id": "n-1", "text": "A note."}]')
    write(tmp_path / "notes" / "sub" / "more.json", '[{"id": "n-2", "text": "Another."}]')
    write(tmp_path / IGNORE_FILE, "*.json\nnode_modules/\n")
    # relative to notes/: drafts/ at any depth below it, /local.md only notes/local.md; JSON taken back in
    write(tmp_path / "notes" / IGNORE_FILE, "drafts/\n/local.md\n!*.json\n")
    files, _ = discover_files(tmp_path, exclusions=corpus_exclusions(tmp_path))
    assert relative(files, tmp_path) == ["drafts/plan.md", "guide.md", "notes/data.json", "notes/sub/local.md",
                                         "notes/sub/more.json"]
    files, _ = discover_files(tmp_path, exclusions=corpus_exclusions(tmp_path, ["more.json"]))
    assert "notes/sub/more.json" not in relative(files, tmp_path)  # --exclude comes after every ignore file


def test_an_ignore_file_in_a_folder_left_out_is_not_read(tmp_path: Path) -> None:
    tree(tmp_path)
    write(tmp_path / IGNORE_FILE, "node_modules/\n")
    write(tmp_path / "node_modules" / IGNORE_FILE, "!*\n!\n")  # would take everything back, and is not valid
    files, _ = discover_files(tmp_path, exclusions=corpus_exclusions(tmp_path))
    assert not any(path.startswith("node_modules/") for path in relative(files, tmp_path))


def test_a_wrong_pattern_in_a_folders_ignore_file_is_named(tmp_path: Path) -> None:
    tree(tmp_path)
    write(tmp_path / "notes" / IGNORE_FILE, "drafts/\n!\n")
    with pytest.raises(ExclusionError, match=r"notes/\.yomitokiignore, line 2: '!' is not a \.gitignore pattern"):
        discover_files(tmp_path, exclusions=corpus_exclusions(tmp_path))


def test_a_single_file_corpus_is_matched_by_its_name(tmp_path: Path) -> None:
    path = write(tmp_path / "one.md", "# One\n")
    assert discover_files(path, exclusions=corpus_exclusions(path, ["*.md"])) == ([], [])
    assert discover_files(path, exclusions=corpus_exclusions(path, ["*.txt"]))[0] == [path]


def test_a_pattern_that_is_not_gitignore_syntax_is_named(tmp_path: Path) -> None:
    write(tmp_path / IGNORE_FILE, "*.json\n!\n")
    with pytest.raises(ExclusionError, match=r"\.yomitokiignore, line 2: '!' is not a \.gitignore pattern"):
        corpus_exclusions(tmp_path)
    (tmp_path / IGNORE_FILE).unlink()
    with pytest.raises(ExclusionError, match=r"--exclude: '!' is not a \.gitignore pattern"):
        corpus_exclusions(tmp_path, ["*.json", "!"])


def test_a_file_left_out_after_it_was_indexed_is_removed(tmp_path: Path, embedder: Embedder,
                                                          keywords: KeywordTokenizer) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    tree(corpus)
    first = build(corpus, index, embedder, keywords)
    assert [f.path for f in first.failures] == ["package.json"]  # a record with no 'text'
    assert first.documents == 6

    write(corpus / IGNORE_FILE, "package.json\nnode_modules/\n")
    second = build(corpus, index, embedder, keywords, exclude=("/drafts/",))
    assert (second.failures, second.removed, second.unchanged) == ((), 3, 3)
    with sqlite3.connect(IndexDirectory(index).current().store_path) as db:
        keys = {key for (key,) in db.execute("SELECT key FROM documents")}
    assert keys == {"guide.md", "tea-1", "notes/drafts/idea.md"}


def test_the_watcher_knows_folders_by_looking_not_by_their_names(tmp_path: Path) -> None:
    """A folder named v1.2 moved in or out changes the index; anything inside a hidden folder does not."""
    write(tmp_path / "v1.2" / "a.md", "# A\n\nText.\n")
    write(tmp_path / ".git" / "notes.md", "# Not read\n")
    root = tmp_path.resolve()
    keep = CorpusFilter(tmp_path)
    added, deleted = watchfiles.Change.added, watchfiles.Change.deleted
    assert keep(added, str(root / "v1.2"))
    (root / "v1.2" / "a.md").unlink()
    (root / "v1.2").rmdir()  # moved away: known as a folder from having been seen
    assert keep(deleted, str(root / "v1.2"))
    write(tmp_path / "2024.03" / "b.md", "# B\n\nText.\n")  # moved in
    assert keep(added, str(root / "2024.03"))
    assert not keep(deleted, str(root / "notes.md~")) and not keep(deleted, str(root / "v1.3"))
    assert not keep(added, str(root / ".git" / "notes.md")) and not keep(added, str(root / ".git" / "objects"))
    assert not keep(added, str(root / ".hidden" / "sub" / "c.md"))


def test_the_watcher_ignores_changes_the_build_would_leave_out(tmp_path: Path) -> None:
    tree(tmp_path)
    root = tmp_path.resolve()
    keep = CorpusFilter(tmp_path, ["drafts/"])
    added = watchfiles.Change.added
    assert keep(added, str(root / "guide.md"))
    assert keep(added, str(root / "node_modules" / "lib" / "README.md"))
    assert not keep(added, str(root / "notes" / "drafts" / "idea.md"))
    assert not keep(watchfiles.Change.deleted, str(root / "notes" / "drafts"))
    assert keep(added, str(root / "notes"))
    assert not keep(added, str(root / "photo.png"))
    assert keep(added, str(root / IGNORE_FILE))  # an edit of the ignore file itself can change the index

    write(tmp_path / IGNORE_FILE, "node_modules/\n")
    assert not keep(added, str(root / "node_modules" / "lib" / "README.md"))
    write(tmp_path / IGNORE_FILE, "node_modules/\n!\n")  # wrong: let the build say so
    assert keep(added, str(root / "node_modules" / "lib" / "README.md"))

    write(tmp_path / IGNORE_FILE, "node_modules/\n")
    write(tmp_path / "notes" / IGNORE_FILE, "*.txt\n")  # a folder's own file, read for each change below it
    assert keep(added, str(root / "notes" / IGNORE_FILE))
    assert not keep(added, str(root / "notes" / "todo.txt"))
    assert keep(added, str(root / "todo.txt"))
    write(tmp_path / "node_modules" / IGNORE_FILE, "!*\n")  # inside a folder left out: not read
    assert not keep(added, str(root / "node_modules" / "lib" / "README.md"))


def test_the_command_line_refuses_a_wrong_pattern_before_loading_models(tmp_path: Path) -> None:
    tree(tmp_path)
    result = CliRunner().invoke(cli, ["index", str(tmp_path), "--index", str(tmp_path / "index"),
                                      "--model", "no-such-model", "--exclude", "!"])
    assert result.exit_code == 2, result.output
    assert "--exclude: '!' is not a .gitignore pattern" in result.output

    write(tmp_path / "notes" / IGNORE_FILE, "!\n")
    result = CliRunner().invoke(cli, ["index", str(tmp_path), "--index", str(tmp_path / "index"),
                                      "--model", "no-such-model"])
    assert result.exit_code == 2, result.output
    assert ".yomitokiignore, line 1: '!' is not a .gitignore pattern" in result.output
