"""The text of a PowerPoint (.pptx) file with python-pptx: one page per slide.

A slide's text is its title, then its text boxes, tables (one line per row,
cells separated by tabs) and the shapes inside groups, in reading order (top to
bottom, then left to right), then its speaker notes. Each block's section trail
is the slide's title.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.errors import InputError
from indexer.text.ooxml import open_package


class PptxError(InputError):
    """A PowerPoint file that cannot be read."""


@dataclass(frozen=True)
class PptxBlock:
    start: int   # offsets into PptxText.text
    end: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class PptxText:
    text: str
    blocks: list[PptxBlock]
    slide_starts: list[int]      # where each slide's text begins (slide 1 at 0)
    blank_slides: list[int]      # 1-based numbers of slides without text
    title: str


def pptx_text(path: Path) -> PptxText:
    """Every slide's blocks, blank-line separated, slides in order."""
    import pptx
    from pptx.exc import PackageNotFoundError

    presentation = open_package(path, lambda file: pptx.Presentation(str(file)), "a PowerPoint file", PptxError,
                                (PackageNotFoundError,))
    parts: list[str] = []
    blocks: list[PptxBlock] = []
    starts: list[int] = []
    blank: list[int] = []
    offset = 0
    first_title = ""
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = _clean(title_shape.text_frame.text) if title_shape is not None else ""
        first_title = first_title or title
        texts = [title] if title else []
        title_id = title_shape.shape_id if title_shape is not None else None
        texts += [_shape_text(shape) for shape in _reading_order(slide.shapes) if shape.shape_id != title_id]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(_clean(slide.notes_slide.notes_text_frame.text))
        texts = [text for text in texts if text]
        if parts:
            offset += 2
        starts.append(offset)
        if not texts:
            blank.append(number)
        slide_text = "\n\n".join(texts)
        position = offset
        for text in texts:
            blocks.append(PptxBlock(position, position + len(text), (title,) if title else ()))
            position += len(text) + 2
        parts.append(slide_text)
        offset += len(slide_text)
    core_title = (presentation.core_properties.title or "").strip()
    return PptxText("\n\n".join(parts), blocks, starts, blank, core_title or first_title)


def _reading_order(shapes: Any) -> list[Any]:
    """Shapes top to bottom, then left to right (a shape without a position keeps its place at the top)."""
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _shape_text(shape: Any) -> str:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return "\n".join(text for inner in _reading_order(shape.shapes) if (text := _shape_text(inner)))
    if getattr(shape, "has_table", False) and shape.has_table:
        return "\n".join(row for row in _table_rows(shape.table) if row.strip())
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return _clean(shape.text_frame.text)
    return ""


def _table_rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        yield "\t".join(" ".join(cell.text.split()) for cell in row.cells)


def _clean(text: str) -> str:
    """A text frame's text with line breaks inside paragraphs (vertical tabs) as newlines, lines stripped."""
    lines = (line.strip() for line in text.replace("\v", "\n").splitlines())
    return "\n".join(line for line in lines if line)
