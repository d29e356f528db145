"""Crash safety: SIGKILL `yomitoki index` at random moments; damaged files are found and named.

The kill trials run the real command line as a subprocess and kill it with
SIGKILL at a random moment of its build (two lanes at once, each with its own
small corpus and index). After every kill: the live generation passes a full
check and opens the way the server opens it, a real server process keeps
answering, the next build succeeds and no temporary files are left behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from indexer.build.writes import builder_for
from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder
from indexer.store.generations import CorruptIndexError, IndexDirectory, IndexWriteError
from indexer.store.integrity import check_generation
from indexer.store.vectors import VectorIndex
from indexer.text.keywords import KeywordTokenizer
from server.cli import cli
from server.live_index import LiveIndex
from tests.conftest import build, start_server, yomitoki

TRIALS = 20
LIGHT_MODEL = "use-multilingual-v3"
LANES = 2
IN_PROCESS = threading.Lock()
SEED = int(os.environ.get("YOMITOKI_CRASH_SEED", time.time_ns() % 1_000_000))


def write_corpus(folder: Path, trial: int, docs: int = 10) -> None:
    """A small corpus that changes with each trial, so every build has something to embed."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.md"):
        path.unlink()
    for i in range(docs):
        (folder / f"doc-{i}.md").write_text(
            f"# Document {i}\n\nTrial {trial} writes document {i} about tokenizers, chunking and "
            f"vector search. 東京と銀座の文書{i}です。検索の試験{trial}。\n\nA second paragraph on "
            f"reciprocal rank fusion, number {i * 7 + trial}.\n", encoding="utf-8")
    (folder / f"marker-{trial}.md").write_text(f"# Marker {trial}\n\nzqxmarker{trial} only here.\n",
                                               encoding="utf-8")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The bundled USE model (numpy): its command line starts in a third of MiniLM's time, which
    matters when `yomitoki index` runs many times; what is tested does not depend on the model."""
    return load_embedder(LIGHT_MODEL)

@dataclass
class Lane:
    root: Path
    killed: int = 0               # killed before the new generation was published
    killed_late: int = 0          # killed after publishing (pruning, exiting)
    finished: int = 0
    survived: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def index(self) -> Path:
        return self.root / "index"


def leftovers(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if p.name.startswith((".tmp-", "CURRENT.tmp")))


def start_build(lane: Lane, trial: int) -> subprocess.Popen[bytes]:
    write_corpus(lane.corpus, trial)
    args = ["index", str(lane.corpus), "--index", str(lane.index), "--model", LIGHT_MODEL]
    if trial % 2:
        args.append("--rebuild")
    return subprocess.Popen(yomitoki(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for_workspace(lane: Lane, process: subprocess.Popen[bytes]) -> None:
    while process.poll() is None and not any(p.name.startswith(".tmp-") for p in lane.index.iterdir()):
        time.sleep(0.002)


def writing_phase(lane: Lane) -> float:
    """Seconds from a build's workspace appearing to its generation going live (one build, not killed)."""
    before = IndexDirectory(lane.index).current_name()
    process = start_build(lane, 1001)
    wait_for_workspace(lane, process)
    started = time.monotonic()
    while IndexDirectory(lane.index).current_name() == before and process.poll() is None:
        time.sleep(0.002)
    seconds = time.monotonic() - started
    assert process.wait() == 0
    return seconds


def kill_at_random_moment(lane: Lane, rng: random.Random, window: float, trial: int) -> bool:
    """Start a build and SIGKILL it at a random moment; True when it was killed before finishing."""
    process = start_build(lane, trial)
    if trial % 5 == 0:  # now and then during start-up and corpus loading
        deadline = time.monotonic() + rng.uniform(0.3, 2.5)
    else:  # mostly while the generation is being written: from the workspace's appearance on
        wait_for_workspace(lane, process)
        deadline = time.monotonic() + rng.uniform(0.0, window)
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def check_after_kill(lane: Lane, embedder: Embedder, keywords: KeywordTokenizer, trial: int) -> None:
    directory = IndexDirectory(lane.index)
    live = directory.current()
    problems = check_generation(live)
    assert not problems, problems
    index = LiveIndex(directory, embedder)  # the server's own way of opening an index
    try:
        with index.lease() as searcher:
            assert searcher.search("tokenizers", mode="keyword", k=3)
    finally:
        index.close()
    write_corpus(lane.corpus, trial + 100)
    report = build(lane.corpus, lane.index, embedder, keywords)
    assert report.generation == directory.current_name() > live.name
    assert not leftovers(lane.index), leftovers(lane.index)
    assert not check_generation(directory.current())


def run_lane(lane: Lane, trials: range, embedder: Embedder, keywords: KeywordTokenizer, on_trial: object) -> None:
    rng = random.Random(SEED + trials.start)
    window = writing_phase(lane)  # kills fall anywhere in the writing phase, publishing included
    for trial in trials:
        try:
            before = IndexDirectory(lane.index).current_name()
            if not kill_at_random_moment(lane, rng, window, trial):
                lane.finished += 1
            elif IndexDirectory(lane.index).current_name() == before:
                lane.killed += 1
            else:
                lane.killed_late += 1
            with IN_PROCESS:  # the shared model and tokenizers are used by one lane at a time
                check_after_kill(lane, embedder, keywords, trial)
            if callable(on_trial):
                on_trial(lane)
            lane.survived += 1
        except Exception as exc:  # collected, reported by the test with the trial number
            lane.problems.append(f"trial {trial}: {type(exc).__name__}: {exc}")


def test_sigkill_at_random_moments_never_loses_the_index(
    tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer
) -> None:
    lanes = [Lane(tmp_path / f"lane-{n}") for n in range(LANES)]
    started = time.perf_counter()
    for lane in lanes:
        write_corpus(lane.corpus, 0)
        build(lane.corpus, lane.index, embedder, keywords)
    server = start_server(lanes[0].index, tmp_path / "server.log", "--threads", "1")
    answers: list[str] = []

    def server_still_answers(lane: Lane) -> None:
        if lane is lanes[0]:
            response = httpx.post(f"{server.url}/search", json={"query": "tokenizers", "mode": "keyword"}, timeout=30)
            assert response.status_code == 200, response.text
            answers.append(response.json()["generation"])

    per_lane = TRIALS // LANES
    threads = [threading.Thread(target=run_lane, args=(lane, range(n * per_lane + 1, (n + 1) * per_lane + 1),
                                                       embedder, keywords, server_still_answers))
               for n, lane in enumerate(lanes)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    survived = sum(lane.survived for lane in lanes)
    killed, late = sum(lane.killed for lane in lanes), sum(lane.killed_late for lane in lanes)
    print(f"\nkill trials (seed {SEED}): {survived}/{TRIALS} survived; killed {killed} before publishing, "
          f"{late} after publishing, {TRIALS - killed - late} finished first; {time.perf_counter() - started:.0f}s")
    assert [p for lane in lanes for p in lane.problems] == []
    assert survived == TRIALS
    assert killed >= TRIALS * 2 // 5, "too few builds were interrupted before publishing: the kill window is off"
    assert len(answers) == per_lane and all(a.startswith("gen-") for a in answers)
    assert "Application shutdown complete" in server.log.read_text(), server.log.read_text()


# ---------------------------------------------------------------- damaged files


@pytest.fixture()
def small_index(tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    write_corpus(tmp_path / "corpus", 0, docs=4)
    build(tmp_path / "corpus", tmp_path / "index", embedder, keywords)
    return IndexDirectory(tmp_path / "index")


def run_check(index: Path) -> Result:
    """`yomitoki check --index INDEX`, through click's runner (the command's own code, in process)."""
    return CliRunner().invoke(cli, ["check", "--index", str(index)])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def overwrite(path: Path, offset: int, size: int = 64) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xa5" * size)


def test_check_passes_a_healthy_index(small_index: IndexDirectory) -> None:
    result = run_check(small_index.path)
    assert result.exit_code == 0, result.output
    assert f"{small_index.current_name()}: ok" in result.output


@pytest.mark.parametrize(
    ("filename", "damage", "expected"),
    [
        ("vectors.faiss", truncate, "truncated"),
        ("store.sqlite", lambda path: overwrite(path, 0), "not an SQLite database"),
        ("vectors.json", lambda path: path.write_text("xx\n"), "damaged"),  # the vector index's settings
    ],
)
def test_damaged_file_is_found_at_load_and_by_check_with_its_path(
    small_index: IndexDirectory, embedder: Embedder, filename: str, damage: object, expected: str
) -> None:
    path = small_index.current().path / filename
    damage(path)  # type: ignore[operator]
    with pytest.raises(CorruptIndexError) as error:
        LiveIndex(small_index, embedder)
    assert str(path) in str(error.value) and expected in str(error.value)
    assert "yomitoki check" in str(error.value)
    result = run_check(small_index.path)
    assert result.exit_code == 1
    assert str(path) in result.output, result.output


def test_server_refuses_to_start_on_a_truncated_file_naming_it(small_index: IndexDirectory) -> None:
    path = small_index.current().path / "vectors.faiss"
    truncate(path)
    result = subprocess.run(yomitoki("serve", "--index", str(small_index.path), "--port", "0"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert str(path) in result.stderr and "truncated" in result.stderr, result.stderr


def test_corruption_inside_the_sqlite_file_is_found_by_checksums(
    small_index: IndexDirectory, embedder: Embedder
) -> None:
    store = small_index.current().path / "store.sqlite"
    overwrite(store, store.stat().st_size // 2, 4096)  # same size, header intact: only checksums see it
    live = LiveIndex(small_index, embedder)  # opening is cheap and passes ...
    try:
        live.refresh()  # ... the background verification after start finds it
        assert live.last_error is not None and str(store) in live.last_error
    finally:
        live.close()
    result = run_check(small_index.path)
    assert result.exit_code == 1 and f"{store}: checksum does not match" in result.output, result.output


def test_damage_inside_the_keyword_columns_stops_loading_naming_the_store(
    small_index: IndexDirectory, embedder: Embedder
) -> None:
    """Bytes that are not UTF-8 in a column read at start (a damaged page, same size, header intact)."""
    store = small_index.current().path / "store.sqlite"
    with sqlite3.connect(store) as db:
        db.execute("UPDATE chunks_fts SET grams = CAST(X'FFFE41' AS TEXT) "
                   "WHERE rowid = (SELECT min(rowid) FROM chunks_fts)")
    with pytest.raises(CorruptIndexError) as error:
        LiveIndex(small_index, embedder)
    message = str(error.value)
    assert f"{store}: SQLite cannot read it (Could not decode to UTF-8 column 'grams')" in message, message
    assert "yomitoki check" in message and "\ufffd" not in message


def test_check_all_reports_a_pointer_to_a_missing_generation_and_an_emptied_pointer(
    small_index: IndexDirectory,
) -> None:
    pointer = small_index.path / "CURRENT"
    live = pointer.read_text().strip()
    pointer.write_text("gen-000009\n")
    for flags in ([], ["--all"]):
        result = CliRunner().invoke(cli, ["check", "--index", str(small_index.path), *flags])
        assert result.exit_code == 1, (flags, result.output)
        assert "generation gen-000009 is not in" in result.output, result.output
        assert (f"{live}: ok" in result.output) == bool(flags), result.output  # --all: every generation
    pointer.write_text("")
    result = CliRunner().invoke(cli, ["check", "--index", str(small_index.path), "--all"])
    assert result.exit_code == 1 and "is empty, so no generation is live" in result.output, result.output
    assert live in result.output  # the generations there are, to point it at
    result = CliRunner().invoke(cli, ["check", "--index", str(small_index.path), "--json"])
    assert result.exit_code == 1 and "is empty" in json.loads(result.stdout)["error"], result.output


def test_a_build_on_a_pointer_to_a_missing_generation_builds_anew(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path
) -> None:
    documents = small_index.current().manifest.counts.documents
    (small_index.path / "CURRENT").write_text("gen-000009\n")
    report = build(tmp_path / "corpus", small_index.path, embedder, keywords)  # the fixture's corpus, unchanged
    assert small_index.current_name() == report.generation
    assert small_index.current().manifest.counts.documents == documents


def test_the_index_command_on_a_pointer_to_a_missing_generation_builds_anew_as_the_index_was_built(
    small_index: IndexDirectory, tmp_path: Path
) -> None:
    built = small_index.current()
    (small_index.path / "CURRENT").write_text("gen-000009\n")
    searched = CliRunner().invoke(cli, ["search", "vector", "--index", str(small_index.path)])
    assert searched.exit_code == 1 and f"generations there: {built.name}" in searched.output, searched.output
    result = CliRunner().invoke(cli, ["index", str(tmp_path / "corpus"), "--index", str(small_index.path)])
    assert result.exit_code == 0, result.output
    rebuilt = small_index.current()
    assert rebuilt.name != built.name and rebuilt.manifest.counts == built.manifest.counts
    assert rebuilt.manifest.model.name == built.manifest.model.name
    assert rebuilt.manifest.chunker == built.manifest.chunker


def test_an_error_about_the_pointer_clears_when_it_names_the_served_generation_again(
    small_index: IndexDirectory, embedder: Embedder
) -> None:
    pointer = small_index.path / "CURRENT"
    served = pointer.read_text().strip()
    live = LiveIndex(small_index, embedder)
    try:
        live.refresh()
        assert live.last_error is None
        pointer.write_text("gen-000009\n")
        assert live.refresh() is False and live.last_error is not None and "gen-000009" in live.last_error
        pointer.write_text(f"{served}\n")  # rolled back by hand
        assert live.refresh() is False and live.generation == served and live.last_error is None
        pointer.write_text("")  # emptied: still served, but /health says why writes are refused
        assert live.refresh() is False and live.generation == served
        assert live.last_error is not None and "is empty, so no generation is live" in live.last_error
        pointer.write_text(f"{served}\n")
        assert live.refresh() is False and live.last_error is None
    finally:
        live.close()


def test_a_damaged_new_generation_is_not_swapped_in(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path
) -> None:
    live = LiveIndex(small_index, embedder)
    try:
        first = live.generation
        write_corpus(tmp_path / "corpus", 1, docs=4)
        second = build(tmp_path / "corpus", small_index.path, embedder, keywords).generation
        vectors = small_index.path / second / "vectors.faiss"
        overwrite(vectors, vectors.stat().st_size - 100, 50)
        assert live.refresh() is False
        assert live.generation == first
        assert live.last_error is not None and str(vectors) in live.last_error
        third = build(tmp_path / "corpus", small_index.path, embedder, keywords).generation
        assert live.refresh() is True and live.generation == third and live.last_error is None
    finally:
        live.close()


def test_an_index_folder_that_cannot_be_written_is_one_clear_error(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path
) -> None:
    """A read-only folder or a full disk: the file and the reason, and the live generation unchanged."""
    live = small_index.current_name()
    lock = small_index.path / ".build.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()  # opening it to write fails as a read-only folder would
    with pytest.raises(IndexWriteError) as error:
        build(tmp_path / "corpus", small_index.path, embedder, keywords, rebuild=True)
    assert str(error.value) == (f"cannot update the index in {small_index.path}: Is a directory ({lock}); "
                                "the live generation is unchanged")
    assert small_index.current_name() == live and leftovers(small_index.path) == []
    vectors = VectorIndex.load(small_index.current().vectors_path)
    with pytest.raises(OSError, match="FAISS could not write it") as failed:  # FAISS's own write error
        vectors.save(tmp_path / "no-such-folder" / "vectors.faiss")
    assert failed.value.filename == str(tmp_path / "no-such-folder" / "vectors.faiss")


def test_stale_temporary_files_are_cleaned_by_the_next_build(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path
) -> None:
    (small_index.path / ".tmp-gen-000009-12345").mkdir()
    (small_index.path / ".tmp-gen-000009-12345" / "store.sqlite").write_bytes(b"half")
    (small_index.path / "CURRENT.tmp12345").write_text("gen-000009\n")
    report = build(tmp_path / "corpus", small_index.path, embedder, keywords, rebuild=True)  # publishes anew
    assert report.generation == "gen-000002"
    assert leftovers(small_index.path) == []
    shutil.rmtree(small_index.path / report.generation)  # a generation gone from disk is reported too
    result = run_check(small_index.path)
    assert result.exit_code == 1 and "generation gen-000002 is not in" in result.output, result.output


def test_builds_do_not_prune_a_generation_that_is_still_open(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path
) -> None:
    live = LiveIndex(small_index, embedder)  # holds the first generation open, as a server does
    first = live.generation
    try:
        for trial in range(1, 5):  # more builds than the generations a build keeps
            write_corpus(tmp_path / "corpus", trial, docs=4)
            build(tmp_path / "corpus", small_index.path, embedder, keywords)
        assert first in small_index.generations()
        outcome: list[object] = []

        def search_in_a_new_thread() -> None:  # which opens its own SQLite connection, by path
            try:
                outcome.append(searcher.search("report", mode="keyword", k=3))
            except Exception as exc:
                outcome.append(exc)

        with live.lease() as searcher:
            thread = threading.Thread(target=search_in_a_new_thread)
            thread.start()
            thread.join(timeout=60)
        assert outcome and isinstance(outcome[0], list), outcome or "the search thread did not finish in 60 s"
    finally:
        live.close()
    write_corpus(tmp_path / "corpus", 5, docs=4)
    build(tmp_path / "corpus", small_index.path, embedder, keywords)
    assert first not in small_index.generations()  # closed: the next build prunes it


@pytest.mark.parametrize("filename", ["store.sqlite", "vectors.faiss"])
def test_a_build_does_not_carry_a_damaged_file_into_a_new_generation(
    small_index: IndexDirectory, embedder: Embedder, keywords: KeywordTokenizer, tmp_path: Path, filename: str
) -> None:
    path = small_index.current().path / filename
    overwrite(path, path.stat().st_size // 2, 64)  # same size: only the checksums see it
    before = small_index.generations()
    with pytest.raises(CorruptIndexError) as error:  # an HTTP write: the index is all there is to build on
        builder_for(small_index, embedder).apply([], deletes=[])
    assert str(path) in str(error.value) and "--rebuild" in str(error.value)
    assert small_index.generations() == before and not list(small_index.path.glob(".tmp-*"))
    write_corpus(tmp_path / "corpus", 1, docs=4)
    report = build(tmp_path / "corpus", small_index.path, embedder, keywords)  # a folder: built anew from it
    assert report.rebuilt and report.chunks_embedded == report.chunks, report
    assert check_generation(small_index.current()) == []
