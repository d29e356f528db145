"""The rows of an Excel (.xlsx) workbook with openpyxl: each worksheet's cells as text, row by row.

Cells are read as Excel last saved them (a formula as its value, not its formula).
Numbers are written as Excel shows them without formatting (120, 80.5), dates and
times in ISO 8601 (2024-05-01, 2024-05-01T09:30:00), so that a spreadsheet row
reads like the same row saved as CSV.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from indexer.errors import InputError
from indexer.text.ooxml import open_package


class XlsxError(InputError):
    """An Excel file that cannot be read."""


@dataclass(frozen=True)
class Sheet:
    title: str
    rows: list[tuple[int, list[str]]]   # (row number as Excel shows it, cells), rows with a non-blank cell


def xlsx_sheets(path: Path) -> list[Sheet]:
    """Every worksheet (chart sheets have no cells) in workbook order."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    workbook = open_package(path, lambda file: openpyxl.load_workbook(file, read_only=True, data_only=True),
                            "an Excel file", XlsxError, (InvalidFileException,))
    try:
        return [Sheet(sheet.title, list(_rows(sheet))) for sheet in workbook.worksheets]
    finally:
        workbook.close()


def _rows(sheet: Any) -> Iterator[tuple[int, list[str]]]:
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=sheet.min_row or 1):
        cells = [_cell_text(value) for value in values]
        while cells and not cells[-1]:
            cells.pop()
        if any(cell.strip() for cell in cells):
            yield number, cells


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, float) and math.isfinite(value) and 1e-15 <= abs(value) < 1e15:
        # positional, never 1e-07: a number cell reads as a number (metadata, range filters), as 0.0000001 does
        return numpy.format_float_positional(value, trim="-")
    return str(value)
