"""Word, Excel and PowerPoint files in their pre-2007 formats, converted by LibreOffice (indexer.text.legacy_office).

The .doc, .xls and .ppt files are written by LibreOffice itself from the .docx, .xlsx and .pptx files the other
tests read, so each legacy document can be checked against what its modern twin gives.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.document_files import legacy_copies
from indexer.text import legacy_office
from indexer.text.loaders import LoadError, load_corpus, load_file
from tests.office_files import save_deck, save_workbook

pytestmark = pytest.mark.skipif(shutil.which("soffice") is None,
                                reason="needs LibreOffice: libreoffice-writer/calc/impress-nogui (see .ci/run)")


@pytest.fixture(scope="module")
def legacy_files(document_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("legacy-office")
    modern, legacy = work / "modern", work / "legacy"
    modern.mkdir()
    shutil.copy(document_files / "good" / "guide.docx", modern / "guide.docx")
    save_workbook(modern / "shop.xlsx")
    save_deck(modern / "talk.pptx")
    for name, kind in (("guide.docx", "doc"), ("shop.xlsx", "xls"), ("talk.pptx", "ppt")):
        legacy_copies([modern / name], legacy, kind)
    return work


def test_legacy_files_read_like_their_modern_twins(legacy_files: Path) -> None:
    modern = {doc.key: doc for doc in load_corpus(legacy_files / "modern")[0]}
    legacy, failures = load_corpus(legacy_files / "legacy")
    old = {doc.key: doc for doc in legacy}
    word, deck = old["guide.doc"], old["talk.ppt"]
    assert (word.metadata["format"], word.title, word.text) == ("doc", "運用ガイド", modern["guide.docx"].text)
    assert [s.path for s in word.sections] == [s.path for s in modern["guide.docx"].sections]
    assert deck.metadata["format"] == "ppt" and deck.text == modern["talk.pptx"].text
    assert deck.metadata["page_starts"] == modern["talk.pptx"].metadata["page_starts"]
    rows = {key: doc for key, doc in old.items() if key.startswith("shop.xls:") or doc.metadata["format"] == "xls"}
    assert {doc.metadata["format"] for doc in rows.values()} == {"xls"}
    assert rows["shop.xls:価格表:2"].metadata["価格"] == 120  # a number stays a number
    assert [f.path for f in failures] == ["shop.xls:価格表:row 5"]  # the same bad row as in shop.xlsx


def test_a_damaged_legacy_file_is_refused_not_read_as_text(legacy_files: Path, tmp_path: Path) -> None:
    whole = (legacy_files / "legacy" / "shop.xls").read_bytes()
    (tmp_path / "cut.xls").write_bytes(whole[: len(whole) // 3])  # LibreOffice would guess plain text
    with pytest.raises(LoadError, match=r"damaged or not an Excel file: LibreOffice could not convert it"):
        load_file(tmp_path / "cut.xls", tmp_path)


def test_conversions_are_cached_and_without_libreoffice_the_message_says_what_to_install(
        legacy_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy_office, "default_cache_dir", lambda: tmp_path / "cache")
    source = legacy_files / "legacy" / "guide.doc"
    first = load_file(source, source.parent)[0]
    monkeypatch.setattr(legacy_office, "_soffice", lambda: None)  # from here on, no LibreOffice
    assert load_file(source, source.parent)[0].text == first.text  # converted once, read from the cache
    (tmp_path / "cache" / next((tmp_path / "cache").iterdir()).name).unlink()
    with pytest.raises(LoadError, match=r"a Word file in the old \.doc format: install LibreOffice to read it "
                                        r"\(apt-get install libreoffice-writer-nogui\), or save it as \.docx"):
        load_file(source, source.parent)


def test_the_conversion_cache_keeps_under_its_bound_and_a_removed_entry_is_converted_again(
        legacy_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy_office, "default_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setenv("YOMITOKI_CACHE_MB", "0")  # room for nothing but the entry just written
    word, deck = legacy_files / "legacy" / "guide.doc", legacy_files / "legacy" / "talk.ppt"
    first = load_file(word, word.parent)[0]
    load_file(deck, deck.parent)
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".pptx"]  # guide's conversion made room
    assert load_file(word, word.parent)[0].text == first.text
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".docx"]


def test_a_cache_that_cannot_be_written_is_reported_for_the_file(legacy_files: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setattr(legacy_office, "default_cache_dir", lambda: tmp_path / "a-file" / "cache")
    source = legacy_files / "legacy" / "talk.ppt"
    docs, failures = load_corpus(source)
    assert docs == [] and len(failures) == 1
    assert failures[0].reason.startswith("converted, but the conversion cannot be kept in ")
