"""The OCR and conversion caches stay under their bound (indexer.text.file_cache); the conversion cache
with LibreOffice is tested in tests/test_legacy_office.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.errors import InputError
from indexer.text import file_cache


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
