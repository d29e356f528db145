"""One way to open an index: `open_index` loads the model on the runtime and store the manifest names.

The command-line tests run `yomitoki index` and `yomitoki ask` as real
processes, on an index built with the onnx-int8 runtime and on one kept in a
Milvus Lite file (only one process at a time holds a Lite file, so this
test process never opens it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from indexer.search.opening import index_source, open_index
from indexer.store.generations import IndexDirectory
from tests.conftest import CORPUS, yomitoki

QUESTION = "What kind of function is BM25?"


def small_corpus(folder: Path) -> Path:
    """A few files of the default corpus, BM25's among them."""
    folder.mkdir()
    for name in ("en-bm25.md", "en-reciprocal-rank-fusion.md", "en-wordpiece.md", "ja-hybrid-search.md"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(yomitoki(*args), capture_output=True, text=True, timeout=600)


def ask_json(*where: str) -> dict:
    result = run("ask", QUESTION, *where, "--mode", "extractive", "--generator", "none", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_open_index_gives_a_ready_searcher_of_the_index_model(corpus_index: IndexDirectory) -> None:
    searcher = open_index(corpus_index.path, threads=1)
    try:
        assert searcher.embedder.describe()["backend"] == corpus_index.current().manifest.model.backend
        assert searcher.search(QUESTION, k=1)[0].source == "en-bm25.md"
    finally:
        searcher.close()


def test_open_index_on_a_missing_index_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="yomitoki index"):
        index_source(tmp_path / "nothing-here")


@pytest.mark.parametrize("command", [("info",), ("check",), ("search", "BM25"), ("index", str(CORPUS))])
def test_an_index_path_that_is_a_file_is_one_line_naming_it(tmp_path: Path, command: tuple[str, ...]) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("not an index\n")
    result = run(*command, "--index", str(file))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and f"{file} is a file, not an index folder" in result.stderr, result.stderr
    assert file.read_text() == "not an index\n"


def test_a_rerun_keeps_the_indexs_chunk_sizes(tmp_path: Path) -> None:
    corpus, index = small_corpus(tmp_path / "corpus"), tmp_path / "index"
    first = run("index", str(corpus), "--index", str(index), "--max-tokens", "100", "--overlap", "20")
    assert first.returncode == 0, first.stderr
    again = run("index", str(corpus), "--index", str(index))  # no sizes named: the index's, not 200/40
    assert again.returncode == 0 and "nothing embedded" in again.stdout + again.stderr, again.stdout + again.stderr
    chunker = IndexDirectory(index).current().manifest.chunker
    assert chunker is not None and (chunker.max_tokens, chunker.overlap) == (100, 20)


@pytest.mark.slow
def test_cli_ask_answers_from_an_onnx_int8_index(tmp_path: Path) -> None:
    index = tmp_path / "index"
    built = run("index", str(small_corpus(tmp_path / "corpus")), "--index", str(index), "--backend", "onnx-int8")
    assert built.returncode == 0, built.stderr
    assert IndexDirectory(index).current().manifest.model.backend == "onnx-int8"
    body = ask_json("--index", str(index))
    assert body["answer_found"] and "ranking function" in body["answer"], body
    assert body["citations"][0]["source"] == "en-bm25.md"


@pytest.mark.slow
def test_cli_ask_answers_from_a_milvus_index(tmp_path: Path) -> None:
    where = ("--index", str(tmp_path / "notes"), "--milvus-uri", str(tmp_path / "notes.db"))
    built = run("index", str(small_corpus(tmp_path / "corpus")), *where)
    assert built.returncode == 0, built.stderr
    body = ask_json(*where)
    assert body["answer_found"] and "ranking function" in body["answer"], body
    assert body["citations"][0]["source"] == "en-bm25.md"
