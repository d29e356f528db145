"""The OCR and conversion caches stay under their bound (indexer.text.file_cache); the conversion cache
with LibreOffice is tested in tests/test_legacy_office.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from indexer.errors import InputError
from indexer.text import file_cache
from tests.conftest import yomitoki


def entry(folder: Path, name: str, size: int, age: int) -> Path:
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (1_000_000 - age, 1_000_000 - age))
    return path


def test_the_least_recently_used_entries_go_first_and_the_new_one_stays(tmp_path: Path) -> None:
    old, middle, recent = (entry(tmp_path, n, 400, age) for n, age in (("a.json", 30), ("b.json", 20), ("c.json", 10)))
    written = entry(tmp_path, "d.json", 400, 40)  # the oldest time, but just written: kept
    (tmp_path / "e.tmp").write_bytes(b"x" * 5000)  # another process's write in progress: not counted, not removed
    file_cache.mark_used(old)  # a hit: now the most recently used
    assert file_cache.trim(tmp_path, keep=written, limit=1000) == [middle, recent]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "d.json", "e.tmp"]
    assert file_cache.trim(tmp_path, keep=written, limit=1000) == []


def test_the_bound_comes_from_yomitoki_cache_mb() -> None:
    assert file_cache.limit_bytes({}) == 1024 * 1024 * 1024
    assert file_cache.limit_bytes({"YOMITOKI_CACHE_MB": "0.5"}) == 512 * 1024
    for bad in ("lots", "-1", "nan"):
        with pytest.raises(InputError, match=f"YOMITOKI_CACHE_MB must be a number of megabytes.*{bad}"):
            file_cache.limit_bytes({"YOMITOKI_CACHE_MB": bad})


@pytest.mark.parametrize("command", [["index", "CORPUS", "--index", "INDEX"], ["serve", "--index", "INDEX"]])
def test_a_bad_bound_stops_index_and_serve_before_anything_is_read(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.md").write_text("# a\n\ntext\n", encoding="utf-8")
    arguments = [{"CORPUS": str(tmp_path / "corpus"), "INDEX": str(tmp_path / "index")}.get(a, a) for a in command]
    done = subprocess.run(yomitoki(*arguments), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "YOMITOKI_CACHE_MB": "lots"})
    assert done.returncode == 2, done.stderr
    assert "YOMITOKI_CACHE_MB must be a number of megabytes (0 or more), not 'lots'" in done.stderr
    assert not (tmp_path / "index").exists()
