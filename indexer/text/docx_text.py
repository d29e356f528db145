"""The text of a Word (.docx) file with python-docx: headings become the section trail,
paragraphs and tables (one line per row, cells separated by tabs) the sections' text,
footnotes and endnotes a last section of their own.

The body is read from its XML, because python-docx's `Paragraph.text` and
`Table.rows` see a run's own text elements only. What they miss, and this reads:
text inside content controls (`w:sdt`, templates and cover pages), tracked
insertions (`w:ins`; deletions are left out), simple fields (`w:fldSimple`),
custom XML and smart tags, text boxes (after the paragraph that anchors them),
tables nested in a cell, and furigana (`w:ruby`, read as its base text). A cell
merged across columns is one cell, not repeated once per column it spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.text.paragraph import Paragraph
from lxml import etree

from indexer.errors import InputError
from indexer.text.ooxml import open_package

_HEADING = re.compile(r"(?:heading|見出し)\s*(\d)", re.IGNORECASE)
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# containers whose children are read as if they stood in their place
_TRANSPARENT = {qn(tag) for tag in ("w:sdt", "w:sdtContent", "w:customXml", "w:smartTag", "w:ins", "w:moveTo",
                                    "w:hyperlink", "w:fldSimple", "w:r", "w:ruby", "w:rubyBase", "w:dir", "w:bdo")}
# never read: deleted or moved-away text, furigana readings (the base is read), field codes, properties
_SKIPPED = {qn(tag) for tag in ("w:del", "w:moveFrom", "w:rt", "w:instrText", "w:delText", "w:pPr", "w:rPr",
                                "w:sdtPr", "w:sdtEndPr", "w:footnoteReference", "w:endnoteReference")}
_TEXT, _TAB, _BREAKS = qn("w:t"), qn("w:tab"), {qn("w:br"), qn("w:cr")}
_P, _TBL, _TR, _TC, _TXBX = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc"), qn("w:txbxContent")


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


def _runs_text(element: Any, boxes: list[Any]) -> str:
    """The text of a paragraph's runs in order; text boxes met on the way are put in `boxes`."""
    out: list[str] = []
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIPPED or tag == _MC_FALLBACK:
            continue
        if tag == _TEXT:
            out.append(child.text or "")
        elif tag == _TAB:
            out.append("\t")
        elif tag in _BREAKS:
            out.append("\n")
        elif tag == _TXBX:
            boxes.append(child)
        else:
            out.append(_runs_text(child, boxes))
    return "".join(out)


def _cell_text(cell: Any) -> str:
    """Everything a cell holds (paragraphs, nested tables, text boxes), its whitespace collapsed."""
    texts = (" ".join(text.split()) for _, text in _blocks(cell, None))
    return " ".join(text for text in texts if text)


def _table_text(table: Any) -> str:
    """One line per row, cells separated by tabs; a merged cell once."""
    rows = ("\t".join(_cell_text(cell) for cell in _children(row, _TC)) for row in _children(table, _TR))
    return "\n".join(row for row in rows if row.strip())


def _children(element: Any, tag: str) -> Iterator[Any]:
    """`element`'s children with `tag`, looking through content controls and custom XML (a row or cell can sit
    inside one)."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag in _TRANSPARENT:
            yield from _children(child, tag)


def _blocks(container: Any, parent: Any) -> Iterator[tuple[Paragraph | None, str]]:
    """(paragraph, text) of each paragraph and (None, text) of each table, in document order. `parent` is
    python-docx's owner for reading a paragraph's style (None: styles are not needed)."""
    for child in container:
        tag = child.tag
        if tag == _P:
            boxes: list[Any] = []
            text = _runs_text(child, boxes)
            yield (Paragraph(child, parent) if parent is not None else None), text
            for box in boxes:
                yield from _blocks(box, parent)
        elif tag == _TBL:
            yield None, _table_text(child)
        elif isinstance(tag, str) and tag in _TRANSPARENT:
            yield from _blocks(child, parent)


def _notes(document: Any) -> list[str]:
    """The text of each footnote and endnote (not the separators Word keeps among them)."""
    texts = []
    for rel_type, tag in ((RT.FOOTNOTES, "w:footnote"), (RT.ENDNOTES, "w:endnote")):
        for rel in document.part.rels.values():
            if rel.reltype != rel_type or rel.is_external:
                continue
            root = etree.fromstring(rel.target_part.blob)
            for note in root.iter(qn(tag)):
                if note.get(qn("w:type")) in (None, "normal"):
                    text = " ".join(" ".join(t.split()) for _, t in _blocks(note, None) if t.strip())
                    if text:
                        texts.append(text)
    return texts


def docx_text(path: Path) -> DocxText:
    """Headings, paragraphs and tables in document order, blank-line separated; then the notes."""
    document = open_package(path, lambda file: docx.Document(str(file)), "a Word file", DocxError,
                            (PackageNotFoundError,))
    parts: list[str] = []
    blocks: list[DocxBlock] = []
    trail: list[tuple[int, str]] = []
    title = (document.core_properties.title or "").strip()
    offset = 0

    def add(text: str, path: tuple[str, ...]) -> None:
        nonlocal offset
        if parts:
            offset += 2
        blocks.append(DocxBlock(offset, offset + len(text), path))
        parts.append(text)
        offset += len(text)

    for paragraph, text in _blocks(document.element.body, document._body):
        text = text.strip()
        if not text:
            continue
        level = _heading_level(paragraph) if paragraph is not None else None
        if level is not None:
            trail = [(lvl, name) for lvl, name in trail if lvl < level] + [(level, text)]
            title = title or text
        add(text, tuple(name for _, name in trail))
    for note in _notes(document):
        add(note, ("Notes",))
    return DocxText("\n\n".join(parts), blocks, title)
