"""Telling Japanese text from English text by the share of kana and kanji among its letters."""

from __future__ import annotations

import re

# The one class of Japanese letters, used by language detection, sentence splitting and keyword
# terms: kana (with ー, ゝゞ, ヽヾ and the phonetic extensions), half-width katakana, kanji
# (unified ideographs, extension A, compatibility ideographs, and extensions B-G in the
# supplementary planes, e.g. 𠮷), and 々 〆 〇 and the other ideographic marks; not ・ or other
# punctuation.
KANA = (
    "\u3041-\u3096\u309d-\u309f"  # hiragana, ゝゞゟ
    "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"  # katakana, ー, ヽヾヿ, phonetic extensions
    "\uff66-\uff9f"  # half-width katakana (with ｰ)
)
JAPANESE_LETTERS = (
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303b"  # 々〆〇, Suzhou numerals, kana repeat marks
    + KANA
    + "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK unified ideographs, extension A, compatibility
    "\U00020000-\U0003134f"  # CJK extensions B-G (𠮷, 𩸽)
)
_JAPANESE_RUN = re.compile(f"[{JAPANESE_LETTERS}]+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
JAPANESE_SHARE = 0.2


def is_japanese(ch: str) -> bool:
    """True for one Japanese letter: kana (full- and half-width, with ー), kanji of any plane, 々 and kin."""
    return len(ch) == 1 and _JAPANESE_RUN.match(ch) is not None


def _run_length(pattern: re.Pattern[str], text: str) -> int:
    """Total number of characters in the non-overlapping matches of `pattern`."""
    return sum(match.end() - match.start() for match in pattern.finditer(text))


def detect_language(text: str) -> str:
    """'ja' when kana and kanji make up at least 20% of the letters of `text`, else 'en'."""
    letters = _run_length(_LETTER_RUN, text)
    if not letters:
        return "en"
    return "ja" if _run_length(_JAPANESE_RUN, text) >= JAPANESE_SHARE * letters else "en"
