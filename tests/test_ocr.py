"""OCR of scanned PDF pages (indexer.text.ocr): switched off, missing languages, and the cache of what it read.

The scan is report.pdf's first two pages rendered to images (benchmarks/document_files.py); what OCR reads of
it, and how it is laid out, is checked in tests/test_documents.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.document_files import scanned_pdf
from indexer.text import ocr
from indexer.text.loaders import LoadError, load_file

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("tesseract") is None,
    reason="needs Debian's chromium, tesseract-ocr and tesseract-ocr-jpn (see .ci/run)")


@pytest.fixture()
def scan(document_files: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(document_files / "good" / "scanned.pdf", tmp_path / "scanned.pdf"))


@pytest.fixture()
def one_page_scan(document_files: Path, tmp_path: Path) -> Path:
    return scanned_pdf(document_files / "good" / "report.pdf", tmp_path / "one-page.pdf", pages=[1])


def test_switched_off_it_says_so_and_a_missing_language_names_its_package(
        scan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ocr.OCR_ENV, "off")
    with pytest.raises(LoadError, match=r"no text layer, and its 2 scanned pages cannot be read: OCR is off"):
        load_file(scan, scan.parent)
    monkeypatch.setenv(ocr.OCR_ENV, "jpn+chi_tra")
    with pytest.raises(LoadError, match=r"Tesseract has no chi_tra language data \(apt-get install "
                                        r"tesseract-ocr-chi-tra; installed: .*jpn"):
        load_file(scan, scan.parent)


def test_what_ocr_read_is_cached_by_the_files_content(one_page_scan: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "default_cache_dir", lambda: tmp_path / "cache")
    reads: list[int] = []
    read_image = ocr.read_image

    def counted(image: bytes, langs: str) -> list[ocr.OcrWord]:
        reads.append(1)
        return read_image(image, langs)

    monkeypatch.setattr(ocr, "read_image", counted)
    first = load_file(one_page_scan, tmp_path)[0]
    assert len(reads) == 1 and first.metadata["ocr_pages"] == [1] and "東京は日本の首都" in first.text
    (cached,) = (tmp_path / "cache").glob("*.json")

    moved = Path(shutil.move(one_page_scan, tmp_path / "renamed.pdf"))  # the content is the key, not the path
    assert load_file(moved, tmp_path)[0].text == first.text and len(reads) == 1

    cached.write_text('{"pages": {"1": [["half', encoding="utf-8")  # damaged: read again, never used
    assert load_file(moved, tmp_path)[0].text == first.text and len(reads) == 2


def test_a_page_tesseract_cannot_read_is_an_error_in_its_words() -> None:
    with pytest.raises(ocr.OcrFailed, match=r"tesseract exited with \d+: .+"):
        ocr.read_image(b"P5\n2 2\n255\n\x00", "eng")  # a PGM cut short
