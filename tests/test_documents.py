"""PDF and Word files made by real producers (Chromium, LibreOffice, python-docx), read, indexed and served.

The files come from benchmarks/document_files.py, made once per session into a tmp folder.
"""

from __future__ import annotations

import json
import shutil
from difflib import SequenceMatcher
from pathlib import Path

import pytest
from litestar.testing import TestClient

from benchmarks.document_files import (
    ENGLISH,
    HEADER,
    KYOTO,
    LEFT_COLUMN,
    RIGHT_COLUMN,
    TOKYO,
    VERTICAL,
    chromium_pdf,
    document_html,
    page_html,
    paragraphs_html,
)
from indexer.build.builder import document_id
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import load_corpus
from indexer.text.page_layout import join_lines
from indexer.text.pdf_text import PdfError, pdf_pages
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import build
from tests.office_files import save_deck, save_workbook

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("chromium", "soffice", "tesseract")),
    reason="needs Debian's chromium, libreoffice-writer-nogui and tesseract-ocr(-jpn) (see .ci/run)")


@pytest.fixture(scope="module")
def report_pages(document_files: Path) -> list[str]:
    return [page.text for page in pdf_pages(document_files / "good" / "report.pdf")]


def _flat(text: str) -> str:
    return "".join(text.split())


def test_japanese_lines_join_without_spaces_and_running_header_and_footer_are_dropped(report_pages: list[str]) -> None:
    first = report_pages[0]
    assert TOKYO in first and KYOTO in first  # lines broken mid-sentence join with nothing between them
    for text in report_pages:
        assert _flat(HEADER) not in _flat(text)
        assert "- " not in text  # the "- N -" page numbers


def test_english_words_keep_one_space_and_hyphenated_line_ends_rejoin(report_pages: list[str]) -> None:
    second = report_pages[1]
    assert "extraordinarily" in second and "hyphenation" in second and "paragraph" in second
    assert "Indexing builds a searchable representation of documents." in second
    assert "  " not in second.replace("\n\n", "\n")


def test_two_column_pages_read_column_by_column(report_pages: list[str]) -> None:
    # page 2: columns in text-layer order; page 5: the right column comes first in the file
    for text in (report_pages[1], report_pages[4]):
        flat = _flat(text)
        assert flat.index(_flat(LEFT_COLUMN)) < flat.index(_flat(RIGHT_COLUMN))
        assert _flat(LEFT_COLUMN * 2) in flat and _flat(RIGHT_COLUMN * 2) in flat  # no line of one inside the other
    assert _flat(ENGLISH.replace("\u00ad", "")) not in _flat(report_pages[4])


def test_vertical_text_reads_in_order_and_is_reported(document_files: Path, report_pages: list[str]) -> None:
    assert _flat(VERTICAL) in _flat(report_pages[2])
    pages = pdf_pages(document_files / "good" / "report.pdf")
    assert [page.number for page in pages if page.vertical] == [3]


@pytest.mark.parametrize(("first", "second", "joined"), [
    ("東京は日本の", "首都である。", "東京は日本の首都である。"),
    ("the quick brown", "fox jumps", "the quick brown fox jumps"),
    ("hyphen-", "ation works", "hyphenation works"),
    ("Tokyo-", "Osaka line", "Tokyo-Osaka line"),
    ("2019年の", "report said", "2019年のreport said"),
])
def test_join_lines(first: str, second: str, joined: str) -> None:
    assert join_lines(first, second) == joined


def test_bad_files_are_reported_and_skipped(document_files: Path) -> None:
    docs, failures = load_corpus(document_files / "bad")
    assert docs == []
    reasons = {failure.path: failure.reason for failure in failures}
    assert reasons["scan.pdf"] == "no text layer, and OCR found no text on its 2 scanned pages"
    assert reasons["secret.pdf"].startswith("encrypted PDF")
    assert reasons["truncated.pdf"].startswith("damaged or not a PDF")
    assert reasons["broken.docx"].startswith("damaged or not a Word file")


def test_page_count_and_extracted_size_are_bounded(document_files: Path) -> None:
    report = document_files / "good" / "report.pdf"
    with pytest.raises(PdfError, match="5 pages, more than the 4-page limit"):
        pdf_pages(report, max_pages=4)
    with pytest.raises(PdfError, match="more than 100 characters of text, the limit"):
        pdf_pages(report, max_chars=100)


def test_pdf_document_knows_its_pages(document_files: Path) -> None:
    docs, _ = load_corpus(document_files / "good")
    pdf = next(doc for doc in docs if doc.key == "report.pdf")
    starts = pdf.metadata["page_starts"]
    assert pdf.metadata["page_count"] == 5 and len(starts) == 5
    assert pdf.metadata["pages_without_text"] == [4] and pdf.metadata["vertical_pages"] == [3]
    assert TOKYO in pdf.text[starts[0] : starts[1]]
    assert _flat(VERTICAL) in _flat(pdf.text[starts[2] : starts[3]])


def test_scanned_pages_are_read_by_ocr_and_laid_out_like_a_text_layer(document_files: Path,
                                                                       report_pages: list[str]) -> None:
    docs, _ = load_corpus(document_files / "good")
    scan = next(doc for doc in docs if doc.key == "scanned.pdf")  # report.pdf's first two pages, as images
    assert scan.metadata["ocr_pages"] == [1, 2] and scan.metadata["page_count"] == 2
    starts = scan.metadata["page_starts"]
    pages = [scan.text[starts[0] : starts[1]], scan.text[starts[1] :]]
    for read, printed in zip(pages, report_pages[:2], strict=True):
        assert SequenceMatcher(None, _flat(read), _flat(printed), autojunk=False).ratio() >= 0.9, (read, printed)
    assert _flat(HEADER) not in _flat(scan.text) and "- " not in scan.text  # running header and footer dropped
    flat = _flat(pages[1])  # two columns, then an English paragraph in justified lines with wide gaps
    assert flat.index("左段") < flat.index("右段") < flat.index("Indexingbuilds")
    assert "Indexing builds a searchable representation of documents." in pages[1]


NEWS = ["Municipal authorities announced yesterday that the comprehensive redevelopment of the riverside "
        "neighbourhood will begin in spring, following extraordinarily lengthy consultations with residents.",
        "Opponents argued that the reconfiguration of transportation infrastructure would disproportionately "
        "affect shopkeepers, whose livelihoods depend on uninterrupted pedestrian traffic.",
        "Supporters countered that internationally recognised environmental certification requires the "
        "redevelopment to proceed without further postponement, and that compensation would be offered.",
        "The council will publish detailed implementation schedules next month, together with a telephone "
        "helpline for concerned citizens and a website listing every affected street."]


@pytest.mark.parametrize(("columns", "size"), [(2, 11), (3, 10)])
def test_narrow_justified_columns_read_in_order(tmp_path: Path, columns: int, size: int) -> None:
    # justified lines of a few long words leave gaps wider than a column gutter between them
    css = (f".columns {{ column-count: {columns}; column-gap: 7mm; text-align: justify; }} "
           f"body {{ font-family: 'DejaVu Serif', serif; font-size: {size}pt; }}")
    pdf = chromium_pdf(document_html([page_html(paragraphs_html(NEWS * 2, title="City news"), layout="columns")],
                                     lang="en", css=css), tmp_path / "news.pdf")
    [page] = pdf_pages(pdf)
    assert page.text.split("\n\n") == ["City news", *NEWS, *NEWS], page.text


def test_word_headings_become_sections_and_tables_text(document_files: Path) -> None:
    docs, _ = load_corpus(document_files / "good")
    word = next(doc for doc in docs if doc.key == "guide.docx")
    assert word.title == "運用ガイド"
    assert "保存先\tオブジェクトストレージ" in word.text
    sections = {word.text[s.start : s.end]: s.path for s in word.sections}
    assert sections["バックアップは毎晩三時に取得する。保存期間は三十日である。"] == ("運用ガイド", "バックアップ")
    assert sections["Alerts go to the on-call engineer within five minutes."] == ("運用ガイド", "Monitoring")


# ---------------------------------------------------------------- indexed and served


@pytest.fixture(scope="module")
def documents_index(document_files: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                    keywords: KeywordTokenizer) -> IndexDirectory:
    corpus = tmp_path_factory.mktemp("documents-corpus")
    for name in ("report.pdf", "guide.docx"):
        shutil.copy(document_files / "good" / name, corpus / name)
    shutil.copy(document_files / "bad" / "scan.pdf", corpus / "scan.pdf")
    records = [{"id": "rec-42", "title": "東京", "text": "東京は日本の首都である。", "tags": ["city"]}]
    (corpus / "records.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    prices = "品名,価格,産地\r\n紅玉りんご,120,青森\r\n温州みかん,80,愛媛\r\n"  # as Excel saves it in Japan
    (corpus / "prices.csv").write_bytes(prices.encode("cp932"))
    save_workbook(corpus / "shop.xlsx")
    save_deck(corpus / "talk.pptx")
    index = tmp_path_factory.mktemp("documents-index")
    report = build(corpus, index, embedder, keywords)
    assert [(f.path, f.reason) for f in report.failures] == [
        ("scan.pdf", "no text layer, and OCR found no text on its 2 scanned pages"),
        ("shop.xlsx:価格表:row 5", "6 cells, but the header names 5 columns")]
    return IndexDirectory(index)


def test_hits_carry_the_records_own_key_and_the_page(documents_index: IndexDirectory, embedder: Embedder) -> None:
    searcher = Searcher(documents_index.current(), embedder)
    try:
        record = searcher.search("首都", mode="keyword", k=10)
        assert "rec-42" in [hit.key for hit in record]
        nara = searcher.search("奈良 東大寺 大仏", mode="keyword", k=1)[0]
        assert (nara.key, nara.pages) == ("report.pdf", (3,))
        assert "page_starts" not in nara.metadata and nara.metadata["format"] == "pdf"
        word = searcher.search("バックアップ 保存期間", mode="keyword", k=1)[0]
        assert (word.key, word.pages) == ("guide.docx", ())  # a Word file has no pages
        # The first slide is short, but a slide never shares a chunk with the next: its hits name their own.
        slide = searcher.search("Hybrid wins", mode="keyword", k=1)[0]
        assert (slide.key, slide.section, slide.pages, slide.page) == ("talk.pptx", ("Results",), (2,), 2)
        first = searcher.search("形態素解析", mode="keyword", k=1)[0]
        assert (first.key, first.section, first.pages) == ("talk.pptx", ("検索の仕組み",), (1,))
    finally:
        searcher.close()


def test_a_hit_across_a_page_break_is_on_the_page_of_its_first_highlight() -> None:
    from indexer.search.searcher import Hit

    hit = Hit(doc_id="d", chunk_id=0, title="t", source="s.pdf", section=(), text="x" * 90, start=10, end=100,
              score=1.0, highlights=((70, 75), (80, 85)), language="en", metadata={}, pages=(1, 2),
              page_starts={2: 60})
    assert hit.page == 2 and hit.page_at(20, 25) == 1
    assert Hit(**{**hit.__dict__, "highlights": ()}).page == 1  # nothing highlighted: where the chunk starts


@pytest.fixture(scope="module")
def documents_client(documents_index: IndexDirectory, embedder: Embedder):  # type: ignore[no-untyped-def]
    settings = ServerSettings(index_dir=documents_index.path, generator=None)
    with TestClient(create_app(settings)) as client:
        yield client


def test_http_hits_carry_key_metadata_and_page(documents_client: TestClient) -> None:  # type: ignore[type-arg]
    hits = documents_client.post("/search", json={"query": "奈良 東大寺", "mode": "keyword", "k": 3}).json()["hits"]
    top = hits[0]
    assert (top["key"], top["page"], top["pages"]) == ("report.pdf", 3, [3])
    assert top["metadata"]["format"] == "pdf" and top["metadata"]["vertical_pages"] == [3]
    record = documents_client.get("/search", params={"q": "首都", "mode": "keyword"}).json()["hits"]
    assert any(hit["key"] == "rec-42" and hit["metadata"]["tags"] == ["city"] for hit in record)


def test_cli_json_hits_carry_page_as_http_hits_do(documents_index: IndexDirectory) -> None:
    from click.testing import CliRunner

    import indexer.cli

    result = CliRunner().invoke(indexer.cli.cli, ["search", "奈良 東大寺", "--index", str(documents_index.path),
                                                  "--mode", "keyword", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)[0]
    assert (top["key"], top["page"], top["pages"]) == ("report.pdf", 3, [3])


def test_spreadsheet_rows_are_found_filtered_and_fetched_by_key(documents_client: TestClient,  # type: ignore[type-arg]
                                                                 ) -> None:
    """A Shift_JIS CSV as Excel saves it: each row a document, its cells searchable and filterable."""
    where = {"and": [{"field": "metadata.価格", "gte": 100}, {"field": "metadata.format", "eq": "csv"}]}
    hits = documents_client.post("/search", json={"query": "りんご みかん", "mode": "keyword",
                                                  "filters": {"where": where}}).json()["hits"]
    assert [(hit["key"], hit["title"]) for hit in hits] == [("prices.csv:2", "紅玉りんご")]
    assert hits[0]["metadata"] == {"品名": "紅玉りんご", "価格": 120, "産地": "青森", "encoding": "cp932",
                                   "format": "csv", "language": "ja"}
    row = documents_client.get("/documents", params={"key": "prices.csv:3"}).json()
    assert row["text"] == "品名: 温州みかん\n価格: 80\n産地: 愛媛"


def test_powerpoint_hits_carry_their_slide_and_the_file_is_served(documents_client: TestClient,  # type: ignore[type-arg]
                                                                   documents_index: IndexDirectory) -> None:
    for query, slide in (("発表者メモ 質疑", 1), ("Grouped second", 2)):
        top = documents_client.post("/search", json={"query": query, "mode": "keyword", "k": 1}).json()["hits"][0]
        assert (top["key"], top["page"], top["metadata"]["format"]) == ("talk.pptx", slide, "pptx"), top
    deck = documents_client.get("/documents/talk.pptx").json()
    assert [p["page"] for p in deck["pages"]] == [1, 2, 3] and deck["title"] == "検索の仕組み"
    original = documents_client.get(deck["file"])
    assert original.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.presentationml")
    assert original.content == (Path(documents_index.current().manifest.corpus) / "talk.pptx").read_bytes()
    sheet = documents_client.get("/search", params={"q": "refunds working days", "mode": "keyword"}).json()["hits"]
    assert (sheet[0]["key"], sheet[0]["metadata"]["sheet"]) == ("refunds", "FAQ"), sheet


def test_documents_by_key_with_pages_and_the_original_file(documents_client: TestClient,  # type: ignore[type-arg]
                                                             document_files: Path) -> None:
    by_key = documents_client.get("/documents/report.pdf").json()
    assert by_key["id"] == document_id("report.pdf") and by_key["key"] == "report.pdf"
    pages = by_key["pages"]
    assert [p["page"] for p in pages] == [1, 2, 3, 4, 5]
    assert TOKYO in by_key["text"][pages[0]["start"] : pages[0]["end"]]
    assert by_key["file"] == f"/documents/{by_key['id']}/file"
    original = documents_client.get(by_key["file"])
    assert original.status_code == 200, original.text
    assert original.headers["content-type"] == "application/pdf"
    assert original.content == (document_files / "good" / "report.pdf").read_bytes()
    response = documents_client.get("/documents", params={"key": "rec-42"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert (record["key"], record["text"]) == ("rec-42", "東京は日本の首都である。")
    assert (record["pages"], record["file"]) == ([], None)
    missing = documents_client.get("/documents", params={"key": "no-such"})
    assert missing.status_code == 404 and "no-such" in missing.json()["detail"]
    not_a_file = documents_client.get(f"/documents/{document_id('rec-42')}/file")
    assert not_a_file.status_code == 404 and "not a PDF, Word, PowerPoint or image file" in not_a_file.json()["detail"]


def test_answer_span_and_citations_name_key_and_page(documents_client: TestClient) -> None:  # type: ignore[type-arg]
    body = documents_client.post("/ask", json={"question": "What does indexing build?", "mode": "extractive"}).json()
    assert body["answer_found"], body
    span, cited = body["answer_span"], body["citations"][0]
    assert (span["key"], span["page"]) == ("report.pdf", 2), body
    assert (cited["key"], cited["page"]) == ("report.pdf", 2) and 2 in cited["pages"]
