"""Small Excel and PowerPoint files written with openpyxl and python-pptx, the libraries that read them."""

from __future__ import annotations

import datetime
from pathlib import Path


def save_workbook(path: Path) -> Path:
    """A price list (records, Japanese headers, typed cells, a blank row) and an FAQ sheet with id, title and
    text columns, and an empty sheet."""
    import openpyxl

    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "価格表"
    prices.append(["品名", "価格", "入荷日", "在庫", "品番"])
    prices.append(["紅玉りんご", 120, datetime.datetime(2024, 5, 1), True, "007"])
    prices.append(["温州みかん", 80.5, datetime.datetime(2024, 6, 2, 9, 30), False, None])
    prices.append([None, None, None, None, None])
    prices.append(["巨峰", 300, None, None, None, "余分"])
    faq = workbook.create_sheet("FAQ")
    faq.append(["ID", "Title", "Text"])
    faq.append(["refunds", "Refunds", "Refunds reach the card within five working days."])
    workbook.create_sheet("empty")
    workbook.save(path)
    return path


def save_deck(path: Path) -> Path:
    """Three slides: a title-and-body slide with speaker notes, a slide with a table, a grouped pair of text
    boxes and a box placed above the table, and a blank slide."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "検索の仕組み"
    first.placeholders[1].text = "形態素解析で語に分ける\nBM25 で順位を付ける"
    first.notes_slide.notes_text_frame.text = "発表者メモ: 質疑は五分"
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Results"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(3), Inches(4), Inches(1)).table
    for (row, column), text in {(0, 0): "mode", (0, 1): "nDCG@10", (1, 0): "hybrid", (1, 1): "0.72"}.items():
        table.cell(row, column).text = text
    group = second.shapes.add_group_shape()
    for top, text in ((5, "Grouped first."), (6, "Grouped second.")):
        group.shapes.add_textbox(Inches(1), Inches(top), Inches(4), Inches(0.5)).text_frame.text = text
    # added last, placed above the table: read before it
    second.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(0.5)).text_frame.text = "Hybrid wins."
    deck.slides.add_slide(deck.slide_layouts[6])
    deck.save(str(path))
    return path
