"""The `yomitoki` command line as a user runs it: real subprocesses, exit codes checked."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from indexer.embed.base import Embedder
from indexer.search.fusion import MODEL_SHARES
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import TOKENIZER_VERSION, KeywordTokenizer, load_keyword_tokenizer
from tests.conftest import CORPUS, build, yomitoki


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(yomitoki(*args), capture_output=True, text=True, timeout=300)


def test_index_search_info_and_reindex(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for source in sorted(CORPUS.glob("ja-*.md"))[:3] + sorted(CORPUS.glob("en-*.md"))[:3]:
        shutil.copy(source, corpus / source.name)
    index = str(tmp_path / "index")

    first = run("index", str(corpus), "--index", index, "--model", "all-minilm-l6-v2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "6 added" in first.stdout

    again = run("index", str(corpus), "--index", index)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout and "nothing embedded" in again.stdout

    found = run("search", "token", "--index", index, "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and all(h["source"].endswith(".md") for h in hits)

    info = run("info", "--index", index)
    assert info.returncode == 0, info.stderr
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["model"]["name"] == "all-minilm-l6-v2" and manifest["counts"]["documents"] == 6
    assert manifest["fusion"]["method"] == "coverage-weighted-zscore"
    assert manifest["fusion"]["language_weights"] == dict(MODEL_SHARES["all-minilm-l6-v2"])


def test_skipped_files_are_listed_and_exit_code_says_so(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / "en-bm25.md", corpus / "good.md")
    (corpus / "bad.txt").write_bytes(b"\xff\xfe\x00\x00binary")
    result = run("index", str(corpus), "--index", str(tmp_path / "index"), "--model", "all-minilm-l6-v2")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "bad.txt" in result.stderr and "1 file(s) skipped" in result.stdout


def test_search_without_an_index_says_what_to_run(tmp_path: Path) -> None:
    result = run("search", "token", "--index", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "yomitoki index" in result.stderr


def test_an_update_keeps_the_index_keyword_tokenizer_and_a_rebuild_takes_the_current_one(
        tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(CORPUS / "ja-hybrid-search.md", corpus / "ja.md")
    old = load_keyword_tokenizer({**keywords.settings, "version": 1})  # as yomitoki built indexes before
    build(corpus, index, embedder, old)
    shutil.copy(CORPUS / "en-bm25.md", corpus / "en.md")

    def version() -> object:
        return IndexDirectory(index).current().manifest.keywords["version"]

    update = run("index", str(corpus), "--index", str(index))
    assert update.returncode == 0, update.stdout + update.stderr
    assert "1 added" in update.stdout and version() == 1  # the first document was not embedded again
    rebuilt = run("index", str(corpus), "--index", str(index), "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert version() == TOKENIZER_VERSION
    model = IndexDirectory(index).current().manifest.model
    assert (model.name, model.backend) == ("all-minilm-l6-v2", "torch")  # a rebuild keeps the index's model
