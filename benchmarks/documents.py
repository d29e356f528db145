"""Retrieval from PDF, Word, PowerPoint, Excel, HTML and Aozora Bunko files against the same paragraphs as
JSON lines, and PDF indexing speed.
  # noqa: E402
    python benchmarks/documents.py [--data ../shared/data] [--paragraphs 120] [--questions 300]
                                   [--per-page 3] [--sets jsquad:pdf,squad:docx] [--ruby] [--vertical]
                                   [--workdir /tmp/yomitoki-documents]

JSQuAD (Japanese): `--paragraphs` paragraphs, sampled with a fixed seed, are printed by
headless Chromium into PDF files of four pages, `--per-page` paragraphs a page, every
other page in two columns, with a running header and a page-number footer. The same
paragraphs are also written as JSON lines (one record per paragraph, the same title as
their PDF file). Both folders are indexed with yomitoki's own builder (the bundled
all-MiniLM-L6-v2, hybrid search) and the questions about those paragraphs are searched:

- recall@5: a question counts when one of the top 5 hits covers its gold paragraph (for
  JSON lines: the paragraph's record; for PDF: a chunk overlapping the paragraph's text,
  found in the extracted text with spaces ignored);
- gold page: of those covering hits, the share whose `pages` include the page the
  paragraph was printed on (target ≥ 99%);
- extraction: the share of paragraphs whose whole text was found in the PDF text.

SQuAD (English): the same with python-docx Word files (a heading per article, ten
paragraphs a file), no pages.

Either set can be scanned (`jsquad:scan`): the PDFs above rendered to grey images at
`--scan-dpi` and written as PDFs of images alone, read back by OCR (Tesseract, as the
indexer reads any scan). OCR misreads some characters, so a paragraph is found in the
extracted text by alignment (difflib's matching blocks of five characters or more, spaces
ignored) rather than whole; `ocr_char_recall` is the share of each paragraph's characters
found that way, averaged, and extraction speed is OCR's, from an empty OCR cache.

The Word, PowerPoint and Excel files can be saved by LibreOffice in the formats before
2007 (`squad:doc`, `jsquad:ppt`, `squad:xls`), which the indexer converts back with
LibreOffice; extraction time is then mostly conversion, from an empty conversion cache.

Either set can instead be written as PowerPoint files (`jsquad:pptx`: python-pptx,
twelve slides a file, a slide per paragraph titled with its article; gold page =
its slide) or as one Excel workbook (`squad:xlsx`: openpyxl, a row per paragraph
with `id`, `title` and `text` columns, the JSON lines' records as cells).

Either set can be written as HTML pages (`jsquad:html`: twelve paragraphs a file, each under an `<h2>`
of its article's title), and JSQuAD as Aozora Bunko texts (`jsquad:aozora`: twelve paragraphs a .txt in
cp932 with CRLF lines: title and author lines, the block explaining the notation between lines of
hyphens, each paragraph a line opened by a full-width space under a `［＃「title」は中見出し］` heading,
and a 底本 colophon; characters cp932 lacks are written as notes `※［＃「name」、U+XXXX］`, and a
paragraph's gold text is what cp932 gives back, 〜 read as ～). In both, as in Word files, a paragraph is
found in the extracted text whole, spaces ignored.

`--ruby` (JSQuAD; formats pdf, scan, docx, html, aozora) puts furigana over every word with a kanji:
SudachiPy's reading of each morpheme that has one, in hiragana, as group ruby over the whole word, written
as HTML `<ruby>` with `<rp>` parentheses (in the printed and scanned PDFs too: Chromium prints the readings
as small glyphs above the line), as Word's `w:ruby`, or in Aozora's notation `｜base《reading》` (without
`--ruby` the Aozora texts keep their layout but carry no readings). The gold text stays the paragraph
without readings, so extraction shows whether a reader leaves the readings out of the text.
`--vertical` (formats pdf, scan) prints every page in vertical writing (縦書き, no two-column pages); the
running header and footer stay horizontal.

Speed: PDF extraction (load_corpus over the PDF folder) in pages/s, beside the build's
embedding time, measured in the same run; the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.document_files import (  # noqa: E402
    Pieces,
    aozora_text,
    chromium_pdf,
    cp932_read_back,
    document_html,
    furigana,
    headed_paragraphs_html,
    legacy_copies,
    page_html,
    ruby_paragraphs_html,
    scanned_pdf,
    word_file,
)
from indexer.build.builder import BuildOptions, BuildReport, IndexBuilder, document_id  # noqa: E402
from indexer.embed.base import Embedder  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Hit, Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.text import legacy_office, ocr  # noqa: E402
from indexer.text.keywords import load_keyword_tokenizer  # noqa: E402
from indexer.text.loaders import load_corpus  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MODEL = "all-minilm-l6-v2"
PAGES_PER_FILE = 4
FORMATS = ("pdf", "scan", "docx", "pptx", "xlsx", "doc", "ppt", "xls", "html", "aozora")
RUBY_FORMATS = ("pdf", "scan", "docx", "html", "aozora")
VERTICAL_FORMATS = ("pdf", "scan")
BENCH_CSS = "body { font-size: 9pt; line-height: 1.5; } p { margin-bottom: 2.5mm; }"
AOZORA_COLOPHON = ("底本：「JSQuAD」valid-v1.3、日本語版ウィキペディアの記事による\r\n"
                   "入力：yomitoki ベンチマーク\r\n"
                   "※青空文庫の書式に倣って作ったファイルです。")


@dataclass(frozen=True)
class Paragraph:
    id: str
    title: str
    text: str
    file: str = ""
    page: int = 0      # 1-based page it was printed on (PDF)


@dataclass(frozen=True)
class Question:
    text: str
    paragraph: str


def load_set(name: str, data: Path, paragraphs: int, questions: int,
             seed: int = 7) -> tuple[list[Paragraph], list[Question]]:
    path = data / ("squad-v1.1/dev-v1.1.json" if name == "squad" else "jsquad/valid-v1.3.json")
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    found: list[Paragraph] = []
    asked: list[Question] = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            title, _, text = context.partition(" [SEP] ") if name == "jsquad" else (article["title"], "", context)
            pid = f"{name}-{a}-{p}"
            found.append(Paragraph(pid, title.replace("_", " "), " ".join(text.split())))
            asked += [Question(qa["question"], pid) for qa in paragraph["qas"]]
    rng = random.Random(seed)
    chosen = rng.sample(found, min(paragraphs, len(found)))
    ids = {p.id for p in chosen}
    pool = [q for q in asked if q.paragraph in ids]
    return chosen, rng.sample(pool, min(questions, len(pool)))


# ---------------------------------------------------------------- files


def pieces(p: Paragraph, ruby: bool) -> Pieces:
    """The paragraph's text as pieces, with furigana if `ruby`."""
    return furigana(p.text) if ruby else [(p.text, None)]


def write_pdfs(paragraphs: Sequence[Paragraph], folder: Path, per_page: int, *, ruby: bool = False,
               vertical: bool = False) -> list[Paragraph]:
    """PDF files of PAGES_PER_FILE pages, every other page in two columns or all vertical (縦書き), with furigana
    if `ruby`; returns the paragraphs with their file and page."""
    placed: list[Paragraph] = []
    per_file = per_page * PAGES_PER_FILE
    for f, start in enumerate(range(0, len(paragraphs), per_file)):
        name = f"jsquad-{f:03d}.pdf"
        pages = []
        group = paragraphs[start : start + per_file]
        for n, offset in enumerate(range(0, len(group), per_page), 1):
            on_page = group[offset : offset + per_page]
            layout = "vertical" if vertical else "columns" if n % 2 == 0 else ""
            body = ruby_paragraphs_html([pieces(p, ruby) for p in on_page])
            pages.append(page_html(body, header=f"JSQuAD 段落集 {name}", footer=f"- {n} -", layout=layout))
            placed += [Paragraph(p.id, p.title, p.text, name, n) for p in on_page]
        chromium_pdf(document_html(pages, title=f"段落集 {f:03d}", css=BENCH_CSS), folder / name)
    return placed


def write_scans(paragraphs: Sequence[Paragraph], folder: Path, per_page: int, dpi: int, *, ruby: bool = False,
                vertical: bool = False) -> list[Paragraph]:
    """The PDFs of `write_pdfs`, scanned: each page an image at `dpi`, no text layer."""
    printed = folder.parent / "printed"
    printed.mkdir()
    placed = write_pdfs(paragraphs, printed, per_page, ruby=ruby, vertical=vertical)
    for pdf in sorted(printed.glob("*.pdf")):
        scanned_pdf(pdf, folder / pdf.name, dpi=dpi)
    return placed


def write_legacy(placed: list[Paragraph], modern: Path, folder: Path, kind: str) -> list[Paragraph]:
    """The files written to `modern`, saved by LibreOffice in the old format `kind` (doc, ppt, xls) into `folder`."""
    legacy_copies(sorted(modern.iterdir()), folder, kind)
    return [dataclasses.replace(p, file=f"{Path(p.file).stem}.{kind}") if p.file else p for p in placed]


def write_jsonl(paragraphs: Sequence[Paragraph], path: Path, title_of: dict[str, str]) -> None:
    records = [{"id": p.id, "title": title_of[p.id], "text": p.text} for p in paragraphs]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_pptx(paragraphs: Sequence[Paragraph], folder: Path, prefix: str) -> list[Paragraph]:
    """PowerPoint files of twelve slides, a paragraph a slide under its article's title."""
    from pptx import Presentation

    placed = []
    for f, start in enumerate(range(0, len(paragraphs), 12)):
        name = f"{prefix}-{f:03d}.pptx"
        deck = Presentation()
        for n, p in enumerate(paragraphs[start : start + 12], 1):
            slide = deck.slides.add_slide(deck.slide_layouts[1])
            slide.shapes.title.text = p.title
            slide.placeholders[1].text = p.text
            placed.append(Paragraph(p.id, p.title, p.text, name, n))
        deck.save(str(folder / name))
    return placed


def write_xlsx(paragraphs: Sequence[Paragraph], folder: Path, prefix: str) -> list[Paragraph]:
    """One workbook, a row per paragraph: id, title (the JSON lines' title) and text columns."""
    import openpyxl

    name = f"{prefix}.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["id", "title", "text"])
    placed = [Paragraph(p.id, p.title, p.text, name) for p in paragraphs]
    for p in placed:
        sheet.append([p.id, name_title(p), p.text])
    workbook.save(folder / name)
    return placed


def name_title(p: Paragraph) -> str:
    """The title a paragraph's JSON lines record gets: its file's name without the suffix."""
    return Path(p.file).stem


def write_docx(paragraphs: Sequence[Paragraph], folder: Path, *, ruby: bool = False) -> list[Paragraph]:
    """Word files of ten paragraphs, each under a heading of its article's title, with furigana (`w:ruby`) if
    `ruby`."""
    placed = []
    for f, start in enumerate(range(0, len(paragraphs), 10)):
        name = f"squad-{f:03d}.docx"
        blocks: list[tuple[str, object]] = []
        for p in paragraphs[start : start + 10]:
            blocks += [("h2", p.title), ("ruby", furigana(p.text)) if ruby else ("p", p.text)]
            placed.append(Paragraph(p.id, p.title, p.text, name))
        word_file(folder / name, blocks)
    return placed


def write_html(paragraphs: Sequence[Paragraph], folder: Path, prefix: str, *, ruby: bool = False) -> list[Paragraph]:
    """HTML files of twelve paragraphs, each under an `<h2>` of its article's title, with `<ruby>` if `ruby`."""
    placed = []
    for f, start in enumerate(range(0, len(paragraphs), 12)):
        name = f"{prefix}-{f:03d}.html"
        group = [Paragraph(p.id, p.title, p.text, name) for p in paragraphs[start : start + 12]]
        body = headed_paragraphs_html([(p.title, pieces(p, ruby)) for p in group])
        lang = "ja" if prefix == "jsquad" else "en"
        (folder / name).write_text(document_html([body], lang=lang, title=f"{prefix} {f:03d}"), encoding="utf-8")
        placed += group
    return placed


def write_aozora(paragraphs: Sequence[Paragraph], folder: Path, *, ruby: bool = False) -> list[Paragraph]:
    """Aozora Bunko texts (cp932) of twelve paragraphs, each under a 中見出し of its article's title, with
    `｜base《reading》` furigana if `ruby`; a paragraph's text is what cp932 gives back (〜 → ～)."""
    placed = []
    for f, start in enumerate(range(0, len(paragraphs), 12)):
        name = f"jsquad-{f:03d}.txt"
        group = [Paragraph(p.id, p.title, cp932_read_back(p.text), name) for p in paragraphs[start : start + 12]]
        text = aozora_text(f"JSQuAD 段落集 {f:03d}", "ウィキペディア日本語版の執筆者",
                           [(p.title, pieces(p, ruby)) for p in group], AOZORA_COLOPHON)
        (folder / name).write_bytes(text.encode("cp932"))
        placed += group
    return placed


# ---------------------------------------------------------------- measuring


def index(corpus: Path, target: Path, embedder: Embedder) -> BuildReport:
    shutil.rmtree(target, ignore_errors=True)
    return IndexBuilder(IndexDirectory(target), embedder, load_keyword_tokenizer(), BuildOptions()).build(corpus)


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def flat_texts(paragraphs: Sequence[Paragraph], searcher: Searcher) -> dict[str, tuple[str, list[int]]]:
    """file -> its extracted text without spaces, and each kept character's offset in the text."""
    texts = {}
    for file in {p.file for p in paragraphs}:
        doc = searcher.document(document_id(file))
        original = doc.text if doc else ""
        keep = [i for i, c in enumerate(original) if not c.isspace()]
        texts[file] = ("".join(original[i] for i in keep), keep)
    return texts


def spans_in_files(paragraphs: Sequence[Paragraph], searcher: Searcher) -> dict[str, tuple[str, int, int]]:
    """paragraph id -> (document key, start, end) of its text in the extracted document text."""
    texts = flat_texts(paragraphs, searcher)
    spans = {}
    for p in paragraphs:
        flat, keep = texts[p.file]
        at = flat.find(_flat(p.text))
        if at >= 0:
            spans[p.id] = (p.file, keep[at], keep[at + len(_flat(p.text)) - 1] + 1)
    return spans


def aligned_spans_in_files(paragraphs: Sequence[Paragraph],
                           searcher: Searcher) -> tuple[dict[str, tuple[str, int, int]], float]:
    """paragraph id -> (document key, start, end) of the text OCR read for it, found by alignment (matching
    blocks of 5+ characters, spaces ignored, spanning at most 1.5 times the paragraph); and the mean share of
    each paragraph's characters found in those blocks."""
    from difflib import SequenceMatcher

    texts = flat_texts(paragraphs, searcher)
    spans = {}
    found = []
    for p in paragraphs:
        flat, keep = texts[p.file]
        wanted = _flat(p.text)
        blocks = [b for b in SequenceMatcher(None, flat, wanted, autojunk=False).get_matching_blocks() if b.size >= 5]
        found.append(sum(b.size for b in blocks) / len(wanted))
        if blocks:
            start, end = blocks[0].a, blocks[-1].a + blocks[-1].size
            if end - start <= 1.5 * len(wanted):
                spans[p.id] = (p.file, keep[start], keep[end - 1] + 1)
    return spans, sum(found) / len(found)


def covers(hit: Hit, span: tuple[str, int, int] | None) -> bool:
    return span is not None and hit.key == span[0] and hit.start < span[2] and hit.end > span[1]


def evaluate(questions: Sequence[Question], searcher: Searcher, gold_span: dict[str, tuple[str, int, int]],
             pages: dict[str, int] | None, k: int = 5) -> tuple[float, float | None, int]:
    found = 0
    page_right = page_total = 0
    for q in questions:
        hits = searcher.search(q.text, k=k)
        covering = [h for h in hits if covers(h, gold_span.get(q.paragraph))]
        found += bool(covering)
        if pages is not None:
            page_total += len(covering)
            page_right += sum(1 for h in covering if pages[q.paragraph] in h.pages)
    share = page_right / page_total if page_total else None
    return found / len(questions), share, page_total


def write_files(name: str, file_format: str, paragraphs: Sequence[Paragraph], work: Path,
                args: argparse.Namespace) -> list[Paragraph]:
    """The paragraphs written as `file_format` files into `work`/files; returns them with their file and page."""
    files, modern = work / "files", work / "modern"
    ruby, vertical = args.ruby, args.vertical
    writers = {"pdf": lambda: write_pdfs(paragraphs, files, args.per_page, ruby=ruby, vertical=vertical),
               "scan": lambda: write_scans(paragraphs, files, args.per_page, args.scan_dpi, ruby=ruby,
                                           vertical=vertical),
               "docx": lambda: write_docx(paragraphs, files, ruby=ruby),
               "pptx": lambda: write_pptx(paragraphs, files, name),
               "xlsx": lambda: write_xlsx(paragraphs, files, name),
               "html": lambda: write_html(paragraphs, files, name, ruby=ruby),
               "aozora": lambda: write_aozora(paragraphs, files, ruby=ruby),
               "doc": lambda: write_legacy(write_docx(paragraphs, modern), modern, files, "doc"),
               "ppt": lambda: write_legacy(write_pptx(paragraphs, modern, name), modern, files, "ppt"),
               "xls": lambda: write_legacy(write_xlsx(paragraphs, modern, name), modern, files, "xls")}
    modern.mkdir()
    return writers[file_format]()


def run_set(name: str, file_format: str, args: argparse.Namespace, embedder: Embedder) -> dict[str, object]:
    paragraphs, questions = load_set(name, args.data, args.paragraphs, args.questions)
    flags = "".join(f"-{flag}" for flag in ("ruby", "vertical") if getattr(args, flag))
    work = args.workdir / f"{name}-{file_format}{flags}"
    shutil.rmtree(work, ignore_errors=True)
    files, records = work / "files", work / "records"
    files.mkdir(parents=True)
    records.mkdir()
    started = time.perf_counter()
    placed = write_files(name, file_format, paragraphs, work, args)
    render_s = time.perf_counter() - started
    write_jsonl(placed, records / f"{name}.jsonl", {p.id: name_title(p) for p in placed})

    ocr.default_cache_dir = lambda: work / "ocr-cache"  # type: ignore[assignment]  # empty: OCR is timed
    legacy_office.default_cache_dir = lambda: work / "converted"  # type: ignore[assignment]  # and conversion
    started = time.perf_counter()
    docs, failures = load_corpus(files)
    extract_s = time.perf_counter() - started
    page_count = sum(int(d.metadata.get("page_count", 0)) for d in docs)
    file_report = index(files, work / "index-files", embedder)
    record_report = index(records, work / "index-records", embedder)

    file_searcher = Searcher(IndexDirectory(work / "index-files").current(), embedder)
    record_searcher = Searcher(IndexDirectory(work / "index-records").current(), embedder)
    try:
        rows = file_format in ("xlsx", "xls")  # a row per paragraph, keyed by its id as a JSON lines record is
        char_recall = None
        if rows:
            spans = {p.id: (p.id, 0, len(p.text)) for p in placed}
        elif file_format == "scan":
            spans, char_recall = aligned_spans_in_files(placed, file_searcher)
        else:
            spans = spans_in_files(placed, file_searcher)
        pages = {p.id: p.page for p in placed} if file_format in ("pdf", "scan", "pptx", "ppt") else None
        file_recall, page_share, covering = evaluate(questions, file_searcher, spans, pages)
        record_spans = {p.id: (p.id, 0, len(p.text)) for p in placed}
        record_recall, _, _ = evaluate(questions, record_searcher, record_spans, None)
    finally:
        file_searcher.close()
        record_searcher.close()
    return {
        "set": name, "format": file_format, "ruby": args.ruby, "vertical": args.vertical, "paragraphs": len(placed),
        "questions": len(questions), "files": len(docs), "failures": [f.reason for f in failures],
        "pages": page_count, "extracted_whole": len(spans) / len(placed),
        "ocr_char_recall": None if char_recall is None else round(char_recall, 4),
        "recall@5": round(file_recall, 4), "recall@5_jsonl": round(record_recall, 4),
        "recall_gap": round(record_recall - file_recall, 4),
        "gold_page_share": None if page_share is None else round(page_share, 4), "covering_hits": covering,
        "render_s": round(render_s, 2), "extract_s": round(extract_s, 3),
        "extract_pages_per_s": round(page_count / extract_s, 2) if page_count else None,
        "build_s": round(file_report.seconds, 2), "embed_s": round(file_report.embed_seconds, 2),
        "build_pages_per_s": round(page_count / file_report.seconds, 2) if page_count else None,
        "jsonl_build_s": round(record_report.seconds, 2), "jsonl_embed_s": round(record_report.embed_seconds, 2),
    }


def checked_sets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (set, format) pairs of `--sets`; an argparse error for a pair the set, format or flags rule out."""
    sets = []
    for entry in args.sets.split(","):
        name, _, file_format = entry.partition(":")
        file_format = file_format or ("pdf" if name == "jsquad" else "docx")
        if name not in ("jsquad", "squad") or file_format not in FORMATS:
            parser.error(f"--sets {entry}: sets are jsquad and squad, formats {', '.join(FORMATS)}")
        if file_format == "aozora" and name != "jsquad":
            parser.error(f"--sets {entry}: the aozora format (Aozora Bunko's notation) is for Japanese text: "
                         "jsquad:aozora only")
        if args.ruby and (name != "jsquad" or file_format not in RUBY_FORMATS):
            parser.error(f"--ruby needs a jsquad set in a format {', '.join(RUBY_FORMATS)}, not {entry}")
        if args.vertical and file_format not in VERTICAL_FORMATS:
            parser.error(f"--vertical: {entry} has no printed pages (formats {', '.join(VERTICAL_FORMATS)})")
        sets.append((name, file_format))
    return sets


def report(result: dict[str, object]) -> None:
    """Print the result as JSON and its figures in words."""
    print(json.dumps(result, ensure_ascii=False))
    name = result["set"]
    flags = f"ruby {'on' if result['ruby'] else 'off'}, vertical {'on' if result['vertical'] else 'off'}"
    print(f"{name}: recall@5 {result['format']} ({flags}) {result['recall@5']:.3f} vs JSON lines "
          f"{result['recall@5_jsonl']:.3f} (gap {result['recall_gap']:+.3f}; target within 0.02)"
          + (f"; gold page {result['gold_page_share']:.1%} of {result['covering_hits']} covering hits "
             f"(target ≥ 99%)" if result["gold_page_share"] is not None else "")
          + (f"; paragraphs located {result['extracted_whole']:.1%}, OCR character recall "
             f"{result['ocr_char_recall']:.1%}" if result["ocr_char_recall"] is not None
             else f"; extracted whole {result['extracted_whole']:.1%}"))
    if result["pages"]:
        print(f"{name}: {result['pages']} pages: extraction {result['extract_s']}s "
              f"({result['extract_pages_per_s']} pages/s) beside embedding {result['embed_s']}s; "
              f"whole build {result['build_s']}s ({result['build_pages_per_s']} pages/s)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--paragraphs", type=int, default=120, help="paragraphs per set (a sample)")
    parser.add_argument("--questions", type=int, default=300, help="questions per set (a sample)")
    parser.add_argument("--per-page", type=int, default=3, help="JSQuAD paragraphs printed on a page")
    parser.add_argument("--sets", default="jsquad:pdf,squad:docx",
                        help="set:format pairs; formats pdf, scan, docx, pptx, xlsx, doc, ppt, xls, html, aozora "
                             "(aozora: jsquad only; a set alone: jsquad pdf, squad docx)")
    parser.add_argument("--ruby", action="store_true",
                        help="JSQuAD paragraphs with furigana over each word with a kanji (formats pdf, scan, docx, "
                             "html, aozora)")
    parser.add_argument("--vertical", action="store_true",
                        help="every page printed in vertical writing, 縦書き (formats pdf, scan)")
    parser.add_argument("--scan-dpi", type=int, default=300, help="resolution of the scanned pages (format scan)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/yomitoki-documents"))
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args(argv)
    sets = checked_sets(parser, args)
    embedder = load_embedder(args.model)
    print(f"load average before: {os.getloadavg()}")
    for name, file_format in sets:
        report(run_set(name, file_format, args, embedder))
    print(f"load average after: {os.getloadavg()}")

if __name__ == "__main__":
    main()
