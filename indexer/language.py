"""Telling Japanese text from English text by the share of kana and kanji among its letters."""

from __future__ import annotations

import re

# Hiragana, katakana (with ー and phonetic extensions), half-width katakana (with ｰ),
# CJK unified ideographs and extension A, and the iteration mark 々 (not the middle dot ・).
_CJK_CLASS = (
    "\u3005"  # 々
    "\u3041-\u309f"  # hiragana
    "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"  # katakana, ー, phonetic extensions
    "\uff66-\uff9f"  # half-width katakana
    "\u3400-\u4dbf\u4e00-\u9fff"  # CJK unified ideographs, extension A
)
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
JAPANESE_SHARE = 0.2


def is_cjk(ch: str) -> bool:
    """True for hiragana, katakana (full- and half-width, with ー), kanji and 々."""
    return len(ch) == 1 and _CJK_RUN.match(ch) is not None


def _run_length(pattern: re.Pattern[str], text: str) -> int:
    """Total number of characters in the non-overlapping matches of `pattern`."""
    return sum(match.end() - match.start() for match in pattern.finditer(text))


def detect_language(text: str) -> str:
    """'ja' when kana and kanji make up at least 20% of the letters of `text`, else 'en'."""
    letters = _run_length(_LETTER_RUN, text)
    if not letters:
        return "en"
    return "ja" if _run_length(_CJK_RUN, text) >= JAPANESE_SHARE * letters else "en"
