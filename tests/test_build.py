"""Building, incremental re-indexing, atomic publishing and crash safety."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from indexer.build.builder import BuildOptions, IndexBuilder, document_id
from indexer.embed.base import Embedder
from indexer.search.searcher import IndexMismatchError, Searcher, check_model
from indexer.store.generations import BuildInProgressError, IndexDirectory
from indexer.store.sqlite import Filters
from indexer.store.where import parse
from indexer.text.chunking import ChunkSettings
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import SourceDocument
from tests.conftest import CORPUS, build, yomitoki


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in sorted(p.name for p in CORPUS.glob("*.md"))[:6]:
        shutil.copy(CORPUS / name, corpus / name)
    return corpus


def test_unchanged_corpus_embeds_nothing_and_one_edit_reembeds_one_file(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    index = tmp_path / "index"
    first = build(small_corpus, index, embedder, keywords)
    assert first.added == 6 and first.chunks_embedded == first.chunks > 0

    again = build(small_corpus, index, embedder, keywords)
    assert (again.chunks_embedded, again.added, again.changed, again.unchanged) == (0, 0, 0, 6)

    edited = sorted(small_corpus.glob("*.md"))[2]
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\nA new closing paragraph.\n", encoding="utf-8")
    after = build(small_corpus, index, embedder, keywords)
    directory = IndexDirectory(index)
    searcher = Searcher(directory.current(), embedder)
    doc_chunks = [c for c in searcher.store.iter_chunks() if c.doc_id == document_id(edited.name)]
    searcher.close()
    assert after.changed == 1 and after.unchanged == 5
    assert after.chunks_embedded == len(doc_chunks)

    sorted(small_corpus.glob("*.md"))[0].unlink()
    removed = build(small_corpus, index, embedder, keywords)
    assert (removed.removed, removed.chunks_embedded, removed.documents) == (1, 0, 5)


def test_a_new_chunker_version_rechunks_documents_an_older_one_left_unchanged(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    first = build(small_corpus, index, embedder, keywords)
    assert IndexDirectory(index).current().manifest.chunker.version == ChunkSettings.version
    # the next release splits text differently: no file changed, yet every document must be chunked anew
    monkeypatch.setattr(ChunkSettings, "version", ChunkSettings.version + 1)
    after = build(small_corpus, index, embedder, keywords)
    assert (after.added, after.unchanged, after.chunks_embedded) == (6, 0, first.chunks)
    assert IndexDirectory(index).current().manifest.chunker.version == ChunkSettings.version


def test_a_write_to_an_index_of_an_older_chunker_version_is_taken_and_keeps_that_version(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    build(small_corpus, index, embedder, keywords)
    old = ChunkSettings.version
    monkeypatch.setattr(ChunkSettings, "version", old + 1)
    builder = IndexBuilder(IndexDirectory(index), embedder, keywords, BuildOptions())
    note = SourceDocument(key="note-1", source="note-1", title="Note", text="A note written over HTTP.",
                          sections=(), metadata={})
    written = builder.apply([note])
    assert (written.added, written.unchanged, written.documents) == (1, 0, 7)
    # the documents carried over were cut by the older chunker, and the manifest still says so
    assert IndexDirectory(index).current().manifest.chunker.version == old
    rebuilt = build(small_corpus, index, embedder, keywords)
    assert (rebuilt.added, rebuilt.unchanged) == (6, 0)


def test_each_build_is_a_new_generation_and_old_ones_are_pruned(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    index = tmp_path / "index"
    for number in range(5):
        (small_corpus / "log.md").write_text(f"# Log\n\nEntry {number}.\n", encoding="utf-8")
        build(small_corpus, index, embedder, keywords)
    directory = IndexDirectory(index)
    assert directory.current_name() == "gen-000005"
    assert directory.generations() == ["gen-000003", "gen-000004", "gen-000005"]
    assert directory.verify(directory.current()) == []


def test_a_build_that_changes_nothing_keeps_the_live_generation_and_those_kept_for_rollback(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    """A cron job or `--watch` re-indexing an unchanged folder must not cycle out the generations kept."""
    index = tmp_path / "index"
    build(small_corpus, index, embedder, keywords)
    (small_corpus / "log.md").write_text("# Log\n\nOne entry.\n", encoding="utf-8")
    build(small_corpus, index, embedder, keywords)
    reports = [build(small_corpus, index, embedder, keywords) for _ in range(4)]

    directory = IndexDirectory(index)
    assert [(r.generation, r.published, r.unchanged) for r in reports] == [("gen-000002", False, 7)] * 4
    assert directory.current_name() == "gen-000002"
    assert directory.generations() == ["gen-000001", "gen-000002"]
    assert not [p.name for p in index.iterdir() if p.name.startswith(".gen") or p.name == "gen-000003"]
    # what a generation holds may change with no document changed: that is published
    regraphed = build(small_corpus, index, embedder, keywords, index_type="hnsw")
    assert (regraphed.generation, regraphed.published, regraphed.chunks_embedded) == ("gen-000003", True, 0)
    assert directory.current().manifest.vectors.type == "hnsw"  # type: ignore[union-attr]
    # an update that names no type keeps the one asked for (auto would choose flat at this size) ...
    (small_corpus / "log.md").write_text("# Log\n\nTwo entries.\n", encoding="utf-8")
    assert build(small_corpus, index, embedder, keywords).generation == "gen-000004"
    assert directory.current().manifest.vectors.type == "hnsw"  # type: ignore[union-attr]
    # ... and `auto` goes back to choosing by size
    build(small_corpus, index, embedder, keywords, index_type="auto")
    (small_corpus / "log.md").write_text("# Log\n\nThree entries.\n", encoding="utf-8")
    build(small_corpus, index, embedder, keywords)
    assert directory.current().manifest.vectors.type == "flat"  # type: ignore[union-attr]


def test_malformed_files_are_reported_and_skipped(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    # not UTF-8, and no legacy encoding reads it: 0x81 is undefined in Windows-1252, 0x81 0xff is no Shift_JIS
    (small_corpus / "broken.md").write_bytes(b"# Title\n\n\x81\xff not utf-8")
    (small_corpus / "docs.jsonl").write_text('{"id": "a", "text": "fine"}\nnot json\n', encoding="utf-8")
    report = build(small_corpus, tmp_path / "index", embedder, keywords)
    reasons = {f.path: f.reason for f in report.failures}
    assert any("broken.md" in path for path in reasons), reasons
    assert any("docs.jsonl" in path and "2" in path for path in reasons), reasons
    assert report.documents == 7


def test_a_shift_jis_file_is_indexed_and_found_at_its_own_offsets(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    text = "# 古い社内文書\n\nこの手順書はシフトJISで保存された。書庫の鍵は総務課が管理する。\n"
    (small_corpus / "legacy.txt").write_bytes(text.encode("cp932"))
    report = build(small_corpus, tmp_path / "index", embedder, keywords)
    assert report.failures == ()
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        hit = searcher.search("書庫の鍵", mode="keyword", k=1)[0]
        document = searcher.document(hit.doc_id)
        assert document is not None and document.text == text
        assert document.text[hit.start : hit.end] == hit.text
        assert any("書庫" in document.text[a:b] for a, b in hit.highlights), hit.highlights
        legacy = Filters(expression=parse({"field": "metadata.encoding", "exists": True}))
        assert {h.source for h in searcher.search("文書", mode="hybrid", k=10, filters=legacy)} == {"legacy.txt"}
    finally:
        searcher.close()


def test_a_second_build_at_once_is_refused(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    directory = IndexDirectory(tmp_path / "index")
    with directory.build_lock(), pytest.raises(BuildInProgressError, match="another build"):
        build(small_corpus, directory.path, embedder, keywords)


def test_an_index_built_with_another_model_is_refused(corpus_index: IndexDirectory) -> None:
    from indexer.embed.loading import load_embedder

    other = load_embedder("use-multilingual-v3")
    with pytest.raises(IndexMismatchError, match="--rebuild --model use-multilingual-v3"):
        check_model(corpus_index.current(), other)


def test_a_backend_the_model_cannot_run_on_is_bad_input_saying_what_to_do(tmp_path: Path) -> None:
    """USE runs on numpy alone: the advice is to leave --backend out, and the exit is 2, as for a wrong option."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.md").write_text("Text.\n", encoding="utf-8")
    refused = subprocess.run(yomitoki("index", str(tmp_path / "corpus"), "--index", str(tmp_path / "index"),
                                      "--model", "use-multilingual-v3", "--backend", "torch"),
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "leave out --backend" in refused.stderr, refused.stderr


def test_killed_build_leaves_the_previous_generation_loadable(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    index = tmp_path / "index"
    build(small_corpus, index, embedder, keywords)
    for source in sorted(CORPUS.glob("*.md")):
        shutil.copy(source, small_corpus / f"copy-{source.name}")
    process = subprocess.Popen(yomitoki("index", str(small_corpus), "--index", str(index),
                                        "--model", "all-minilm-l6-v2", "--rebuild"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(index.glob(".tmp-*")):
        assert process.poll() is None, "the build finished before it could be interrupted"
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    directory = IndexDirectory(index)
    assert directory.current_name() == "gen-000001"
    searcher = Searcher(directory.current(), embedder)
    assert searcher.search("token", k=3)
    searcher.close()
    report = build(small_corpus, index, embedder, keywords)
    assert report.generation == "gen-000002"
    assert not list(index.glob(".tmp-*"))


class RecordingEmbedder:
    """The real embedder, noting how each `embed` call was batched."""

    def __init__(self, embedder: Embedder, backend: str) -> None:
        self.embedder, self.backend, self.calls = embedder, backend, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.embedder, name)

    def describe(self) -> dict[str, object]:
        return {**self.embedder.describe(), "backend": self.backend}

    def embed(self, texts: list[str], *, batch_size: int = 32) -> object:
        self.calls.append((len(texts), batch_size))
        return self.embedder.embed(texts, batch_size=batch_size)


@pytest.mark.parametrize(("backend", "given", "used"), [("torch", None, 16), ("onnx-int8", None, 8),
                                                         ("torch", 5, 5)])
def test_batch_size_defaults_to_the_backends_fastest(
    small_corpus: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer,
    backend: str, given: int | None, used: int,
) -> None:
    recording = RecordingEmbedder(embedder, backend)
    report = build(small_corpus, tmp_path / "index", recording, keywords, batch_size=given)
    assert report.chunks_embedded > used
    # all chunks go to the embedder in one call (it sorts them by length), batched at the backend's size
    assert recording.calls == [(report.chunks_embedded, used)]
