"""The text of a Word (.docx) file with python-docx: headings become the section trail,
paragraphs and tables (one line per row, cells separated by tabs) the sections' text.
Furigana (`w:ruby`) reads as its base text, which python-docx alone would drop."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from indexer.errors import InputError
from indexer.text.ooxml import open_package

_HEADING = re.compile(r"(?:heading|見出し)\s*(\d)", re.IGNORECASE)


class DocxError(InputError):
    """A Word file that cannot be read."""


@dataclass(frozen=True)
class DocxBlock:
    start: int
    end: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class DocxText:
    text: str
    blocks: list[DocxBlock]
    title: str


def _heading_level(paragraph: Paragraph) -> int | None:
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 0
    match = _HEADING.match(name or "")
    return int(match.group(1)) if match else None


def _paragraph_text(paragraph: Paragraph) -> str:
    """The paragraph's text, a ruby's base text in its place. python-docx reads a run's own text elements
    only, so a word set with furigana (`<w:r><w:ruby><w:rt>…</w:rt><w:rubyBase><w:r>…`) would vanish."""
    if not paragraph._p.xpath(".//w:ruby"):
        return paragraph.text
    element = copy.deepcopy(paragraph._p)
    for ruby in element.xpath(".//w:ruby"):
        run = ruby.getparent()
        for base_run in ruby.findall(f"{qn('w:rubyBase')}/{qn('w:r')}"):
            run.addprevious(base_run)
        run.getparent().remove(run)
    return Paragraph(element, paragraph._parent).text


def _table_text(table: Table) -> str:
    """One line per row, cells separated by tabs, each cell's whitespace collapsed."""
    def cell_text(cell: _Cell) -> str:
        return " ".join(" ".join(_paragraph_text(paragraph) for paragraph in cell.paragraphs).split())

    rows = ("\t".join(cell_text(cell) for cell in row.cells) for row in table.rows)
    return "\n".join(row for row in rows if row.strip())


def docx_text(path: Path) -> DocxText:
    """Headings, paragraphs and tables in document order, blank-line separated."""
    document = open_package(path, lambda file: docx.Document(str(file)), "a Word file", DocxError,
                            (PackageNotFoundError,))
    parts: list[str] = []
    blocks: list[DocxBlock] = []
    trail: list[tuple[int, str]] = []
    title = (document.core_properties.title or "").strip()
    offset = 0
    for item in document.iter_inner_content():
        level = _heading_level(item) if isinstance(item, Paragraph) else None
        text = _paragraph_text(item).strip() if isinstance(item, Paragraph) else _table_text(item)
        if not text:
            continue
        if level is not None:
            trail = [(lvl, name) for lvl, name in trail if lvl < level] + [(level, text)]
            title = title or text
        if parts:
            offset += 2
        blocks.append(DocxBlock(offset, offset + len(text), tuple(name for _, name in trail)))
        parts.append(text)
        offset += len(text)
    return DocxText("\n\n".join(parts), blocks, title)
