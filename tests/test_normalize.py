"""NFKC normalization and its map back to the original text."""

from __future__ import annotations

import random
import re
import time
import unicodedata

import pytest

from indexer.text.normalize import NormalizedText, normalize, normalize_query


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("ｶﾞｲﾄﾞ", "ガイド"),
        ("㈱", "(株)"),
        ("ＡＰＩ", "API"),
        ("e\u0301", "é"),
        ("ﾊﾟﾝ", "パン"),
        ("plain ASCII\r\n", "plain ASCII\r\n"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("nul\x00and\x07bell\x85c1", "nulandbellc1"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("東京タワー", "東京タワー"),
        ("①２３", "123"),
        ("", ""),
    ],
)
def test_normalize_text(original: str, expected: str) -> None:
    assert normalize(original).text == expected


def test_half_width_katakana_maps_back_to_its_cluster() -> None:
    norm = normalize("ｶﾞｲﾄﾞ")
    assert norm.starts == (0, 2, 3)
    assert norm.ends == (2, 3, 5)
    assert norm.to_original(0, 1) == (0, 2)
    assert norm.to_original(1, 3) == (2, 5)


def test_expansion_maps_every_output_char_to_the_source_char() -> None:
    norm = normalize("x㈱y")
    assert norm.text == "x(株)y"
    assert norm.to_original(1, 4) == (1, 2)
    assert norm.to_original(2, 3) == (1, 2)
    assert norm.to_original(4, 5) == (2, 3)


def test_span_in_japanese_text_maps_to_the_original_word() -> None:
    original = "ﾃﾞﾊﾟｰﾄで㈱ＡＢＣの本を買った。"
    norm = normalize(original)
    start = norm.text.index("ABC")
    mapped = norm.to_original(start, start + 3)
    assert original[mapped[0] : mapped[1]] == "ＡＢＣ"
    start = norm.text.index("デパート")
    mapped = norm.to_original(start, start + 4)
    assert original[mapped[0] : mapped[1]] == "ﾃﾞﾊﾟｰﾄ"


@pytest.mark.parametrize(
    ("original", "position", "expected"),
    [("ｶﾞｲﾄﾞ", 1, (2, 2)), ("ｶﾞｲﾄﾞ", 3, (5, 5)), ("abc", 0, (0, 0)), ("", 0, (0, 0))],
)
def test_empty_span_maps_to_cluster_start_or_end(
    original: str, position: int, expected: tuple[int, int]
) -> None:
    assert normalize(original).to_original(position, position) == expected


def test_out_of_range_span_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside the text"):
        normalize("abc").to_original(2, 4)


def test_combining_mark_after_ascii_joins_the_ascii_cluster() -> None:
    norm = normalize("cafe\u0301!")
    assert norm.text == "café!"
    assert norm.to_original(3, 4) == (3, 5)
    assert norm.to_original(4, 5) == (5, 6)


def test_variation_selector_stays_with_its_base() -> None:
    norm = normalize("葛\U000e0100城")
    assert norm.starts == (0, 0, 2)
    assert norm.ends == (2, 2, 3)


def test_dropped_controls_leave_no_characters() -> None:
    norm = normalize("a\x00b")
    assert norm.text == "ab"
    assert norm.starts == (0, 2)


def test_query_and_document_normalize_alike() -> None:
    assert normalize_query("ＡＰＩのｶﾞｲﾄﾞ") == normalize("ＡＰＩのｶﾞｲﾄﾞ").text == "APIのガイド"


_ALPHABET = (
    "abcXYZ019 .,!?\t\n\r"
    "あいうかがアイウｱｲｳｶﾞﾊﾟｰ漢字東京々"
    "ＡＢＣ１２３！？（）「」。、㈱㍻①ﬁ½"
    "\u0301\u0308\u3099\u309a\uff9e\uff9f\ufe0f\U000e0100"
    "\x00\x07\x1b\x7f\x85\ud800\udfff😀𠮷é"
)


_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))


@pytest.mark.parametrize("seed", range(20))
def test_offset_map_properties(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        original = _random_text(rng)
        norm = normalize(original)
        assert isinstance(norm, NormalizedText)
        assert len(norm.starts) == len(norm.ends) == len(norm.text)
        assert list(norm.starts) == sorted(norm.starts)
        assert list(norm.ends) == sorted(norm.ends)
        for i, ch in enumerate(norm.text):
            start, end = norm.starts[i], norm.ends[i]
            assert 0 <= start < end <= len(original)
            source = _CONTROLS.sub("", original[start:end])
            source = source.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd")
            assert ch in unicodedata.normalize("NFKC", source), (original, i)
        assert normalize(norm.text).text == norm.text


def test_normalized_text_is_nfkc_for_ordinary_text() -> None:
    text = "ﾃﾞｰﾀﾍﾞｰｽの㈱ＡＢＣ、①と②。Café déjà vu."
    assert normalize(text).text == unicodedata.normalize("NFKC", text)


@pytest.mark.parametrize(
    "sample",
    [
        "The quick brown fox jumps over the lazy dog. ",
        "東京は日本の首都です。ｶﾀｶﾅとＡＰＩ、㈱も含む。",
        "Le café élevé à côté de l'hôtel. ",
    ],
)
def test_time_grows_linearly_with_the_text(sample: str) -> None:
    """Ten times the text takes about ten times as long (a quadratic step would make it a hundred).

    A ratio within one process, best of three each, so a busy machine slows both sides alike.
    """
    small = sample * (100_000 // len(sample.encode()) + 1)
    large = small * 10
    normalize("warm up the tables: ｶﾞ")

    def best_of_three(text: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            norm = normalize(text)
            times.append(time.perf_counter() - started)
            assert len(norm.starts) == len(norm.text)
        return min(times)

    ratio = best_of_three(large) / best_of_three(small)
    assert ratio < 40, f"{len(large.encode()):,} bytes took {ratio:.1f}x as long as {len(small.encode()):,}"
