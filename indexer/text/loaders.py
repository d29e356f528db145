"""Finding and reading corpus files: Markdown, plain text, HTML, JSON and JSON lines, CSV, TSV and Excel,
PDF, Word and PowerPoint (their pre-2007 formats too, through LibreOffice), and images of scanned pages
(PNG, JPEG, TIFF).

Each file becomes one or more `SourceDocument`s whose `text` is the original text that every
later offset (chunks, highlights, answers) points into, with `sections` marking the
text-bearing blocks and their heading trail. Problems with single files never stop a corpus
load: they come back as `LoadFailure`s that say what was wrong.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from indexer.errors import InputError
from indexer.text.aozora import is_aozora, read_aozora
from indexer.text.docx_text import DocxError, docx_text
from indexer.text.exclusions import NO_EXCLUSIONS, Exclusions
from indexer.text.html_text import html_text
from indexer.text.image_text import IMAGE_SUFFIXES, ImageError, read_image_file
from indexer.text.language import detect_language
from indexer.text.legacy_office import CONVERSIONS, ConversionError, convert_all, converted
from indexer.text.markdown_text import parse_markdown
from indexer.text.normalize import tag_form
from indexer.text.pages import PAGE_STARTS
from indexer.text.pdf_text import PdfError, PdfText, read_pdf
from indexer.text.pptx_text import PptxError, pptx_text
from indexer.text.xlsx_rows import XlsxError, xlsx_sheets

DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".jsonl", ".json", ".csv", ".tsv", ".xlsx",
                     ".pdf", ".docx", ".pptx", *CONVERSIONS)
# everything `load_file` reads: images of scanned pages too, which a folder walk takes only when asked
# (a folder of documents often holds screenshots and diagrams that are not documents)
SUPPORTED_SUFFIXES = (*DOCUMENT_SUFFIXES, *IMAGE_SUFFIXES)
# formats holding one document per line, item or row, each with a key of its own
MANY_DOCUMENT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".xlsx", ".xls")
DEFAULT_MAX_BYTES = 10_000_000
TITLE_MAX_CHARS = 200
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Section:
    """One text-bearing block: text[start:end] is its visible text, path its heading trail."""

    start: int
    end: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class SourceDocument:
    """A document as read from the corpus, before normalization and chunking."""

    key: str
    source: str
    title: str
    text: str
    sections: tuple[Section, ...]
    metadata: dict[str, object]


@dataclass(frozen=True)
class LoadFailure:
    """A file (or a line of a JSON lines file, a row of a CSV file) that could not be loaded, and why."""

    path: str
    reason: str


class LoadError(InputError):
    """A file that cannot be loaded at all."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# ---------------------------------------------------------------- discovery


def _describe_limit(max_bytes: int) -> str:
    """'10 MB' for round megabytes, else the byte count."""
    if max_bytes >= 1_000_000 and max_bytes % 1_000_000 == 0:
        return f"{max_bytes // 1_000_000} MB"
    return f"{max_bytes:,} bytes"


def _relative(path: Path, root: Path) -> str:
    """Posix path of `path` relative to the corpus root (a file root counts as its folder)."""
    base = root if root.is_dir() else root.parent
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _not_utf8(name: str) -> bool:
    """Whether a file name read from the disk held bytes that are not UTF-8 (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _resolve_link(path: Path) -> Path | str:
    """The real target of a symlink, or a reason why it has none."""
    try:
        return path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        return "symlink loop" if exc.errno == errno.ELOOP else "broken symlink"


@dataclass(frozen=True)
class _Walk:
    """Settings and results of one walk over a corpus folder."""

    root: Path
    real_root: Path
    follow_symlinks: bool
    max_bytes: int
    suffixes: tuple[str, ...]
    files: list[Path]
    failures: list[LoadFailure]

    def fail(self, path: Path, reason: str) -> None:
        self.failures.append(LoadFailure(_relative(path, self.root), reason))

    def add_file(self, path: Path, size: int, exclusions: Exclusions) -> None:
        if not path.name.lower().endswith(self.suffixes) or exclusions.excludes(_relative(path, self.root)):
            return
        if size > self.max_bytes:
            self.fail(path, f"larger than {_describe_limit(self.max_bytes)} limit ({size:,} bytes)")
        else:
            self.files.append(path)

    def walk(self, folder: Path, ancestors: tuple[Path, ...], exclusions: Exclusions) -> None:
        """`exclusions`: those in force in the folder holding `folder` (or in the root, for the root)."""
        if folder != self.root:
            relative = _relative(folder, self.root)
            if exclusions.excludes(relative, folder=True):
                return
            exclusions = exclusions.below(folder, relative)  # the folder's own .yomitokiignore
        if len(ancestors) > _MAX_DEPTH:
            self.fail(folder, f"folders nested deeper than {_MAX_DEPTH} levels")
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            self.fail(folder, f"cannot read folder ({exc.strerror})")
            return
        for entry in entries:
            if not entry.name.startswith("."):
                self.visit(entry, ancestors, exclusions)

    def visit(self, entry: os.DirEntry[str], ancestors: tuple[Path, ...], exclusions: Exclusions) -> None:
        path = Path(entry.path)
        if _not_utf8(entry.name):  # a document's key is its path, kept as UTF-8 text: it cannot hold this one
            shown = os.fsencode(_relative(path, self.root)).decode("utf-8", "backslashreplace")
            self.failures.append(LoadFailure(shown, "the name is not UTF-8 (a Shift_JIS name from a Windows zip "
                                                    "file or share, say): rename it"))
            return
        try:
            if entry.is_symlink():
                self.visit_link(path, ancestors, exclusions)
            elif entry.is_dir(follow_symlinks=False):
                self.walk(path, (*ancestors, Path(os.path.realpath(path))), exclusions)
            elif entry.is_file(follow_symlinks=False):
                self.add_file(path, entry.stat(follow_symlinks=False).st_size, exclusions)
        except OSError as exc:
            self.fail(path, f"cannot read ({exc.strerror})")

    def visit_link(self, path: Path, ancestors: tuple[Path, ...], exclusions: Exclusions) -> None:
        target = _resolve_link(path)
        if isinstance(target, str):
            self.fail(path, target)
        elif not self.follow_symlinks and not target.is_relative_to(self.real_root):
            self.fail(path, "symlink outside the corpus root")
        elif target.is_dir():
            if target in ancestors:
                self.fail(path, "symlink loop")
            else:
                self.walk(path, (*ancestors, target), exclusions)
        elif target.is_file():
            self.add_file(path, target.stat().st_size, exclusions)


def discover_files(
    root: Path, *, follow_symlinks: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
    exclusions: Exclusions = NO_EXCLUSIONS, images: bool = False,
) -> tuple[list[Path], list[LoadFailure]]:
    """Document files under `root` (a folder or one file; image files of scanned pages too with `images`, or
    when `root` is one) that `exclusions` leave in, sorted, and the ones refused."""
    if not root.exists():
        raise LoadError(str(root), "no such file or folder")
    real_root = root.resolve()
    suffixes = SUPPORTED_SUFFIXES if images or not root.is_dir() else DOCUMENT_SUFFIXES
    walk = _Walk(root, real_root, follow_symlinks, max_bytes, suffixes, [], [])
    if root.is_dir():
        walk.walk(root, (real_root,), exclusions)
    elif not root.name.lower().endswith(SUPPORTED_SUFFIXES):
        walk.fail(root, f"unsupported file type (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    else:
        walk.add_file(root, root.stat().st_size, exclusions)
    walk.files.sort(key=lambda path: _relative(path, root))
    return walk.files, walk.failures


# ---------------------------------------------------------------- reading


# A byte-order mark says the encoding outright (and is not part of the text).
_BOMS = ((codecs.BOM_UTF8, "utf-8", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"))
# Text from before UTF-8 was the norm, tried when a file is not UTF-8: Japanese in Windows' Shift_JIS
# (as cp932, its superset) or Unix's EUC-JP, and Western European in Windows-1252 (which the web also
# reads for files labelled ISO-8859-1). ISO-2022-JP (7-bit, with escapes) is valid UTF-8 and is
# recognised by its escapes.
_LEGACY_JAPANESE = ("cp932", "euc_jp")
_WESTERN = "cp1252"
_ISO_2022_JP_ESCAPES = ("\x1b$B", "\x1b$@", "\x1b(J")
# Japanese prose in Shift_JIS or EUC-JP holds full-width kana (two bytes each); a reading whose only kana
# are half-width (one byte each, 0xA1-0xDF) is far likelier Western or UTF-8 bytes read wrong: café's é
# as UTF-8 (0xC3 0xA9) reads in Shift_JIS as ﾃｩ.
_FULL_WIDTH_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa]")
# ...unless it reads no other way, and is then plainly written in half-width kana: at least this many, and
# nearly all its non-ASCII characters (old system exports, bank-transfer files: ﾔﾏﾀﾞ ﾀﾛｳ).
HALF_WIDTH_ONLY_MIN = 8
HALF_WIDTH_ONLY_SHARE = 0.9
# A Western European language keeps most of its letters in ASCII (Icelandic, among the most accented,
# about 86% by letter frequency); Greek, Cyrillic or Japanese bytes read as Windows-1252 give letters
# nearly all outside it.
WESTERN_MAX_ACCENTED = 0.3
_LETTER = re.compile(r"[^\W\d_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Bytes that would be valid UTF-8 sequences: in a UTF-8 file with a damaged byte, nearly all of its
# non-ASCII bytes; in Shift_JIS or EUC-JP text, by chance, up to about half (46% in corpus/ja-*.md);
# in Windows-1252 text, few (an accented capital before a curly quote).
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
DAMAGED_UTF8 = 0.8


def _read_text(path: Path, rel: str) -> tuple[str, str]:
    """The file's text and the encoding it was read in, or a LoadError saying why it has none.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are read as such. A file
    that is not UTF-8 is read in a legacy encoding when one reads it as language
    (`_legacy`); anything else is refused rather than indexed garbled.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(rel, f"cannot read ({exc.strerror})") from exc
    encoding = "utf-8"
    for bom, codec, name in _BOMS:
        if raw.startswith(bom):
            text, encoding = _decoded(raw[len(bom):], codec, name, rel, len(bom)), codec
            break
    else:
        if b"\x00" in raw:
            raise LoadError(rel, "binary file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            legacy = _legacy(raw)
            if legacy is None:
                raise LoadError(rel, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}), "
                                     "Shift_JIS, EUC-JP or Windows-1252") from exc
            return legacy
        if any(escape in text for escape in _ISO_2022_JP_ESCAPES):
            text, encoding = _decoded(raw, "iso2022_jp", "ISO-2022-JP", rel, 0), "iso2022_jp"
    if "\x00" in text:  # anywhere: SQLite's substr() and length() stop at a NUL
        raise LoadError(rel, "binary file")
    return text, encoding


def _decoded(raw: bytes, codec: str, name: str, rel: str, skipped: int) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        offset = exc.start + skipped
        raise LoadError(rel, f"not valid {name} (byte 0x{raw[exc.start]:02x} at offset {offset})") from exc


def _legacy(raw: bytes) -> tuple[str, str] | None:
    """`raw` read in the legacy encoding it was written in, and which; None when none reads it as language.

    A UTF-8 file with a damaged byte is none of them (`DAMAGED_UTF8`). A
    Japanese reading (Shift_JIS or EUC-JP) must decode without error and hold
    full-width kana, or, when nothing else reads it, be Shift_JIS plainly written in half-width kana
    (`_half_width_only`); a Western one (Windows-1252) must pass `_western`. Short texts can
    read more than one way; charset-normalizer then picks the reading that looks
    like language rather than noise (a German "Übermaß" is also valid Shift_JIS,
    with half-width kana in it).
    """
    in_utf8 = _in_utf8_sequences(raw)
    if in_utf8 > DAMAGED_UTF8:
        return None
    readings: dict[str, str] = {}
    for codec in _LEGACY_JAPANESE:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if _FULL_WIDTH_KANA.search(text):
            readings[codec] = text
    western = _western(raw) if in_utf8 <= 0.5 else None  # more: likelier damaged UTF-8 (`_western`)
    if western is not None:
        readings[_WESTERN] = western
    if not readings:
        half_width = _half_width_only(raw)
        return (half_width, "cp932") if half_width is not None else None
    codec = next(iter(readings))
    if len(readings) > 1:
        from charset_normalizer import from_bytes

        best = from_bytes(raw, cp_isolation=list(readings)).best()
        codec = best.encoding if best is not None and best.encoding in readings else codec
    return readings[codec], codec


def _half_width_only(raw: bytes) -> str | None:
    """`raw` as Shift_JIS written in half-width kana alone, when it reads so plainly (`HALF_WIDTH_ONLY_MIN`)."""
    try:
        text = raw.decode("cp932")
    except UnicodeDecodeError:
        return None
    beyond_ascii = [char for char in text if ord(char) > 0x7F]
    kana = sum(1 for char in beyond_ascii if "\uff61" <= char <= "\uff9f")
    if kana < HALF_WIDTH_ONLY_MIN or kana < HALF_WIDTH_ONLY_SHARE * len(beyond_ascii) or _CONTROL.search(text):
        return None
    return text


def _western(raw: bytes) -> str | None:
    """`raw` as Windows-1252 text when it reads as a Latin-script language, else None.

    It must decode (five bytes are undefined in Windows-1252), hold no control
    characters but whitespace (a binary file does), keep most of its letters in
    ASCII (`WESTERN_MAX_ACCENTED`). `_legacy` also wants at most half of its
    non-ASCII bytes in UTF-8 sequences: more, and it is more likely UTF-8 with a
    damaged byte, whose every accent Windows-1252 would read as two wrong characters.
    """
    try:
        text = raw.decode(_WESTERN)
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    letters = _LETTER.findall(text)
    accented = sum(not letter.isascii() for letter in letters)
    if not letters or accented > WESTERN_MAX_ACCENTED * len(letters):
        return None
    return text


def _in_utf8_sequences(raw: bytes) -> float:
    """The share of `raw`'s non-ASCII bytes that form valid UTF-8 sequences."""
    high = sum(byte >= 0x80 for byte in raw)
    return sum(len(match) for match in _UTF8_SEQUENCE.findall(raw)) / high if high else 0.0


def _first_line(text: str) -> str:
    """The first non-empty line of `text`, stripped and cut to the title length."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:TITLE_MAX_CHARS]
    return ""


def _trimmed(text: str, start: int, end: int, path: tuple[str, ...]) -> Section | None:
    """A section for text[start:end] without surrounding whitespace, or None if blank."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Section(start, end, path) if start < end else None


_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def _paragraph_sections(text: str, path: tuple[str, ...] = ()) -> list[Section]:
    """One section per run of non-blank lines, trimmed of surrounding whitespace."""
    bounds = [0]
    for match in _BLANK_LINES.finditer(text):
        bounds.extend(match.span())
    bounds.append(len(text))
    sections = (_trimmed(text, a, b, path) for a, b in zip(bounds[::2], bounds[1::2], strict=True))
    return [section for section in sections if section is not None]


def _document(
    key: str, rel: str, title: str, text: str, sections: list[Section], metadata: dict[str, object]
) -> SourceDocument:
    """A SourceDocument with the language filled in (a valid given language wins)."""
    metadata = finite(metadata)
    if metadata.get("language") not in ("ja", "en"):
        metadata["language"] = detect_language(text)
    return SourceDocument(key, rel, title, text, tuple(sections), metadata)


def finite(metadata: dict[str, object]) -> dict[str, object]:
    """Metadata with every number that is not finite (front matter's `.inf` and `.nan`, JSON's `NaN`) made
    null: JSON has no such numbers, and SQLite refuses to read a document's metadata that holds one, so a
    single such value would fail every metadata filter on the index."""

    def value(item: object) -> object:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: value(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [value(inner) for inner in item]
        return item

    return {key: value(item) for key, item in metadata.items()}


# Metadata a loader derives from a file's own structure; a value given for one (in an HTTP write, a JSON
# record, front matter) is left out, so it can neither contradict the file's pages nor break reading them.
DERIVED_FIELDS = frozenset({PAGE_STARTS, "page_count"})


def given_metadata(metadata: dict[str, object] | None) -> dict[str, object]:
    """Metadata given with an HTTP write, read as a file's would be: tags lower-cased and split, a language
    other than ja or en left out (the text's own is detected), and fields derived from files left out."""
    given = {key: value for key, value in (metadata or {}).items() if key not in DERIVED_FIELDS}
    if "tags" in given:
        given["tags"] = _parse_tags(given["tags"])
    if given.get("language") not in ("ja", "en"):
        given.pop("language", None)
    return given


def _parse_tags(value: object) -> list[str]:
    """Tags from 'a, b', '[a, b]' or a list, in `tag_form`; none from null (an empty `tags:`)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).strip().strip("[]").split(",")
    tags = (tag_form(str(item).strip().strip("'\"")) for item in items if item is not None)
    return [tag for tag in tags if tag]


# ---------------------------------------------------------------- formats


def _load_markdown(text: str, rel: str, stem: str) -> SourceDocument:
    structure = parse_markdown(text)
    sections = [Section(start, end, path) for start, end, path in structure.blocks]
    metadata: dict[str, object] = {}
    for key, value in structure.front_matter.items():
        if key == "tags":
            metadata["tags"] = _parse_tags(value)
        elif value != [] and value is not None and key not in DERIVED_FIELDS:  # `key:` with nothing after it
            metadata[key] = value
    given_title = str(metadata.get("title") or "").strip()
    first = _first_line(text[sections[0].start : sections[0].end]) if sections else ""
    title = (given_title or structure.h1)[:TITLE_MAX_CHARS] or first or stem
    metadata["format"] = "markdown"
    return _document(rel, rel, title, text, sections, metadata)


def _load_text(text: str, rel: str, stem: str) -> SourceDocument:
    """A plain-text file, its paragraphs by blank lines; one in Aozora Bunko notation as clean text."""
    if is_aozora(text):
        return _load_aozora(text, rel, stem)
    metadata: dict[str, object] = {"format": "text"}
    return _document(rel, rel, _first_line(text) or stem, text, _paragraph_sections(text), metadata)


def _load_aozora(text: str, rel: str, stem: str) -> SourceDocument:
    """A work in Aozora Bunko notation: its text as a reader sees it (ruby readings and annotations
    gone, gaiji decoded), a section per line under its 見出し trail, the header's title and author."""
    work = read_aozora(text)
    sections = [Section(block.start, block.end, block.path) for block in work.blocks]
    metadata: dict[str, object] = {"format": "text", "notation": "aozora"}
    if work.author:
        metadata["author"] = work.author
    return _document(rel, rel, work.title[:TITLE_MAX_CHARS] or stem, work.text, sections, metadata)


def _load_html(text: str, rel: str, stem: str) -> SourceDocument:
    try:
        page = html_text(text)
    except RecursionError as exc:
        raise LoadError(rel, "HTML nested too deeply") from exc
    sections = [Section(block.start, block.end, block.path) for block in page.blocks]
    title = (page.title or page.h1)[:TITLE_MAX_CHARS] or stem
    return _document(rel, rel, title, page.text, sections, {"format": "html"})


def _load_pdf(path: Path, rel: str, stem: str) -> SourceDocument:
    """A PDF's pages, blank-line separated; `page_starts` in the metadata says where each begins."""
    try:
        pdf = read_pdf(path)
    except PdfError as exc:
        raise LoadError(rel, str(exc)) from exc
    return _paged_document(pdf, "pdf", rel, stem)


def _load_image(path: Path, rel: str, stem: str) -> SourceDocument:
    """An image file's pages (a TIFF's frames) as OCR read them, like a scanned PDF's."""
    try:
        kind, pages = read_image_file(path)
    except (ImageError, PdfError) as exc:
        raise LoadError(rel, str(exc)) from exc
    return _paged_document(pages, kind, rel, stem)


def _paged_document(pdf: PdfText, kind: str, rel: str, stem: str) -> SourceDocument:
    pages = pdf.pages
    starts, parts, offset = [], [], 0
    for page in pages:
        starts.append(offset)
        parts.append(page.text)
        offset += len(page.text) + 2
    text = "\n\n".join(parts)
    metadata: dict[str, object] = {"format": kind, "page_count": len(pages), PAGE_STARTS: starts}
    if vertical := [page.number for page in pages if page.vertical]:
        metadata["vertical_pages"] = vertical
    if blank := [page.number for page in pages if not page.text]:
        metadata["pages_without_text"] = blank
    if pdf.ocr_pages:
        metadata["ocr_pages"] = pdf.ocr_pages
    title = pdf.title[:TITLE_MAX_CHARS] or _first_line(text) or stem
    return _document(rel, rel, title, text, _paragraph_sections(text), metadata)


def _load_docx(path: Path, rel: str, stem: str) -> SourceDocument:
    try:
        word = docx_text(path)
    except DocxError as exc:
        raise LoadError(rel, str(exc)) from exc
    sections = [Section(block.start, block.end, block.path) for block in word.blocks]
    title = word.title[:TITLE_MAX_CHARS] or _first_line(word.text) or stem
    return _document(rel, rel, title, word.text, sections, {"format": "docx"})


def _load_pptx(path: Path, rel: str, stem: str) -> SourceDocument:
    """A PowerPoint file's slides as pages (`page_starts`), each block's section trail its slide's title."""
    try:
        deck = pptx_text(path)
    except PptxError as exc:
        raise LoadError(rel, str(exc)) from exc
    sections = [Section(block.start, block.end, block.path) for block in deck.blocks]
    metadata: dict[str, object] = {"format": "pptx", "page_count": len(deck.slide_starts),
                                   PAGE_STARTS: deck.slide_starts}
    if deck.blank_slides:
        metadata["pages_without_text"] = deck.blank_slides
    title = deck.title[:TITLE_MAX_CHARS] or _first_line(deck.text) or stem
    return _document(rel, rel, title, deck.text, sections, metadata)


_FILE_LOADERS: dict[str, Callable[[Path, str, str], SourceDocument]] = {
    ".pdf": _load_pdf, ".docx": _load_docx, ".pptx": _load_pptx, **dict.fromkeys(IMAGE_SUFFIXES, _load_image),
}


# ---------------------------------------------------------------- JSON lines

_RESERVED_FIELDS = frozenset({"id", "text", "title", "metadata"})
_Entry = TypeVar("_Entry")


class _BadLine(ValueError):
    """A JSON lines record that cannot become a document."""


def _record(line: str) -> dict[str, object]:
    """The JSON object on a line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"invalid JSON ({exc.msg}: column {exc.colno})") from exc  # msg may end in 'at'
    return _checked_record(record)


def _checked_record(record: object) -> dict[str, object]:
    """A parsed JSON value that can be a record: an object whose strings SQLite and UTF-8 can hold."""
    if not isinstance(record, dict):
        raise _BadLine(f"expected a JSON object, got {type(record).__name__}")
    try:  # JSON escapes can spell lone surrogates ("\ud800"), which no UTF-8 text can hold
        dumped = json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise _BadLine(f"lone surrogate {bad.encode('unicode_escape').decode()} is not valid Unicode") from exc
    if b"\\u0000" in dumped and _has_nul(record):  # and NUL ("\u0000"), which SQLite's substr() stops at
        raise _BadLine("NUL character (\\u0000) in a string")
    return record


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


def _required_string(record: dict[str, object], field: str) -> str:
    """A field that must be a string with some non-whitespace text."""
    if field not in record:
        raise _BadLine(f"missing '{field}'")
    value = record[field]
    if not isinstance(value, str):
        raise _BadLine(f"'{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _BadLine(f"empty '{field}'")
    return value


def _record_metadata(record: dict[str, object], file_format: str) -> dict[str, object]:
    """The 'metadata' object merged with the other top-level scalar fields."""
    given = record.get("metadata", {})
    if not isinstance(given, dict):
        raise _BadLine(f"'metadata' must be an object, got {type(given).__name__}")
    metadata: dict[str, object] = {}
    for key, value in record.items():
        if key not in _RESERVED_FIELDS and (key == "tags" or not isinstance(value, (list, dict))):
            metadata[key] = value
    metadata.update(given)
    if "tags" in metadata:
        metadata["tags"] = _parse_tags(metadata["tags"])
    metadata["format"] = file_format
    return {key: value for key, value in metadata.items() if key not in DERIVED_FIELDS}


def _jsonl_document(record: dict[str, object], rel: str, file_format: str = "jsonl") -> SourceDocument:
    """The document for one valid record."""
    doc_id = _required_string(record, "id")
    text = _required_string(record, "text")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise _BadLine(f"'title' must be a string, got {type(title).__name__}")
    title = (title or "").strip()[:TITLE_MAX_CHARS] or _first_line(text)
    metadata = _record_metadata(record, file_format)
    return _document(doc_id, rel, title, text, _paragraph_sections(text), metadata)


def _load_jsonl(text: str, rel: str) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """The documents of the good lines, and a failure for each bad line."""
    failures: list[LoadFailure] = []
    lines = ((number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip())
    docs = _numbered_documents(lines, lambda _, line: _jsonl_document(_record(line), rel), rel, "line", failures)
    return docs, failures


def _numbered_documents(entries: Iterable[tuple[int, _Entry]], read: Callable[[int, _Entry], SourceDocument],
                        place: str, unit: str, failures: list[LoadFailure]) -> list[SourceDocument]:
    """The documents `read(number, entry)` makes of the numbered entries (lines, items, rows), in order;
    for an entry it refuses (`_BadLine`) or whose key an earlier one took, a failure `place:unit N`."""
    docs: list[SourceDocument] = []
    first: dict[str, int] = {}
    for number, entry in entries:
        try:
            doc = read(number, entry)
            if doc.key in first:
                raise _BadLine(f"duplicate id (first used on {unit} {first[doc.key]})")
        except _BadLine as exc:
            failures.append(LoadFailure(f"{place}:{unit} {number}", str(exc)))
            continue
        first[doc.key] = number
        docs.append(doc)
    return docs


def _load_json(text: str, rel: str) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """A JSON file: an array of records as JSON lines holds them, each a document, or one record, whose
    key is the file's path when it has no `id`. Bad items are failures `file.json:item N`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(rel, f"invalid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})") from exc
    if isinstance(value, dict):
        try:
            return [_jsonl_document(_checked_record({"id": rel, **value}), rel, "json")], []
        except _BadLine as exc:
            raise LoadError(rel, str(exc)) from exc
    if not isinstance(value, list):
        raise LoadError(rel, f"expected a JSON array of records or one record, got {type(value).__name__}")
    failures: list[LoadFailure] = []
    items = enumerate(value, start=1)
    docs = _numbered_documents(items, lambda _, item: _jsonl_document(_checked_record(item), rel, "json"), rel,
                               "item", failures)
    return docs, failures


# ---------------------------------------------------------------- CSV and TSV

_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_COLUMN_ROLES = ("id", "text", "title", "tags")  # header names (any case) with a meaning of their own
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")  # as written, so "007" and "1e3" stay text


def _load_table(text: str, rel: str, suffix: str) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """A CSV or TSV file's rows as documents (`_table_documents`), and a failure for each bad row."""
    failures: list[LoadFailure] = []
    docs = _table_documents(_csv_rows(text, rel, suffix, failures), rel, rel, {"format": suffix[1:]}, failures)
    return docs, failures


def _load_workbook(path: Path, rel: str) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """An Excel workbook's rows as documents, sheet by sheet: keys `file:sheet:row` without an `id`
    column, and the sheet's name in `metadata.sheet`."""
    try:
        sheets = xlsx_sheets(path)
    except XlsxError as exc:
        raise LoadError(rel, str(exc)) from exc
    docs: list[SourceDocument] = []
    failures: list[LoadFailure] = []
    for sheet in sheets:
        metadata: dict[str, object] = {"format": "xlsx", "sheet": sheet.title}
        docs += _table_documents(iter(sheet.rows), rel, f"{rel}:{sheet.title}", metadata, failures)
    return docs, failures


def _table_documents(rows: Iterator[tuple[int, list[str]]], rel: str, place: str, metadata: dict[str, object],
                     failures: list[LoadFailure]) -> list[SourceDocument]:
    """One document per row under the first (the header), adding a failure for each row that cannot be one.

    Columns named `id`, `text`, `title` and `tags` (any case) give the key, the
    text, the title and the tags; every other column is metadata (numbers as
    numbers, empty cells left out), with `metadata` added. A table without a
    `text` column is read as records: each row's text is its cells as
    `column: value` lines, so any spreadsheet is searchable, and its title is
    its first cell. Without an `id` column a row's key is `place` and its row
    number as a spreadsheet shows it (`a.csv:2` for the first row under the
    header); failures are `place:row N`.
    """
    header = next(rows, None)
    if header is None:
        return []
    columns = _column_names(header[1])
    roles: dict[str, str] = {}  # role -> the column that plays it (the first, in any case)
    for name in columns:
        if name.lower() in _COLUMN_ROLES:
            roles.setdefault(name.lower(), name)

    def read(number: int, cells: list[str]) -> SourceDocument:
        if len(cells) > len(columns):
            raise _BadLine(f"{len(cells)} cells, but the header names {len(columns)} columns")
        return _row_document(dict(zip(columns, cells, strict=False)), roles, rel, f"{place}:{number}", metadata)

    return _numbered_documents(rows, read, place, "row", failures)


def _csv_rows(text: str, rel: str, suffix: str, failures: list[LoadFailure]) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) of each row that has a non-blank cell; a row the csv module
    cannot read ends the file with a failure, keeping the rows before it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[suffix])
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            failures.append(LoadFailure(f"{rel}:row {number}", f"cannot read the rest of the file ({exc})"))
            return
        if any(cell.strip() for cell in cells):
            yield number, cells


def _column_names(header: list[str]) -> list[str]:
    """The header's names, stripped; an empty one is `column N`, a repeated one gets ` (2)`, ` (3)`…"""
    names: list[str] = []
    for i, cell in enumerate(header, start=1):
        base = cell.strip() or f"column {i}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base} ({n})"
        names.append(name)
    return names


def _row_document(cells: dict[str, str], roles: dict[str, str], rel: str, row_key: str,
                  given: dict[str, object]) -> SourceDocument:
    """The document for one row, its cells by column name; `row_key` is its key without an `id` column."""
    key = cells.get(roles["id"], "").strip() if "id" in roles else row_key
    if not key:
        raise _BadLine("empty 'id'")
    filled = {name: value.strip() for name, value in cells.items() if value.strip() and name != roles.get("id")}
    title = filled.get(roles.get("title", ""), "")
    if "text" in roles:
        text = cells.get(roles["text"], "")
        if not text.strip():
            raise _BadLine("empty 'text'")
        title = title or _first_line(text)
    else:  # a record: its cells as `column: value` lines
        if not filled:
            raise _BadLine("no cells but the id")
        text = "\n".join(f"{name}: {value}" for name, value in filled.items())
        title = title or _first_line(next(iter(filled.values())))
    metadata: dict[str, object] = {name: _cell_value(value) for name, value in filled.items()
                                   if name not in roles.values()}
    if roles.get("tags") in filled:
        metadata["tags"] = _parse_tags(filled[roles["tags"]])
    metadata.update(given)
    return _document(key, rel, title[:TITLE_MAX_CHARS], text, _paragraph_sections(text), metadata)


def _cell_value(value: str) -> object:
    """A cell as metadata: a number when written as one, else the text."""
    if _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    return value


# ---------------------------------------------------------------- loading

_Loader = Callable[[str, str, str], SourceDocument]
_LOADERS: dict[str, _Loader] = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".txt": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
}


def _load(path: Path, root: Path) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """The documents of one file and the failures of its bad JSON lines; LoadError if unusable."""
    rel = _relative(path, root)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(rel, f"unsupported file type (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    if suffix in CONVERSIONS:  # .doc, .xls, .ppt: read as LibreOffice rewrites them, keeping their own format
        try:
            docs, failures = _load_office(converted(path), rel, path.stem)
        except ConversionError as exc:
            raise LoadError(rel, str(exc)) from exc
        except OSError as exc:
            raise LoadError(rel, f"cannot read ({exc.strerror or exc})") from exc
        return [dataclasses.replace(doc, metadata={**doc.metadata, "format": suffix[1:]}) for doc in docs], failures
    if suffix in (".xlsx", *_FILE_LOADERS):
        return _load_office(path, rel, path.stem)
    text, encoding = _read_text(path, rel)
    if suffix in (".jsonl", ".json", ".csv", ".tsv"):
        read = {".jsonl": _load_jsonl, ".json": _load_json}.get(suffix)
        docs, failures = read(text, rel) if read else _load_table(text, rel, suffix)
        if not docs and not failures:
            raise LoadError(rel, "empty document")
        return [_encoded(doc, encoding) for doc in docs], failures
    doc = _LOADERS[suffix](text, rel, path.stem)
    if not doc.sections:
        raise LoadError(rel, "empty document")
    return [_encoded(doc, encoding)], []


def _load_office(path: Path, rel: str, stem: str) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """A workbook's rows, or the one document of a PDF, Word, PowerPoint or image file."""
    if path.suffix.lower() == ".xlsx":
        docs, failures = _load_workbook(path, rel)
        if not docs and not failures:
            raise LoadError(rel, "empty document")
        return docs, failures
    doc = _FILE_LOADERS[path.suffix.lower()](path, rel, stem)
    if not doc.sections:
        raise LoadError(rel, "empty document")
    return [doc], []


def _encoded(doc: SourceDocument, encoding: str) -> SourceDocument:
    """The document with `metadata.encoding` naming the file's encoding when it was not UTF-8."""
    if encoding == "utf-8":
        return doc
    return dataclasses.replace(doc, metadata={"encoding": encoding, **doc.metadata})


def text_document(key: str, text: str, title: str | None = None,
                  metadata: dict[str, object] | None = None) -> SourceDocument:
    """A document given as text rather than read from a file (an HTTP write); its paragraphs are its sections."""
    if "\x00" in text:
        raise LoadError(key, "NUL character in the text")
    sections = _paragraph_sections(text)
    if not sections:
        raise LoadError(key, "empty document")
    given = given_metadata(metadata)
    given["format"] = "text"
    return _document(key, key, (title or "").strip()[:TITLE_MAX_CHARS] or _first_line(text), text, sections, given)


def load_file(path: Path, root: Path) -> list[SourceDocument]:
    """The documents of one file; bad JSON lines are skipped. Raises LoadError if none load."""
    docs, failures = _load(path, root)
    if not docs:
        first = failures[0]
        raise LoadError(
            _relative(path, root), f"no valid lines (first: {first.path}: {first.reason})"
        )
    return docs


def load_corpus(
    root: Path, progress: Callable[[int, int], None] | None = None, **discover_kwargs: Any
) -> tuple[list[SourceDocument], list[LoadFailure]]:
    """Every loadable document under `root`, and a failure for everything that was refused;
    `progress(files read, files)` after each file (OCR and conversions take seconds a file)."""
    paths, failures = discover_files(root, **discover_kwargs)
    convert_all(paths)
    docs: list[SourceDocument] = []
    first_source: dict[str, str] = {}
    for done, path in enumerate(paths, 1):
        if progress is not None and done > 1:
            progress(done - 1, len(paths))
        try:
            file_docs, line_failures = _load(path, root)
        except LoadError as exc:
            failures.append(LoadFailure(exc.path, exc.reason))
            continue
        failures.extend(line_failures)
        for doc in file_docs:
            if doc.key in first_source:  # keys name documents across the whole corpus
                reason = f"duplicate key {doc.key!r} (first in {first_source[doc.key]})"
                failures.append(LoadFailure(doc.source, reason))
                continue
            first_source[doc.key] = doc.source
            docs.append(doc)
    if progress is not None:
        progress(len(paths), len(paths))
    return docs, failures
