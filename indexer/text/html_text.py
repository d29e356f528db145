"""Visible text of an HTML page, as blocks with heading trails, for the loaders.

Scripts, styles, templates, the head and furigana (`<rt>`, `<rp>`: a ruby reads as its base
text) are dropped; block elements (paragraphs, list items, headings, table rows, line breaks,
...) become blocks separated by blank lines (single line breaks within lists, tables and
preformatted text), with whitespace collapsed inside each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup
from bs4.element import (
    CData,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
    Tag,
)

from indexer.text.language import is_japanese

_DROPPED = frozenset({"script", "style", "noscript", "template", "head", "title", "svg", "math",
                      "rt", "rp", "rtc"})  # furigana: <ruby>東京<rt>とうきょう</rt></ruby> reads as 東京
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_LINE_BLOCKS = frozenset({"li", "tr", "dt", "dd", "option"})
_BLOCKS = _LINE_BLOCKS | {
    "p", "div", "section", "article", "pre", "blockquote", "ul", "ol", "dl", "table", "thead",
    "tbody", "tfoot", "caption", "header", "footer", "nav", "main", "aside", "figure",
    "figcaption", "form", "fieldset", "legend", "address", "details", "summary", "hr", "body",
}  # fmt: skip
_NOT_TEXT = (Comment, Declaration, Doctype, CData, ProcessingInstruction)
_SPACES = re.compile(r"[ \t\n\r\f\v]+")


@dataclass(frozen=True)
class HtmlBlock:
    """One block of visible text; `start`/`end` index HtmlText.text."""

    start: int
    end: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class HtmlText:
    """The visible text of a page with its blocks, <title> and first <h1>."""

    text: str
    blocks: tuple[HtmlBlock, ...]
    title: str
    h1: str


def collapse_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space (to none at a line break inside Japanese)."""

    def replace(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        joined = "\n" in match.group() and is_japanese(before) and is_japanese(after)
        return "" if joined else " "

    return _SPACES.sub(replace, text).strip(" ")


def _visible_text(tag: Tag) -> str:
    """A tag's text less what is never shown as text (scripts, furigana)."""
    return "".join(str(node) for node in tag.find_all(string=True)
                   if not isinstance(node, _NOT_TEXT) and not any(parent.name in _DROPPED for parent in node.parents))


class _BlockWalker:
    """Walks a parsed HTML tree, collecting visible text blocks with heading trails."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.blocks: list[HtmlBlock] = []
        self.path: tuple[str, ...] = ()
        self.h1 = ""
        self.inline: list[str] = []
        self.open: list[str] = []  # names of the enclosing block elements
        self.after_break = False
        self.last_was_line = False

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Tag):
                self.element(child)
            elif isinstance(child, NavigableString) and not isinstance(child, _NOT_TEXT):
                self.inline.append(str(child))

    def element(self, tag: Tag) -> None:
        name = tag.name
        if name in _DROPPED:
            return
        if name == "br":
            self.flush()
            self.after_break = True
        elif name in _HEADINGS:
            self.flush()
            self.heading(_HEADINGS[name], collapse_whitespace(_visible_text(tag)))
        elif name == "pre":
            self.flush()
            self.preformatted(_visible_text(tag))
        elif name in _BLOCKS:
            self.flush()
            self.open.append(name)
            self.walk(tag)
            self.flush()
            self.open.pop()
        else:
            if name in ("td", "th") and "".join(self.inline).strip():
                self.inline.append(" | ")
            self.walk(tag)

    def add(self, text: str, *, line: bool) -> None:
        """Append a block of already trimmed text."""
        if self.parts:
            separator = "\n" if self.after_break or (line and self.last_was_line) else "\n\n"
            self.parts.append(separator)
            self.size += len(separator)
        self.blocks.append(HtmlBlock(self.size, self.size + len(text), self.path))
        self.parts.append(text)
        self.size += len(text)
        self.after_break = False
        self.last_was_line = line

    def flush(self) -> None:
        text = collapse_whitespace("".join(self.inline))
        self.inline.clear()
        if text:
            self.add(text, line=bool(self.open) and self.open[-1] in _LINE_BLOCKS)

    def heading(self, level: int, title: str) -> None:
        if title:
            self.path = (*self.path[: level - 1], title)
            self.h1 = self.h1 or (title if level == 1 else "")
            self.add(title, line=False)

    def preformatted(self, text: str) -> None:
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        for number, line in enumerate(lines):
            self.after_break = number > 0  # lines of one <pre> are joined by single newlines
            self.add(line, line=False)


def html_text(source: str) -> HtmlText:
    """The visible text of an HTML document. Raises RecursionError on absurdly deep nesting."""
    soup = BeautifulSoup(source, "html.parser")
    walker = _BlockWalker()
    walker.walk(soup)
    walker.flush()
    title = soup.find("title")
    return HtmlText(
        text="".join(walker.parts),
        blocks=tuple(walker.blocks),
        title=collapse_whitespace(title.get_text()) if isinstance(title, Tag) else "",
        h1=walker.h1,
    )
