"""OCR (indexer.text.ocr): switched off, missing languages, the cache of what it read, and image files.

The scan is report.pdf's first two pages rendered to images (benchmarks/document_files.py); what OCR reads of
it, and how it is laid out, is checked in tests/test_documents.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks.document_files import scanned_pdf
from indexer.text import ocr
from indexer.text.loaders import LoadError, load_corpus, load_file

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
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "stale.json").write_text("{}", encoding="utf-8")  # a scan deleted long ago
    monkeypatch.setenv("YOMITOKI_CACHE_MB", "0")  # room for the entry just written only (indexer.text.file_cache)
    first = load_file(one_page_scan, tmp_path)[0]
    assert len(reads) == 1 and first.metadata["ocr_pages"] == [1] and "東京は日本の首都" in first.text
    (cached,) = (tmp_path / "cache").glob("*.json")  # the stale entry made room

    moved = Path(shutil.move(one_page_scan, tmp_path / "renamed.pdf"))  # the content is the key, not the path
    assert load_file(moved, tmp_path)[0].text == first.text and len(reads) == 1

    cached.write_text('{"pages": {"1": [["half', encoding="utf-8")  # damaged: read again, never used
    assert load_file(moved, tmp_path)[0].text == first.text and len(reads) == 2


def test_a_page_tesseract_cannot_read_is_an_error_in_its_words() -> None:
    with pytest.raises(ocr.OcrFailed, match=r"tesseract exited with \d+: .+"):
        ocr.read_image(b"P5\n2 2\n255\n\x00", "eng")  # a PGM cut short


# ---------------------------------------------------------------- image files


@pytest.fixture(scope="module")
def page_images(document_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.pdf's first two pages scanned at 200 dpi: page 1 as PNG and JPEG, both as a two-page TIFF (a fax)."""
    import pypdfium2 as pdfium

    folder = tmp_path_factory.mktemp("page-images")
    document = pdfium.PdfDocument(str(document_files / "good" / "report.pdf"))
    pages = [document[n].render(scale=200 / 72, grayscale=True).to_pil() for n in range(2)]
    document.close()
    pages[0].save(folder / "letter.png")
    pages[0].convert("RGB").save(folder / "photo.jpg", quality=80)
    pages[0].save(folder / "fax.tiff", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    (folder / "notes.md").write_text("# Notes\n\nScans of the report are beside this file.\n", encoding="utf-8")
    return folder


def test_image_files_are_read_as_scanned_pages(page_images: Path) -> None:
    from benchmarks.document_files import HEADER, LEFT_COLUMN, TOKYO

    docs = {doc.key: doc for doc in load_corpus(page_images, images=True)[0]}
    assert sorted(docs) == ["fax.tiff", "letter.png", "notes.md", "photo.jpg"]
    for key, kind in (("letter.png", "png"), ("photo.jpg", "jpeg")):
        doc = docs[key]
        assert (doc.metadata["format"], doc.metadata["page_count"], doc.metadata["ocr_pages"]) == (kind, 1, [1])
        assert doc.title == "".join(HEADER.split())  # one page: its running header is its first paragraph
        assert "".join(TOKYO.split())[:30] in "".join(doc.text.split())
    fax = docs["fax.tiff"]
    assert (fax.metadata["format"], fax.metadata["ocr_pages"]) == ("tiff", [1, 2])
    starts = fax.metadata["page_starts"]
    assert "".join(HEADER.split()) not in fax.text and "左段" in fax.text[starts[1] :]  # a header on both pages
    assert "".join(LEFT_COLUMN.split())[:12] in "".join(fax.text.split())


def test_a_folder_walk_reads_images_only_when_asked(page_images: Path) -> None:
    assert [doc.key for doc in load_corpus(page_images)[0]] == ["notes.md"]  # screenshots are not documents
    assert [doc.key for doc in load_corpus(page_images / "letter.png")[0]] == ["letter.png"]  # named: read


def test_a_bad_image_says_what_is_wrong(page_images: Path, tmp_path: Path) -> None:
    from PIL import Image

    whole = (page_images / "letter.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.png").write_bytes(b"this is not an image at all")
    Image.new("L", (40, 30), 255).save(tmp_path / "anim.png", format="GIF")
    for name, says in (("cut.png", "damaged image ("), ("text.png", "damaged or not an image (cannot identify"),
                       ("anim.png", "a GIF image in a .png file (PNG, JPEG and TIFF are read)")):
        with pytest.raises(LoadError, match=re.escape(says)):
            load_file(tmp_path / name, tmp_path)


def test_an_image_without_text_says_ocr_found_none(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (800, 600), 200).save(tmp_path / "grey.png")
    with pytest.raises(LoadError, match="an image, and OCR found no text on its 1 scanned page"):
        load_file(tmp_path / "grey.png", tmp_path)


def test_index_images_through_the_command_line(page_images: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from indexer.cli import cli

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("letter.png", "notes.md"):
        shutil.copy(page_images / name, corpus / name)
    args = ["index", str(corpus), "--index", str(tmp_path / "index"), "--model", "all-minilm-l6-v2", "--json"]
    without = CliRunner().invoke(cli, args)
    assert without.exit_code == 0 and '"documents": 1' in without.output, without.output
    with_images = CliRunner().invoke(cli, [*args, "--images"])
    assert with_images.exit_code == 0 and '"added": 1' in with_images.output, with_images.output
