"""Japanese typesetting: furigana (ruby) in HTML, Word, PDF and scans reads as the text it glosses, and
vertical (縦書き) text reads in order, in PDFs and scans. The files come from real producers: Chromium
prints HTML ruby into PDFs (horizontal and vertical), python-docx writes Word's `w:ruby`, LibreOffice
prints that Word file into a PDF, and printed pages are scanned and read by Tesseract."""

from __future__ import annotations

import shutil
from difflib import SequenceMatcher
from pathlib import Path

import docx
import pytest

from benchmarks.document_files import (
    chromium_pdf,
    document_html,
    legacy_copies,
    page_html,
    ruby_html,
    ruby_paragraph,
    scanned_pdf,
)
from indexer.build.builder import document_id
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text import ocr
from indexer.text.docx_text import docx_text
from indexer.text.glyphs import Glyph
from indexer.text.html_text import html_text
from indexer.text.keywords import KeywordTokenizer
from indexer.text.pdf_text import _lines, read_pdf
from tests.conftest import build

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("chromium", "soffice", "tesseract")),
    reason="needs Debian's chromium, libreoffice-writer-nogui and tesseract-ocr(-jpn) (see .ci/run)")

TITLE = "江戸時代"
# (base, reading) pieces of two paragraphs; the plain text is the bases alone
EDO = [("徳川", "とくがわ"), ("家康", "いえやす"), ("は一六〇三年に", None), ("征夷大将軍", "せいいたいしょうぐん"),
       ("に", None), ("任命", "にんめい"), ("され、", None), ("江戸", "えど"), ("に", None), ("幕府", "ばくふ"),
       ("を", None), ("開", "ひら"), ("いた。", None), ("以後", "いご"), ("およそ二百六十年にわたり、", None),
       ("徳川氏", "とくがわし"), ("が", None), ("政権", "せいけん"), ("を", None), ("担", "にな"), ("った。", None)]
DAIMYO = [("幕府", "ばくふ"), ("は", None), ("大名", "だいみょう"), ("を", None), ("親藩", "しんぱん"), ("、", None),
          ("譜代", "ふだい"), ("、", None), ("外様", "とざま"), ("に", None), ("分", "わ"), ("け、", None),
          ("参勤交代", "さんきんこうたい"), ("によって", None), ("大名", "だいみょう"), ("の", None),
          ("財力", "ざいりょく"), ("を", None), ("抑", "おさ"), ("えた。", None)]
PLAIN = ["".join(base for base, _ in pieces) for pieces in (EDO, DAIMYO)]
INDENTED = "p { text-indent: 1em; }"  # 字下げ: in vertical text, paragraphs are told apart by it alone
READINGS = ("とくがわ", "せいいたいしょうぐん", "ばくふ", "さんきんこうたい")


def _page(layout: str = "", css: str = "") -> str:
    body = f"<h1>{TITLE}</h1>" + "".join(f"<p>{ruby_html(pieces)}</p>" for pieces in (EDO, DAIMYO))
    return document_html([page_html(body, layout=layout)], title=TITLE, css=INDENTED + css)


def _assert_reads_as_plain_text(text: str) -> None:
    paragraphs = text.split("\n\n")
    assert paragraphs == [TITLE, *PLAIN], paragraphs
    assert not any(reading in text for reading in READINGS)


@pytest.fixture(scope="module")
def ruby_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ruby")
    (folder / "edo.html").write_text(_page(), encoding="utf-8")
    chromium_pdf(_page(), folder / "edo-printed.pdf")
    chromium_pdf(_page("vertical"), folder / "edo-vertical.pdf")
    document = docx.Document()
    document.add_heading(TITLE, level=1)
    for pieces in (EDO, DAIMYO):
        ruby_paragraph(document, pieces)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "大名"
    ruby_paragraph(table.cell(0, 1), DAIMYO[:5])
    document.save(str(folder / "edo-word.docx"))
    office = tmp_path_factory.mktemp("office")
    (pdf,) = legacy_copies([folder / "edo-word.docx"], office, "pdf")
    shutil.move(pdf, folder / "edo-office.pdf")
    # Tesseract's page layout loses lines under furigana set as tight as the others (line-height 1.6); books
    # with furigana leave it room
    chromium_pdf(_page(css="body { font-size: 12pt; line-height: 2; }"), folder / "edo-roomy.pdf")
    scanned_pdf(folder / "edo-roomy.pdf", folder / "edo-scan.pdf", dpi=300)
    plain = "".join(f"<p>{text}</p>" for text in PLAIN)
    chromium_pdf(document_html([page_html(f"<h1>{TITLE}</h1>{plain}", layout="vertical")], css=INDENTED),
                 folder / "edo-vertical-plain.pdf")
    scanned_pdf(folder / "edo-vertical-plain.pdf", folder / "edo-vertical-scan.pdf", dpi=300)
    return folder


def test_html_ruby_reads_as_its_base_text(ruby_files: Path) -> None:
    page = html_text((ruby_files / "edo.html").read_text(encoding="utf-8"))
    _assert_reads_as_plain_text(page.text)
    heading = html_text("<h2><ruby>東京<rp>(</rp><rt>とうきょう</rt><rp>)</rp></ruby>の<ruby>地図<rtc><rt>ちず</rt>"
                        "</rtc></ruby></h2><pre><ruby>漢字<rt>かんじ</rt></ruby> と かな</pre>")
    assert heading.text == "東京の地図\n\n漢字 と かな" and heading.blocks[0].path == ("東京の地図",)


def test_word_ruby_keeps_its_base_text_in_paragraphs_and_tables(ruby_files: Path) -> None:
    word = docx_text(ruby_files / "edo-word.docx")
    *body, table = word.text.split("\n\n")
    _assert_reads_as_plain_text("\n\n".join(body))
    assert table == "大名\t幕府は大名を親藩"


@pytest.mark.parametrize(("name", "vertical"), [("edo-printed.pdf", False), ("edo-vertical.pdf", True),
                                                ("edo-office.pdf", False)])
def test_pdf_furigana_is_dropped_and_paragraphs_stay_whole(ruby_files: Path, name: str, vertical: bool) -> None:
    # Chromium sets each line's readings as a line of small kana above it (right of it in vertical text);
    # LibreOffice sets each word and its reading as runs of their own, one after the other
    (page,) = read_pdf(ruby_files / name).pages
    assert page.vertical is vertical
    paragraphs = page.text.split("\n\n")
    if name == "edo-office.pdf":  # and the Word file's table, a row
        assert paragraphs.pop() == "大名幕府は大名を親藩"
    _assert_reads_as_plain_text("\n\n".join(paragraphs))


def test_scanned_furigana_is_dropped(ruby_files: Path) -> None:
    # Tesseract reads the readings as lines of their own, or takes them into the line below
    pdf = read_pdf(ruby_files / "edo-scan.pdf")
    assert pdf.ocr_pages == [1]
    paragraphs = pdf.pages[0].text.split("\n\n")
    assert not any(reading in pdf.pages[0].text for reading in READINGS)
    assert len(paragraphs) >= 2  # the heading, too, where Tesseract finds it
    for read, printed in zip(paragraphs[-2:], PLAIN, strict=True):
        assert SequenceMatcher(None, read, printed).ratio() > 0.95, (read, printed)


@pytest.mark.skipif(ocr.with_vertical("jpn+eng") is None,
                    reason="needs Tesseract's vertical Japanese model (Debian: tesseract-ocr-jpn-vert; see .ci/run)")
def test_a_vertical_scan_is_read_down_its_columns(ruby_files: Path) -> None:
    # read as horizontal lines, Tesseract is unsure of the page; read again with jpn_vert, it finds the vertical
    # lines, which are laid out right to left like a text layer's
    (page,) = read_pdf(ruby_files / "edo-vertical-scan.pdf").pages
    assert page.vertical
    paragraphs = page.text.split("\n\n")
    assert paragraphs[0] == TITLE and len(paragraphs) == 3, paragraphs
    for read, printed in zip(paragraphs[1:], PLAIN, strict=True):
        assert SequenceMatcher(None, read, printed).ratio() > 0.9, (read, printed)


def test_a_word_under_furigana_is_found_by_keyword_and_its_hit_shows_no_readings(
        ruby_files: Path, tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("edo.html", "edo-word.docx", "edo-office.pdf", "edo-vertical.pdf"):
        shutil.copy(ruby_files / name, corpus / name)
    build(corpus, tmp_path / "index", embedder, keywords)
    searcher = Searcher(IndexDirectory(tmp_path / "index").current(), embedder)
    try:
        hits = searcher.search("参勤交代", k=10, mode="keyword")
        assert {hit.key for hit in hits} == {"edo.html", "edo-word.docx", "edo-office.pdf", "edo-vertical.pdf"}
        for hit in hits:
            document = searcher.document(document_id(hit.key))
            assert document is not None and "さんきんこうたい" not in document.text
            assert "参勤交代によって大名の財力を抑えた" in document.text[hit.start : hit.end]
    finally:
        searcher.close()


def _column(text: str, x: float, top: float, size: float = 10.0) -> list[Glyph]:
    """A vertical line of `text` as PDFium gives it: a glyph a character, downward from `top` at `x`."""
    return [Glyph(char, x, top - (n + 1) * size, x + size, top - n * size, font_size=size)
            for n, char in enumerate(text)]


def test_a_vertical_line_given_with_its_furigana_as_one_run_is_read_without_it() -> None:
    # PDFium can list a column, then its readings (half the size, back at the top, right of it) as one line
    run = _column("江戸幕府を開いた。", 500, 700) + _column("えど", 510, 700, 5) + _column("ばくふ", 510, 680, 5)
    (line,) = _lines([run])
    assert line.vertical and line.text == "江戸幕府を開いた。"


def test_pieces_of_a_vertical_line_out_of_order_are_joined_to_their_column() -> None:
    # …言われてい | the next paragraph's indented first character | る。 | the rest of that paragraph
    first = _column("言われてい", 500, 700)
    tail = _column("る。", 500, 650)
    indented = _column("次", 480, 690)
    rest = _column("の段落。", 480, 680)
    lines = _lines([first, indented, tail, rest])
    assert [line.text for line in lines] == ["言われている。", "次の段落。"]
    assert all(line.vertical for line in lines)
