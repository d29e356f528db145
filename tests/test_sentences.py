"""Sentence splitting for Japanese and English text."""

from __future__ import annotations

import random

import pytest

from indexer.text.normalize import normalize
from indexer.text.sentences import split_sentences


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "「これはペンです。」と彼は言った。それは本です。",
            ["「これはペンです。」と彼は言った。", "それは本です。"],
        ),
        ("本当！すごい？はい。", ["本当！", "すごい？", "はい。"]),
        ("本当!すごい?はい。", ["本当!", "すごい?", "はい。"]),
        (
            "『吾輩は猫である。名前はまだ無い。』という本。",
            ["『吾輩は猫である。名前はまだ無い。』という本。"],
        ),
        ("（括弧の中。）外です。次。", ["（括弧の中。）外です。", "次。"]),
        ("｢半角。｣と言った。次。", ["｢半角。｣と言った。", "次。"]),
        ("これはペンである．それは本である．", ["これはペンである．", "それは本である．"]),
        ("彼は「行こう。」 そして去った。", ["彼は「行こう。」", "そして去った。"]),
        ("えっ！？本当？", ["えっ！？", "本当？"]),
        ("東京タワーは333メートルです。", ["東京タワーは333メートルです。"]),
    ],
)
def test_japanese(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_japanese_after_nfkc() -> None:
    norm = normalize("「本当！？」と聞いた。ｶﾞｲﾄﾞを読む．次は？")
    assert sentences(norm.text) == ["「本当!?」と聞いた。", "ガイドを読む.", "次は?"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. This is a test.", ["Hello world.", "This is a test."]),
        ("Really? Yes! Fine.", ["Really?", "Yes!", "Fine."]),
        ("Pi is 3.14 roughly. Next.", ["Pi is 3.14 roughly.", "Next."]),
        ("See e.g. the docs. Then stop.", ["See e.g. the docs.", "Then stop."]),
        ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
        ("J. Smith wrote it. It sold.", ["J. Smith wrote it.", "It sold."]),
        ("The U.S. Army marched. Fig. 3 shows it.", ["The U.S. Army marched.", "Fig. 3 shows it."]),
        ("Apples, pears, etc. are fruit.", ["Apples, pears, etc. are fruit."]),
        ("It ended. 42 people left.", ["It ended.", "42 people left."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        (
            "He left. (She stayed.) Then they went.",
            ["He left.", "(She stayed.)", "Then they went."],
        ),
        ("lower. case continues", ["lower. case continues"]),
        ("Visit example.com today.", ["Visit example.com today."]),
        ("Wait... What?", ["Wait...", "What?"]),
    ],
)
def test_english(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A wrapped\nline of text. Next.", ["A wrapped\nline of text.", "Next."]),
        ("No terminator\n\nnew paragraph", ["No terminator", "new paragraph"]),
        ("Blank with spaces\n   \nnext", ["Blank with spaces", "next"]),
        ("Windows\r\n\r\nlines", ["Windows", "lines"]),
        ("Intro:\n- one\n- two", ["Intro:", "- one", "- two"]),
        ("Steps\n1. first\n2. second", ["Steps", "1. first", "2. second"]),
        ("Text\n# Heading\nbody", ["Text", "# Heading", "body"]),
        ("Quote\n> quoted", ["Quote", "> quoted"]),
        ("Table\n| a | b |", ["Table", "| a | b |"]),
        ("Ends here.\nnext line", ["Ends here.", "next line"]),
        ("行末。\n次の行", ["行末。", "次の行"]),
        ("これは\n折り返し。", ["これは\n折り返し。"]),
        ("see Fig.\n3 below", ["see Fig.\n3 below"]),
    ],
)
def test_line_breaks(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_unbalanced_bracket_is_reset_at_paragraph_break() -> None:
    text = "「閉じない。まだ中。\n\n次の段落。二文目。"
    assert sentences(text) == ["「閉じない。まだ中。", "次の段落。", "二文目。"]


def test_long_unclosed_bracket_does_not_swallow_the_text() -> None:
    text = "（" + "長い文です。" * 200
    assert len(split_sentences(text)) > 100


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_range_limits_the_spans() -> None:
    text = "Skip this. Keep one. Keep two. Skip again."
    start = text.index("Keep one")
    end = text.index(" Skip again")
    assert [text[a:b] for a, b in split_sentences(text, start, end)] == ["Keep one.", "Keep two."]


def test_raw_half_width_text_keeps_original_offsets() -> None:
    text = "ｶﾞｲﾄﾞです｡次の文｡"
    assert sentences(text) == ["ｶﾞｲﾄﾞです｡", "次の文｡"]


_ALPHABET = "ab AZ.。!?！？「」『』（）()\n\n  .1 ｶﾞ東京\"'"


@pytest.mark.parametrize("seed", range(10))
def test_spans_are_ordered_trimmed_and_cover_all_text(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 60)))
        spans = split_sentences(text)
        covered: set[int] = set()
        previous_end = 0
        for start, end in spans:
            assert previous_end <= start < end <= len(text)
            assert not text[start].isspace() and not text[end - 1].isspace()
            covered.update(range(start, end))
            previous_end = end
        assert {i for i, ch in enumerate(text) if not ch.isspace()} <= covered
