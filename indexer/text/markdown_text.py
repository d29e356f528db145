"""Markdown structure for the loaders: front matter and text-bearing blocks with heading trails.

Offsets index the raw file content. Each non-blank line is a block (list items, quotes, table
rows, headings, lines of fenced code), except that consecutive plain lines form one paragraph
block; a block's start skips its leading markup so that text[start:end] is the visible text.
Headings are ATX (`## Title`) or setext (a paragraph underlined with `===` or `---`), as in CommonMark.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

Block = tuple[int, int, tuple[str, ...]]  # start, end, heading trail

_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})")
_HEADING = re.compile(r"[ \t]{0,3}(#{1,6})(?:[ \t]+|$)")
_HEADING_CLOSE = re.compile(r"[ \t]+#+[ \t]*$")
_LIST_ITEM = re.compile(r"[ \t]*(?:>[ \t]?)*[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_QUOTE = re.compile(r"[ \t]*(?:>[ \t]?)+")
_TABLE_ROW = re.compile(r"[ \t]*\|[ \t]*")
_YAML_ITEM = re.compile(r"[ \t]*-[ \t]+(.*)")
_NO_TEXT = re.compile(r"[\s\-*_=|:+#>`~]*")  # thematic breaks, table rules, bare markers
_SETEXT = re.compile(r"[ \t]{0,3}(=+|-+)[ \t]*")  # under a paragraph: it is a level 1 (=) or 2 (-) heading
# Inline markup left out of a heading's title in section paths: links and images keep their text, code
# spans and emphasis their content (`## The **k** parameter` is the section "The k parameter").
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_EMPHASIS = re.compile(r"(\*{1,3}|(?<!\w)_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")


@dataclass(frozen=True)
class MarkdownStructure:
    """What the loader needs from a Markdown file."""

    front_matter: dict[str, object]  # values are strings, or lists of strings for YAML lists
    blocks: tuple[Block, ...]
    h1: str  # text of the first level-1 heading, or ''


def _lines(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of text[start:], without its line break or trailing space."""
    pos = start
    while pos <= len(text):
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        yield pos, pos + len(text[pos:stop].rstrip())
        if nl < 0:
            return
        pos = nl + 1


def _unquote(value: str) -> str:
    """A front matter value without surrounding quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


class _FrontMatterLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's plain scalars: only true/false are booleans (`country: NO` stays
    "NO", not false), no base-60 numbers (`time: 12:30` stays "12:30", not 750), and, as in CSV cells, a number
    with a leading zero stays text (`zip: 0123`, `mode: 0755`). Dates and times stay as written
    (`2024-05-01T09:00:00Z` is not rewritten as `+00:00`), so a filter with the value as written finds them."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers
            if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _firsts in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
):
    _FrontMatterLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_firsts))


def _front_matter(text: str) -> tuple[int, dict[str, object]]:
    """Where the body starts, and the front matter between '---' lines as YAML: numbers, booleans, lists and
    nested keys as YAML reads them (`year: 2021` is the number 2021, so a range filter compares it), dates and
    times as the text written. Front matter that is not valid YAML is read leniently as `key: value` lines."""
    body_start, lenient = _lenient_front_matter(text)
    if not body_start:
        return 0, {}
    block = text[text.find("\n") + 1 : body_start]
    block = block[: block.rstrip().rfind("\n") + 1]  # without the closing '---' (or '...') line
    try:
        parsed = yaml.load(block, Loader=_FrontMatterLoader)  # a SafeLoader
    except (yaml.YAMLError, ValueError, OverflowError):  # not YAML, or a date that is none (2024-13-45)
        return body_start, lenient
    if not isinstance(parsed, dict):
        return body_start, lenient if parsed is not None else {}
    return body_start, {str(key): _plain(value) for key, value in parsed.items()}


def _plain(value: object) -> object:
    """A YAML value as JSON holds it: dates (and times) as ISO 8601 text, anything else unusual as text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _lenient_front_matter(text: str) -> tuple[int, dict[str, object]]:
    """Where the body starts, and the `key: value` pairs of front matter between '---' lines, read line by line
    (values as text, `- item` lines as a list)."""
    lines = _lines(text)
    first_start, first_end = next(lines)
    if text[first_start:first_end] != "---":
        return 0, {}
    meta: dict[str, object] = {}
    items: list[str] | None = None  # the list being read for a key with no inline value
    for start, end in lines:
        line = text[start:end]
        if line in ("---", "..."):
            body = text.find("\n", end)
            return (len(text) if body < 0 else body + 1), meta
        item = _YAML_ITEM.match(line)
        if item and items is not None:
            items.append(_unquote(item.group(1)))
            continue
        key, sep, value = (part.strip() for part in line.partition(":"))
        if sep and key:
            items = None if value else []
            meta[key] = _unquote(value) if value else items
    return 0, {}  # never closed: not front matter


class _BlockReader:
    """Reads Markdown line by line into blocks with heading trails."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.path: tuple[str, ...] = ()
        self.blocks: list[Block] = []
        self.h1 = ""
        self.fence = ""
        self.paragraph: tuple[int, int] | None = None

    def read(self, body_start: int) -> None:
        for start, end in _lines(self.text, body_start):
            if self.fence:
                self.code_line(start, end)
            else:
                self.line(start, end)
        self.flush()

    def line(self, start: int, end: int) -> None:
        text = self.text
        if start == end or text[start:end].isspace():
            self.flush()
        elif fence := _FENCE.match(text, start, end):
            self.flush()
            self.fence = fence.group(1)
        elif heading := _HEADING.match(text, start, end):
            self.flush()
            self.heading(len(heading.group(1)), heading.end(), end)
        elif self.paragraph and (underline := _SETEXT.fullmatch(text, start, end)):
            paragraph, self.paragraph = self.paragraph, None
            self.heading(1 if underline.group(1)[0] == "=" else 2, *paragraph)
        elif _NO_TEXT.fullmatch(text, start, end):
            self.flush()
        elif marker := _LIST_ITEM.match(text, start, end) or _QUOTE.match(text, start, end):
            self.flush()
            self.add(marker.end(), end)
        elif row := _TABLE_ROW.match(text, start, end):
            self.flush()
            self.add(row.end(), row.end() + len(text[row.end() : end].rstrip("| \t")))
        elif self.paragraph:
            self.paragraph = (self.paragraph[0], end)
        else:
            self.paragraph = (start, end)

    def code_line(self, start: int, end: int) -> None:
        line = self.text[start:end].strip()
        if line.startswith(self.fence) and not line.strip(self.fence[0]):
            self.fence = ""
        else:
            self.add(start, end)

    def heading(self, level: int, start: int, end: int) -> None:
        close = _HEADING_CLOSE.search(self.text, start, end)
        end = close.start() if close else end
        title = plain_title(self.text[start:end])
        if not title or _NO_TEXT.fullmatch(title):
            return
        self.path = (*self.path[: level - 1], title)
        self.h1 = self.h1 or (title if level == 1 else "")
        self.add(start, end)

    def add(self, start: int, end: int) -> None:
        """Add text[start:end], trimmed of whitespace, as a block (if anything is left)."""
        text = self.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            self.blocks.append((start, end, self.path))

    def flush(self) -> None:
        if self.paragraph:
            self.add(*self.paragraph)
            self.paragraph = None


def plain_title(heading: str) -> str:
    """A heading's text as a reader sees it: without inline markup, on one line."""
    title = _LINK.sub(r"\1", heading)
    title = _CODE_SPAN.sub(lambda m: m.group(2).strip(), title)
    for _ in range(3):  # nested emphasis: ***a*** or **_a_**
        title = _EMPHASIS.sub(r"\2", title)
    return " ".join(title.split())


def parse_markdown(text: str) -> MarkdownStructure:
    """Front matter, text-bearing blocks and first level-1 heading of a Markdown text."""
    body_start, front = _front_matter(text)
    reader = _BlockReader(text)
    reader.read(body_start)
    return MarkdownStructure(front_matter=front, blocks=tuple(reader.blocks), h1=reader.h1)
