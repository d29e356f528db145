"""`yomitoki index DIR --index IDX --watch`, run as a real process."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from tests.conftest import yomitoki


def _lines(stream: object, into: queue.Queue[tuple[float, str]]) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        into.put((time.monotonic(), raw.decode(errors="replace").rstrip()))


def _next_generation_line(lines: queue.Queue[tuple[float, str]], timeout: float, log: list[str]) -> tuple[float, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            at, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        log.append(line)
        if line.startswith("gen-"):
            return at, line
    raise AssertionError(f"no generation was published within {timeout} s; output:\n" + "\n".join(log))


def _watching(corpus: Path, index: Path, *options: str) -> tuple[subprocess.Popen[bytes],
                                                                  queue.Queue[tuple[float, str]], list[str]]:
    """`yomitoki index CORPUS --watch` started, once it says it is watching: the process, its lines, the log."""
    corpus.mkdir()
    (corpus / "first.md").write_text("# First\n\nThe first note is about tea.\n")
    process = subprocess.Popen(
        yomitoki("index", str(corpus), "--index", str(index), "--model", "all-minilm-l6-v2", "--watch", *options),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    log: list[str] = []
    deadline = time.monotonic() + 180
    while not any("Watching" in line for line in log):
        if time.monotonic() >= deadline or process.poll() is not None:
            process.kill()
            time.sleep(0.5)  # the reader thread's last lines
            log += [lines.get()[1] for _ in range(lines.qsize())]
            raise AssertionError("the watcher did not start within 180 s:\n" + "\n".join(log))
        try:
            log.append(lines.get(timeout=1)[1])
        except queue.Empty:
            continue
    return process, lines, log


def test_watch_indexes_changes_once_settled(tmp_path: Path, embedder: Embedder) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    process, lines, log = _watching(corpus, index, "--settle", "1.0", "--exclude", "scratch/")
    try:
        # a file written slowly, in pieces: nothing is published until it has stopped changing
        slow = corpus / "slow.md"
        started = time.monotonic()
        with slow.open("w") as handle:
            for part in range(8):
                handle.write(f"Part {part} of the slow note about coffee beans.\n\n")
                handle.flush()
                time.sleep(0.3)
        finished = time.monotonic()
        at, line = _next_generation_line(lines, 60, log)
        assert at >= finished, f"published while the file was still being written ({at - started:.1f}s in): {line}"
        assert "1 added" in line, line
        searcher = Searcher(IndexDirectory(index).current(), embedder)
        try:
            document = searcher.document(searcher.search("coffee beans", mode="keyword", k=1)[0].doc_id)
            assert document is not None and document.text == slow.read_text()
        finally:
            searcher.close()
        (corpus / "scratch").mkdir()
        (corpus / "scratch" / "wip.md").write_text("# Work in progress\n\nLeft out by --exclude.\n")
        # a half-done version published first would be followed by a "1 changed" generation; the file
        # left out would be followed by a generation too, were it not filtered out
        time.sleep(3)
        later = [lines.get()[1] for _ in range(lines.qsize())]
        assert not [line for line in later if line.startswith("gen-")], later
        (corpus / "first.md").unlink()
        _, line = _next_generation_line(lines, 60, log)
        assert "1 removed" in line, line
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_watched_build_that_publishes_nothing_says_so() -> None:
    from indexer.build.builder import BuildReport
    from indexer.build.watching import describe

    report = BuildReport(generation="gen-000004", added=0, changed=0, removed=0, unchanged=44, chunks_embedded=0,
                         documents=44, chunks=250, failures=(), seconds=0.1, embed_seconds=0.0, rebuilt=False,
                         published=False)
    assert describe(report) == "No changes: 44 documents unchanged, nothing embedded; gen-000004 stays live."


def test_a_build_for_one_change_waits_for_any_other_file_still_being_written(tmp_path: Path) -> None:
    """The build reads the whole folder, so a file half-written when another changes would be published."""
    from indexer.build.watching import settle
    from indexer.text.loaders import DOCUMENT_SUFFIXES

    (tmp_path / "edited.md").write_text("# Edited\n\nOnce.\n")
    slow = tmp_path / "slow.md"
    slow.write_text("# Slow\n\n")
    done = threading.Event()

    def write_slowly() -> None:
        with slow.open("a") as handle:
            for line in range(12):
                handle.write(f"line {line} of the slow note.\n")
                handle.flush()
                time.sleep(0.2)
        done.set()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        state = settle(tmp_path, {tmp_path / "edited.md"}, 0.5, DOCUMENT_SUFFIXES)
        assert done.is_set(), "settled while slow.md was still being written"
        assert slow in state and state[slow] == (slow.stat().st_size, slow.stat().st_mtime_ns)
    finally:
        writer.join(30)


def test_the_watcher_survives_odd_names_follows_dotted_folders_and_stops_when_its_folder_goes(
    tmp_path: Path,
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    process, lines, log = _watching(corpus, index, "--settle", "0.5")
    try:
        # a Shift_JIS name, which watchfiles cannot report: skipped as by a build, and watching goes on
        with open(corpus.as_posix().encode() + b"/\x83e\x83X\x83g.md", "w") as handle:
            handle.write("# x\n\nbody\n")
        time.sleep(3)
        (corpus / "v1.2").mkdir()
        (corpus / "v1.2" / "a.md").write_text("# Dotted\n\nZebra notes.\n")
        _, line = _next_generation_line(lines, 60, log)
        assert "1 added" in line, line
        (corpus / "v1.2").rename(tmp_path / "v1.2")  # a folder with a dot in its name, moved out
        _, line = _next_generation_line(lines, 60, log)
        assert "1 removed" in line, line
        corpus.rename(tmp_path / "moved")
        assert process.wait(60) == 1, "\n".join(log)
        log += [lines.get()[1] for _ in range(lines.qsize())]
        assert any("the watched folder" in line and "is gone" in line for line in log), "\n".join(log)
        assert not any("Traceback" in line for line in log), "\n".join(log)
    finally:
        if process.poll() is None:
            process.kill()
