"""One class of Japanese letters: 𠮷 and the other kanji beyond the Basic Multilingual Plane count everywhere."""

from __future__ import annotations

import pytest

from indexer.text.keywords import KeywordTokenizer
from indexer.text.language import detect_language, is_japanese
from indexer.text.sentences import split_sentences

# 𠮷 (U+20BB7, extension B), 𩸽 (U+29E3D, extension B), 𠀋 (U+2000B), 𪚲 (U+2A6B2, extension C)
SUPPLEMENTARY_KANJI = ["𠮷", "𩸽", "𠀋", "𪚲"]


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize("ch", [*SUPPLEMENTARY_KANJI, "あ", "ア", "ｱ", "ー", "々", "〆", "〇", "漢", "﨑"])
def test_japanese_letters(ch: str) -> None:
    assert is_japanese(ch)


@pytest.mark.parametrize("ch", ["・", "。", "「", "a", "1", "😀", "한"])
def test_not_japanese_letters(ch: str) -> None:
    assert not is_japanese(ch)


def test_language_detection_counts_supplementary_kanji() -> None:
    assert detect_language("𠮷𩸽𠀋 and") == "ja"  # half the letters are kanji from plane 2


def test_sentence_splitting_knows_a_sentence_that_starts_with_supplementary_kanji() -> None:
    assert sentences("すごい!𠮷野家へ行く。") == ["すごい!", "𠮷野家へ行く。"]
    assert sentences("It was late. 𠮷野家は開いていた。") == ["It was late.", "𠮷野家は開いていた。"]


def test_keyword_terms_keep_supplementary_kanji(keywords: KeywordTokenizer) -> None:
    terms = [t.text for t in keywords.words("𠮷野家の牛丼")] + [t.text for t in keywords.grams("𠮷野家の牛丼")]
    assert any("𠮷" in term for term in terms), terms
