"""Plain text in Aozora Bunko notation (青空文庫形式), read as the text a reader sees.

Aozora Bunko and Japanese web-novel sites publish `.txt` files with ruby readings
(`東京《とうきょう》`, `｜東京駅《とうきょうえき》`), annotations (`［＃ここから２字下げ］`,
`［＃「第一章」は大見出し］`), characters outside JIS X 0208 spelled out
(`※［＃「てへん＋劣」、第3水準1-84-77］`, `※［＃「口＋世」、U+546D、…］`) and a header whose
block between hyphen lines explains those symbols. Indexed verbatim, the readings sit in the
middle of words (a search for 江戸幕府 misses 「江戸《えど》幕府《ばくふ》」), so a file that
uses the notation (`is_aozora`) is read as clean text (`read_aozora`): readings, ｜ and
annotations removed, gaiji decoded, the symbol block dropped, one block per line (an Aozora
body has a paragraph per line) with the heading trail of its 見出し annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYMBOL_BLOCK_TITLE = "【テキスト中に現れる記号について】"
COLOPHON_START = "底本："
# ruby marks and annotations in a text without the symbol block: one could be chance (a title in 《》)
MIN_MARKS = 2

_KANJI = "\u3005\u3006\u3007\u30f6\u4edd\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f※"
_READING = "\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe・"  # kana, ー, ゝゞヽヾ
_KANA_RUBY = re.compile(f"(?:[｜|][^｜|《》\n]+|[{_KANJI}])《[{_READING}]+》")
_ANNOTATION = re.compile(r"［＃[^［］\n]*］")
_RUBY = re.compile(r"《[^《》\n]*》")
_RUBY_START = re.compile(r"[｜|](?=[^｜|《》\n]*《[^《》\n]*》)")
_GAIJI = re.compile(r"※［＃([^［］\n]*)］")
_MEN_KU_TEN = re.compile(r"(?:^|[、準])([12])-(\d{1,2})-(\d{1,2})(?![\d-])")
_CODE_POINT = re.compile(r"U\+([0-9A-Fa-f]{4,6})(?![0-9A-Fa-f])")
_RULE = re.compile(r"-{10,}")
_LEVELS = {"大": 1, "中": 2, "小": 3}
_QUOTED_HEADING = re.compile(r"［＃「([^」]*)」は(?:同行|窓)?([大中小])見出し］")
_OPEN_HEADING = re.compile(r"［＃(?:同行|窓)?([大中小])見出し］(.*?)［＃(?:同行|窓)?[大中小]見出し終わり］")


@dataclass(frozen=True)
class AozoraBlock:
    """One line of the clean text: text[start:end], under its heading trail `path`."""

    start: int
    end: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class AozoraText:
    """A work's clean text, its blocks, and the title and author of its header ("" when unknown)."""

    text: str
    blocks: tuple[AozoraBlock, ...]
    title: str
    author: str


def is_aozora(text: str) -> bool:
    """Whether `text` is written in Aozora notation: it has the header's symbol block, or at least
    `MIN_MARKS` marks among kana ruby after kanji or ｜ and ［＃…］ annotations. Text that merely uses
    《》 as brackets (「魯迅の《故郷》を読んだ」) or holds one odd match stays plain text."""
    if any(line.strip() == SYMBOL_BLOCK_TITLE for line in text.splitlines()):
        return True
    marks = 0
    for pattern in (_KANA_RUBY, _ANNOTATION):
        for _ in pattern.finditer(text):
            marks += 1
            if marks >= MIN_MARKS:
                return True
    return False


def read_aozora(source: str) -> AozoraText:
    """The text a reader sees of a work in Aozora notation, a block per non-empty line.

    Lines are stripped of their indentation (全角 spaces); a blank source line, or one
    holding only annotations (［＃改ページ］), separates blocks by a blank line. 見出し
    annotations (大/中/小: levels 1/2/3) set the heading trail, which the colophon
    (from 底本：) leaves again.
    """
    lines = source.splitlines()
    header: list[str] = []
    block = _symbol_block(lines)
    if block is not None:
        header = [clean for line in lines[: block[0]] if (clean := clean_line(line))]
        lines = lines[: block[0]] + lines[block[1] :]
    parts: list[str] = []
    blocks: list[AozoraBlock] = []
    path: tuple[str, ...] = ()
    size, blank = 0, False
    for line in lines:
        clean = clean_line(line)
        if not clean:
            blank = True
            continue
        if line.lstrip().startswith(COLOPHON_START):
            path = ()
        if (heading := _heading(line)) is not None:
            level, title = heading
            path = (*path[: level - 1], title)
        if parts:
            parts.append("\n\n" if blank else "\n")
            size += len(parts[-1])
        blocks.append(AozoraBlock(size, size + len(clean), path))
        parts.append(clean)
        size += len(clean)
        blank = False
    text = "".join(parts)
    title = text[blocks[0].start : blocks[0].end] if blocks else ""
    return AozoraText(text, tuple(blocks), title, header[1] if len(header) > 1 else "")


def clean_line(line: str) -> str:
    """One line as a reader sees it: gaiji decoded, ruby readings, ｜ and annotations removed, stripped."""
    text = _GAIJI.sub(_gaiji, line)
    text = _RUBY.sub("", _RUBY_START.sub("", text))
    while True:  # an annotation can quote one (［＃「※［＃…］る」に傍点］ before gaiji are decoded)
        text, removed = _ANNOTATION.subn("", text)
        if not removed:
            return text.strip()


def decode_gaiji(note: str) -> str | None:
    """The character a gaiji annotation's text names, by JIS X 0213 面区点 (`第3水準1-84-77`) or
    Unicode code point (`U+546D`); None when it gives neither (only a description or a page)."""
    if match := _MEN_KU_TEN.search(note):
        plane, row, cell = (int(group) for group in match.groups())
        if 1 <= row <= 94 and 1 <= cell <= 94:
            code = bytes((0xA0 + row, 0xA0 + cell))
            try:  # EUC-JIS-2004: plane 1 as two bytes, plane 2 behind the single shift 0x8F
                return (code if plane == 1 else b"\x8f" + code).decode("euc_jis_2004")
            except UnicodeDecodeError:
                pass
    if match := _CODE_POINT.search(note):
        point = int(match.group(1), 16)
        if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF:
            return chr(point)
    return None


def _gaiji(match: re.Match[str]) -> str:
    """A ※［＃…］ gaiji replaced by its character, or by ※ alone when it cannot be decoded."""
    return decode_gaiji(match.group(1)) or "※"


def _heading(line: str) -> tuple[int, str] | None:
    """The level (1-3) and clean title of a line's 見出し annotation, or None when it has none."""
    line = _GAIJI.sub(_gaiji, line)
    if match := _QUOTED_HEADING.search(line):
        title, level = match.group(1), match.group(2)
    elif match := _OPEN_HEADING.search(line):
        level, title = match.group(1), match.group(2)
    else:
        return None
    title = clean_line(title)
    return (_LEVELS[level], title) if title else None


def _symbol_block(lines: list[str]) -> tuple[int, int] | None:
    """The line range [first, end) of the header's symbol block, from the hyphen line above
    【テキスト中に現れる記号について】 to the one closing it; None when there is none."""
    for i, line in enumerate(lines):
        if line.strip() != SYMBOL_BLOCK_TITLE:
            continue
        above = i - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        first = above if above >= 0 and _RULE.fullmatch(lines[above].strip()) else i
        end = next((j + 1 for j in range(i + 1, len(lines)) if _RULE.fullmatch(lines[j].strip())), i + 1)
        return first, end
    return None
