"""PDF and Word files made by real producers, for the tests and the documents benchmark.

- Chromium's `--print-to-pdf` turns HTML pages into PDFs: one or two columns, running
  headers and footers, vertical (縦書き) text, a page that is only an image.
- LibreOffice (`soffice --headless --convert-to pdf`) converts HTML too, and writes
  password-protected PDFs through its PDF export filter's `EncryptFile` option.
- python-docx writes Word files with headings, paragraphs and tables, and paragraphs with furigana
  as Word writes them (`w:ruby`, built with docx.oxml: python-docx has no API for ruby).
- Furigana (ruby) come from SudachiPy's readings, over each word that has a kanji, and are written
  as HTML `<ruby>`, in Aozora Bunko's notation (`｜base《reading》`) or as Word's `w:ruby`.
- An Aozora Bunko text: title, author, the notation block, headings as notes, a colophon.
- LibreOffice also saves Word, Excel and PowerPoint files in their pre-2007 formats (.doc, .xls, .ppt).
- A scan is made the way a scanner makes one: pages rendered to grey images (pypdfium2) and
  written into a PDF of images alone (Pillow), with no text layer.

Debian packages: chromium, libreoffice-writer-nogui, fonts-ipafont-gothic (see .ci/run).
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import struct
import subprocess
import tempfile
import unicodedata
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import docx
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement

Pieces = list[tuple[str, str | None]]  # a text as (base, its reading in hiragana or None) pieces

PAGE_CSS = """
@page { size: A4; margin: 22mm 18mm; }
body { font-family: 'IPAGothic', 'IPAPGothic', sans-serif; font-size: 10.5pt; line-height: 1.6; margin: 0; }
.page { page-break-after: always; break-after: page; position: relative; height: 250mm; overflow: hidden;
        box-sizing: border-box; padding: 12mm 0; }
.page:last-child { page-break-after: auto; break-after: auto; }
.header, .footer { font-size: 8pt; color: #444; position: absolute; left: 0; right: 0; }
.header { top: 0; }
.footer { bottom: 0; text-align: center; }
.columns { column-count: 2; column-gap: 10mm; }
.vertical { writing-mode: vertical-rl; height: 220mm; margin-left: auto; }
p { margin: 0 0 3.5mm 0; text-align: justify; }
h1 { font-size: 14pt; margin: 0 0 4mm 0; }
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian: chromium / libreoffice-writer-nogui)")
    return path


def page_html(body: str, *, header: str = "", footer: str = "", layout: str = "") -> str:
    """One printed page: an optional running header and footer around the body."""
    top = f'<div class="header">{html.escape(header)}</div>' if header else ""
    bottom = f'<div class="footer">{html.escape(footer)}</div>' if footer else ""
    inner = f'<div class="{layout}">{body}</div>' if layout else body
    return f'<section class="page">{top}{inner}{bottom}</section>'


def positioned_columns_html(left: str, right: str) -> str:
    """Two columns placed side by side, the right one first in the file: a PDF whose text layer lists
    the right column before the left (as some producers write them)."""
    box = "position:absolute; top:0; width:47%; font-size:10.5pt; line-height:1.6;"
    return (f'<div style="position:relative; height:200mm;">'
            f'<div style="{box} left:53%;">{right}</div><div style="{box} left:0;">{left}</div></div>')


def paragraphs_html(paragraphs: Sequence[str], title: str = "") -> str:
    heading = f"<h1>{html.escape(title)}</h1>" if title else ""
    return heading + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def document_html(pages: Sequence[str], lang: str = "ja", title: str = "", css: str = "") -> str:
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">{head}<style>{PAGE_CSS}{css}</style>'
            f"</head><body>{''.join(pages)}</body></html>")


def chromium_pdf(document: str, out: Path, timeout: float = 120) -> Path:
    """Print an HTML document to `out` with headless Chromium."""
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "page.html"
        page.write_text(document, encoding="utf-8")
        subprocess.run(
            [_tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
             f"--user-data-dir={work}/profile", f"--print-to-pdf={out}", page.as_uri()],
            check=True, capture_output=True, timeout=timeout)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no PDF to {out}")
    return out


def scanned_pdf(source: Path, out: Path, *, dpi: int = 300, pages: Sequence[int] | None = None) -> Path:
    """`source`'s pages (1-based `pages`, default all) as a PDF of grey images at `dpi`, with no text layer."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(source))
    try:
        numbers = list(pages) if pages is not None else list(range(1, len(document) + 1))
        images = [document[n - 1].render(scale=dpi / 72, grayscale=True).to_pil() for n in numbers]
    finally:
        document.close()
    images[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out


def libreoffice_pdf(document: str, out: Path, *, password: str | None = None, timeout: float = 180) -> Path:
    """Convert an HTML document to `out` with LibreOffice, encrypted with `password` if given."""
    target = "pdf:writer_web_pdf_Export"
    if password is not None:
        options = {"EncryptFile": {"type": "boolean", "value": "true"},
                   "DocumentOpenPassword": {"type": "string", "value": password}}
        target += ":" + json.dumps(options)
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / f"{out.stem}.html"
        source.write_text(document, encoding="utf-8")
        subprocess.run(
            [_tool("soffice"), f"-env:UserInstallation=file://{work}/profile", "--headless",
             "--convert-to", target, "--outdir", work, str(source)],
            check=True, capture_output=True, timeout=timeout)
        shutil.move(Path(work) / f"{out.stem}.pdf", out)
    return out


def legacy_copies(sources: Sequence[Path], out: Path, kind: str, timeout: float = 300) -> list[Path]:
    """`sources` saved by LibreOffice in an old Office format (`doc`, `xls` or `ppt`) into `out`."""
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([_tool("soffice"), f"-env:UserInstallation=file://{work}/profile", "--headless",
                        "--convert-to", kind, "--outdir", str(out), *map(str, sources)],
                       check=True, capture_output=True, timeout=timeout)
    return [out / f"{source.stem}.{kind}" for source in sources]


def png_data_uri(width: int = 400, height: int = 300) -> str:
    """A grey PNG image (no text in it), as a data: URI for an image-only page."""
    row = b"\x00" + b"\x99\x99\x99" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def image_page() -> str:
    return page_html(f'<img src="{png_data_uri()}" style="width:160mm">')


def word_file(out: Path, blocks: Sequence[tuple[str, object]]) -> Path:
    """A .docx from (kind, value) blocks: ("h1"/"h2", text), ("p", text), ("ruby", pieces) for a paragraph
    with furigana, ("table", rows)."""
    document = docx.Document()
    for kind, value in blocks:
        if kind.startswith("h"):
            document.add_heading(str(value), level=int(kind[1:]))
        elif kind == "p":
            document.add_paragraph(str(value))
        elif kind == "ruby":
            ruby_paragraph(document, value)  # type: ignore[arg-type]
        elif kind == "table":
            rows = list(value)  # type: ignore[call-overload]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = str(cell)
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    document.save(str(out))
    return out


# ---------------------------------------------------------------- furigana

_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f々〆]")
_KATAKANA = re.compile(r"[\u30a1-\u30faー]+")
_RUBY_PROPERTIES = (("rubyAlign", "distributeSpace"), ("hps", "10"), ("hpsRaise", "18"), ("hpsBaseText", "21"),
                    ("lid", "ja-JP"))


@cache
def _sudachi() -> Any:
    import sudachipy

    return sudachipy.Dictionary(dict="core").create(mode=sudachipy.SplitMode.C)


def furigana(text: str) -> Pieces:
    """`text` as pieces: each word (SudachiPy morpheme) with a kanji carries its reading in hiragana, as group
    ruby over the whole word; the text between such words is in pieces without a reading."""
    pieces: Pieces = []
    for morpheme in _sudachi().tokenize(text):
        surface = morpheme.surface()
        reading = _reading(surface, morpheme.reading_form())
        if reading is None and pieces and pieces[-1][1] is None:
            pieces[-1] = (pieces[-1][0] + surface, None)
        else:
            pieces.append((surface, reading))
    return pieces


def _reading(surface: str, katakana: str) -> str | None:
    """The hiragana reading of a word with a kanji; None when it has none, or its reading is empty, not all
    kana or the word itself."""
    if not _KANJI.search(surface) or not _KATAKANA.fullmatch(katakana):
        return None
    hiragana = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in katakana)
    return None if surface in (katakana, hiragana) else hiragana


def ruby_html(pieces: Pieces) -> str:
    """HTML of the pieces, a reading as `<ruby>base<rp>（</rp><rt>reading</rt><rp>）</rp></ruby>`."""
    return "".join(html.escape(base) if reading is None
                   else f"<ruby>{html.escape(base)}<rp>（</rp><rt>{html.escape(reading)}</rt><rp>）</rp></ruby>"
                   for base, reading in pieces)


def ruby_paragraphs_html(paragraphs: Sequence[Pieces]) -> str:
    """`paragraphs_html` of paragraphs given as pieces."""
    return "".join(f"<p>{ruby_html(pieces)}</p>" for pieces in paragraphs)


def headed_paragraphs_html(sections: Sequence[tuple[str, Pieces]]) -> str:
    """Each (title, pieces) section as an `<h2>` title above its paragraph."""
    return "".join(f"<h2>{html.escape(title)}</h2><p>{ruby_html(pieces)}</p>" for title, pieces in sections)


def ruby_paragraph(document: Any, pieces: Pieces) -> None:
    """A paragraph of `document` (python-docx) whose readings are Word's `w:ruby` runs."""
    paragraph = document.add_paragraph()
    for base, reading in pieces:
        if reading is None:
            paragraph.add_run(base)
        else:
            paragraph._p.append(_ruby_run(base, reading))


def _ruby_run(base: str, reading: str) -> BaseOxmlElement:
    """`<w:r><w:ruby><w:rubyPr>…</w:rubyPr><w:rt>reading</w:rt><w:rubyBase>base</w:rubyBase></w:ruby></w:r>`,
    as Word writes it."""
    values = dict(_RUBY_PROPERTIES)
    properties = _element("w:rubyPr", *(_element(f"w:{name}", val=value) for name, value in _RUBY_PROPERTIES))
    ruby = _element("w:ruby", properties, _element("w:rt", _text_run(reading, values["hps"])),
                    _element("w:rubyBase", _text_run(base, values["hpsBaseText"])))
    return _element("w:r", ruby)


def _text_run(text: str, half_points: str) -> BaseOxmlElement:
    """A run of `text` at a size in half-points (Word gives the ruby's runs the sizes of its rubyPr)."""
    size = _element("w:rPr", _element("w:sz", val=half_points), _element("w:szCs", val=half_points))
    return _element("w:r", size, _element("w:t", text=text))


def _element(tag: str, *children: BaseOxmlElement, val: str | None = None, text: str | None = None
             ) -> BaseOxmlElement:
    element = OxmlElement(tag)
    if val is not None:
        element.set(qn("w:val"), val)
    if text is not None:
        element.text = text
    element.extend(children)
    return element


# ---------------------------------------------------------------- Aozora Bunko

AOZORA_NOTATION = """-------------------------------------------------------
【テキスト中に現れる記号について】

《》：ルビ
（例）首都《しゅと》

｜：ルビの付く文字列の始まりを特定する記号
（例）日本｜首都《しゅと》

［＃］：入力者注　主に外字の説明や、傍点の位置の指定
　　　（数字は、JIS X 0213の面区点番号またはUnicode）
（例）※［＃縦線、1-1-35］
-------------------------------------------------------"""
_AOZORA_NOTES = {"《": "※［＃始め二重山括弧、1-1-52］", "》": "※［＃終わり二重山括弧、1-1-53］",
                 "｜": "※［＃縦線、1-1-35］"}


def aozora_text(title: str, author: str, sections: Sequence[tuple[str, Pieces]], colophon: str) -> str:
    """A text in Aozora Bunko's layout (CRLF lines): title, author, the notation block, then each (heading,
    pieces) section as a 中見出し heading line and a paragraph line opened by a full-width space, readings as
    `｜base《reading》`; the colophon (底本：…) last. Characters cp932 lacks are notes `※［＃「name」、U+XXXX］`."""
    lines = [title, author, "", *AOZORA_NOTATION.splitlines(), ""]
    for heading, pieces in sections:
        escaped = aozora_escaped(heading)
        lines += ["", f"［＃３字下げ］{escaped}［＃「{escaped}」は中見出し］", "", "　" + ruby_aozora(pieces)]
    return "\r\n".join([*lines, "", "", colophon, ""])


def ruby_aozora(pieces: Pieces) -> str:
    return "".join(aozora_escaped(base) if reading is None else f"｜{aozora_escaped(base)}《{reading}》"
                   for base, reading in pieces)


def aozora_escaped(text: str) -> str:
    """`text` as Aozora Bunko writes it: its notation characters (《》｜) and those cp932 lacks as notes."""
    return "".join(_AOZORA_NOTES.get(c) or _cp932_char(c) for c in text)


def _cp932_char(c: str) -> str:
    try:
        c.encode("cp932")
    except UnicodeEncodeError:
        return " " if c.isspace() else f"※［＃「{unicodedata.name(c, 'unnamed').lower()}」、U+{ord(c):04X}］"
    return c


def cp932_read_back(text: str) -> str:
    """`text` as a cp932 file gives it back: characters cp932 maps to others (〜 → ～) changed, the rest kept."""
    return "".join(c.encode("cp932").decode("cp932") if _cp932_char(c) == c else c for c in text)


# ---------------------------------------------------------------- the tests' files

HEADER = "社外秘 ヨミトキ技術資料"
TOKYO = ("東京は日本の首都であり、政治・経済・文化の中心地である。人口は約千四百万人で、世界有数の大都市圏を"
         "形成している。江戸時代には将軍の居城が置かれ、明治維新の後に東京と改称された。")
KYOTO = ("京都は千年以上にわたり都が置かれた古都であり、多くの寺社や伝統的な町並みが残っている。毎年多くの"
         "観光客が訪れ、祇園祭などの祭りも有名である。")
LEFT_COLUMN = ("左段の文章です。札幌は北海道の道庁所在地であり、雪まつりで知られる。冬には大通公園に多くの雪像が"
               "並び、国内外から観光客が集まる。")
RIGHT_COLUMN = ("右段の文章です。那覇は沖縄県の県庁所在地であり、首里城で知られる。一年を通して温暖な気候で、"
                "国際通りには多くの店が並ぶ。")
ENGLISH = ("Indexing builds a searchable representation of documents. The extra\u00adordinarily "
           "long-winded narrator keeps explaining the import\u00adance of hyphen\u00adation in type\u00adsetting "
           "systems, where every para\u00adgraph is justified and words are broken across lines.")
VERTICAL = ("縦書きの文章は右から左へ読む。奈良は古代の都であり、東大寺の大仏で知られている。鹿が公園を自由に歩き、"
            "多くの人々が訪れる。") * 2


def make_test_documents(folder: Path) -> Path:
    """The bad-file and layout cases of the tests, each made by the tool that makes such files."""
    good = folder / "good"
    bad = folder / "bad"
    good.mkdir()
    bad.mkdir()

    def page(body: str, number: int, layout: str = "") -> str:
        return page_html(body, header=HEADER, footer=f"- {number} -", layout=layout)

    english = "<p>" + html.escape(ENGLISH).replace("\u00ad", "&shy;") + "</p>"
    pages = [
        page(paragraphs_html([TOKYO, KYOTO], "第一章 日本の都市"), 1),
        page(paragraphs_html([LEFT_COLUMN * 3]) + paragraphs_html([RIGHT_COLUMN * 3]) + english * 2, 2, "columns"),
        page(paragraphs_html([VERTICAL]), 3, "vertical"),
        image_page(),
        page(positioned_columns_html(paragraphs_html([LEFT_COLUMN * 2]), paragraphs_html([RIGHT_COLUMN * 2])), 5),
    ]
    chromium_pdf(document_html(pages), good / "report.pdf")
    word_file(good / "guide.docx", [
        ("h1", "運用ガイド"), ("p", "この文書はサーバーの運用手順を説明する。"),
        ("h2", "バックアップ"), ("p", "バックアップは毎晩三時に取得する。保存期間は三十日である。"),
        ("table", [["項目", "値"], ["保存先", "オブジェクトストレージ"], ["世代数", "30"]]),
        ("h2", "Monitoring"), ("p", "Alerts go to the on-call engineer within five minutes."),
    ])
    scanned_pdf(good / "report.pdf", good / "scanned.pdf", pages=[1, 2])  # OCR reads it (indexer.text.ocr)
    chromium_pdf(document_html([image_page(), image_page()]), bad / "scan.pdf")
    libreoffice_pdf(document_html([page(paragraphs_html([TOKYO]), 1)]), bad / "secret.pdf", password="himitsu")
    whole = (good / "report.pdf").read_bytes()
    (bad / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (bad / "broken.docx").write_bytes(b"PK\x03\x04 this is not a Word file")
    return folder
