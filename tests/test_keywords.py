"""Keyword terms: spans, stemming, stopwords, safe FTS5 queries, Japanese words in real FTS5."""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from indexer.text.keywords import KeywordTokenizer, Term, load_keyword_tokenizer

ANALYSERS: dict[str, dict[str, object]] = {
    "sudachi-C": {"japanese": "sudachi", "sudachi_mode": "C"},
    "sudachi-A": {"japanese": "sudachi", "sudachi_mode": "A"},
    "fugashi": {"japanese": "fugashi"},
}
GINZA = "田中さんは銀座で働く。"
# One token for FTS5's ascii tokenizer: ASCII letters/digits and non-ASCII characters only.
ASCII_TOKEN = re.compile(r"[A-Za-z0-9\x80-\U0010ffff]+")


@pytest.fixture(scope="module", params=list(ANALYSERS))
def tokenizer(request: pytest.FixtureRequest) -> KeywordTokenizer:
    return load_keyword_tokenizer(ANALYSERS[request.param])


@pytest.fixture
def fts() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(words, grams, tokenize='ascii')")
    yield db
    db.close()


def index(db: sqlite3.Connection, tokenizer: KeywordTokenizer, texts: Sequence[str]) -> None:
    rows = [(i, *tokenizer.index_text(text)) for i, text in enumerate(texts, 1)]
    db.executemany("INSERT INTO fts(rowid, words, grams) VALUES (?, ?, ?)", rows)


def search(db: sqlite3.Connection, match: str | None, grams_weight: float = 1.0) -> list[int]:
    assert match is not None
    sql = "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 1.0, ?)"
    return [row[0] for row in db.execute(sql, (match, grams_weight))]


def column_match(column: str, terms: Sequence[Term]) -> str:
    return f"{{{column}}} : (" + " OR ".join(f'"{t.text}"' for t in terms) + ")"


def texts(terms: Sequence[Term]) -> list[str]:
    return [term.text for term in terms]


# --- terms and spans ---------------------------------------------------------------------


def test_japanese_words_are_normalized_forms_with_surface_spans(
    tokenizer: KeywordTokenizer,
) -> None:
    text = "昨日、東京へ行った。関数を呼ぶ。"
    terms = tokenizer.words(text)
    assert {"東京", "行く", "関数", "呼ぶ"} <= set(texts(terms))
    surfaces = {term.text: text[term.start : term.end] for term in terms}
    assert surfaces["東京"] == "東京"
    assert surfaces["行く"] == "行っ"  # the conjugated surface the base form came from


def test_particles_auxiliaries_and_punctuation_leave_words(tokenizer: KeywordTokenizer) -> None:
    assert texts(tokenizer.words(GINZA)) == ["田中", "さん", "銀座", "働く"]
    assert not {"は", "で", "た", "を", "。"} & set(
        texts(tokenizer.words("東京へ行ったのを見た。"))
    )


@pytest.mark.parametrize(
    "text",
    [
        GINZA,
        'The quick brown fox (a.k.a. "Foxy") jumped — twice!',
        "iPhone15を買った。Pythonで関数を書く。",
        "ジョン・スミスさんは「東京都庁」に勤める…★彡",
        "Café au lait, 한국어 텍스트, naïve résumé",
        "  前後に空白  \n改行\tタブ  ",
    ],
)
def test_every_span_points_at_its_surface(tokenizer: KeywordTokenizer, text: str) -> None:
    terms = tokenizer.words(text) + tokenizer.grams(text)
    assert terms
    for term in terms:
        assert 0 <= term.start < term.end <= len(text)
        surface = text[term.start : term.end]
        assert surface == surface.strip() and surface
    for term in tokenizer.grams(text):
        assert text[term.start : term.end] == term.text


def test_english_words_are_lowercased_stemmed_and_spanned(tokenizer: KeywordTokenizer) -> None:
    text = "Running runners RAN quickly"
    terms = tokenizer.words(text)
    assert texts(terms) == ["run", "runner", "ran", "quick"]
    assert [text[t.start : t.end] for t in terms] == ["Running", "runners", "RAN", "quickly"]


def test_english_stopwords_are_dropped(tokenizer: KeywordTokenizer) -> None:
    assert texts(tokenizer.words("The cat and the hat were in this house")) == [
        "cat",
        "hat",
        "hous",
    ]
    assert tokenizer.words("the of and to is are") == []


def test_latin_inside_japanese_gets_the_english_terms(tokenizer: KeywordTokenizer) -> None:
    assert {"iphon", "run"} <= set(texts(tokenizer.words("iPhoneでrunningを記録")))
    assert "iphon" in texts(tokenizer.words("iPhone"))


@pytest.mark.parametrize(("text", "expected"), [
    ("BM25のk1パラメータ", ["bm25", "k1"]),        # the analyser cuts BM / 25 and k / 1
    ("e5モデルとGPT-4oで要約", ["e5", "gpt", "4o"]),
    ("iPhone15を買う", ["iphone15"]),
    ("3.5倍", ["3", "5"]),                           # a separator still separates, as in English text
])
def test_latin_and_digits_against_japanese_are_the_terms_they_are_in_english(
        tokenizer: KeywordTokenizer, text: str, expected: list[str]) -> None:
    ascii_terms = [t for t in tokenizer.words(text) if t.text.isascii()]
    assert texts(ascii_terms) == expected
    standalone = " ".join(text[t.start : t.end] for t in ascii_terms)
    assert texts(tokenizer.words(standalone)) == expected  # the same word written apart


def test_an_index_built_with_version_1_keeps_its_pieces() -> None:
    version_1 = load_keyword_tokenizer({"version": 1})
    assert version_1.settings["version"] == 1
    assert texts(version_1.words("BM25のk1パラメータ")) == ["bm", "25", "k", "1", "パラメーター"]


def test_other_scripts_stay_whole_words(tokenizer: KeywordTokenizer) -> None:
    assert texts(tokenizer.words("Café naïve 한국어")) == ["café", "naïv", "한국어"]


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world! (test) [x] {y} <z> a_b c-d e/f g.h i@j k#l",
        "「銀座」・『東京』【重要】〜※★♪→",
        "ジョン・スミス、C++とC#、e-mail、COVID-19",
        "価格は¥1,000（税込）です。",
    ],
)
def test_terms_hold_no_punctuation_or_symbols(tokenizer: KeywordTokenizer, text: str) -> None:
    text = unicodedata.normalize("NFKC", text)
    for term in tokenizer.words(text) + tokenizer.grams(text):
        assert ASCII_TOKEN.fullmatch(term.text), term
        assert all(unicodedata.category(c)[0] not in "PSZC" for c in term.text), term


def test_grams_are_bigrams_of_japanese_runs(tokenizer: KeywordTokenizer) -> None:
    assert texts(tokenizer.grams("銀座で働く")) == ["銀座", "座で", "で働", "働く"]
    assert texts(tokenizer.grams("A東B、京都")) == ["東", "京都"]
    assert tokenizer.grams("English only, 123") == []


def test_long_japanese_text_is_analysed_whole(tokenizer: KeywordTokenizer) -> None:
    text = "東京の銀座で働く田中さんは毎朝コーヒーを飲む。" * 2000  # past Sudachi's 49,149 bytes
    terms = tokenizer.words(text)
    assert texts(terms).count("銀座") == 2000
    assert all(text[t.start : t.end] for t in terms)


def test_index_text_joins_terms_with_spaces(tokenizer: KeywordTokenizer) -> None:
    words, grams = tokenizer.index_text(GINZA)
    assert words == "田中 さん 銀座 働く"
    assert grams == "田中 中さ さん んは は銀 銀座 座で で働 働く"


def test_threads_get_the_same_terms(tokenizer: KeywordTokenizer) -> None:
    docs = [f"{i}番目の文書では東京と銀座について話す。Running tests." for i in range(64)]
    expected = [tokenizer.index_text(doc) for doc in docs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(tokenizer.index_text, docs)) == expected


# --- match_query -----------------------------------------------------------------------


def test_match_query_shape(tokenizer: KeywordTokenizer) -> None:
    assert tokenizer.match_query("東京に行く東京") == (
        '{words} : ("東京" OR "行く") OR {grams} : ("東京" OR "京に" OR "に行" OR "行く" OR "く東")'
    )
    assert tokenizer.match_query("Running NEAR") == '{words} : ("run" OR "near")'


@pytest.mark.parametrize("query", ["", "   ", "the of and", "。、!?「」", "***", '"'])
def test_match_query_without_terms_is_none(tokenizer: KeywordTokenizer, query: str) -> None:
    assert tokenizer.match_query(query) is None


@pytest.mark.parametrize(
    "query",
    [
        'say "hello" NOT now',
        "cats AND dogs OR mice NOT birds",
        "NEAR(cats dogs, 2)",
        "cat* ^dog words:cat {grams}: x",
        'a" OR "b',
        '"unbalanced',
        "col:umn - + ( ) [ ] { } , ; :",
        "銀座 AND 東京 OR NOT 「関数」* ^呼ぶ",
        "NOT*",
        "OR NOT NEAR",
    ],
)
def test_match_query_is_safe_in_fts5(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection, query: str
) -> None:
    index(fts, tokenizer, ["cats and dogs say hello", "mice and birds", "銀座と東京で関数を呼ぶ"])
    match = tokenizer.match_query(query)
    assert match is not None
    search(fts, match)  # no sqlite3.OperationalError: fts5: syntax error


def test_operator_words_are_plain_terms(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection
) -> None:
    index(fts, tokenizer, ["do not disturb", "near the door"])
    assert search(fts, tokenizer.match_query("NOT")) == [1]
    assert search(fts, tokenizer.match_query("NEAR")) == [2]


# --- Japanese words in a real FTS5 table --------------------------------------------------


@pytest.mark.parametrize("column", ["words", "grams"])
def test_two_character_word_matches_through_each_column(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection, column: str
) -> None:
    index(fts, tokenizer, ["東京で働く。", GINZA, "銀行に行く。"])
    terms = tokenizer.words("銀座") if column == "words" else tokenizer.grams("銀座")
    assert texts(terms) == ["銀座"]
    assert search(fts, column_match(column, terms)) == [2]


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("銀座", GINZA),
        ("関数", "関数を呼ぶ"),
        ("東京", "東京へ行った。"),
        ("行く", "東京へ行った。"),
    ],
)
def test_query_finds_japanese_document_first(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection, query: str, document: str
) -> None:
    index(fts, tokenizer, ["京都の大学で数学を学ぶ。", document, "座る場所を探す。"])
    assert search(fts, tokenizer.match_query(query))[0] == 2


def test_grams_find_a_name_the_analyser_splits(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection
) -> None:
    index(fts, tokenizer, ["ヨミトキ太郎が来た。", "太郎が来た。", "ヨミと時計"])
    assert search(fts, tokenizer.match_query("ヨミトキ太郎"))[0] == 1


def test_english_query_matches_inflected_document(
    tokenizer: KeywordTokenizer, fts: sqlite3.Connection
) -> None:
    index(fts, tokenizer, ["The servers were running overnight.", "A quiet evening."])
    assert search(fts, tokenizer.match_query("server runs")) == [1]


# --- settings ---------------------------------------------------------------------------


def test_settings_round_trip_through_a_json_manifest(tokenizer: KeywordTokenizer) -> None:
    settings = json.loads(json.dumps(tokenizer.settings))
    again = load_keyword_tokenizer(settings)
    assert again.settings == tokenizer.settings
    text = "東京の銀座で働く。Running servers."
    assert again.index_text(text) == tokenizer.index_text(text)


def test_default_settings() -> None:
    settings = load_keyword_tokenizer().settings
    assert settings == {
        "name": "yomitoki-keywords",
        "version": 2,
        "japanese": "sudachi",
        "sudachi_mode": "C",
        "dictionary": "core",
        "english": "snowball-english",
        "grams": 2,
        "grams_weight": 1.0,
    }


def test_analysers_record_what_they_are() -> None:
    assert load_keyword_tokenizer(ANALYSERS["sudachi-A"]).settings["sudachi_mode"] == "A"
    fugashi = load_keyword_tokenizer(ANALYSERS["fugashi"]).settings
    assert (fugashi["japanese"], fugashi["dictionary"]) == ("fugashi", "unidic-lite")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"japanese": "kuromoji"}, "unknown Japanese analyser 'kuromoji'"),
        ({"japanese": "sudachi", "sudachi_mode": "D"}, "sudachi_mode"),
        ({"japanese": "sudachi", "dictionary": "nosuch"}, "Sudachi dictionary 'nosuch'"),
        ({"japanese": "fugashi", "dictionary": "ipadic"}, "unidic-lite"),
        ({"japanese": "fugashi", "sudachi_mode": "C"}, "unknown keyword tokenizer settings"),
        ({"name": "other-tokenizer"}, "'name'"),
        ({"version": 3}, "'version'"),
        ({"english": "porter"}, "'english'"),
        ({"grams": 0}, "'grams'"),
        ({"grams_weight": "heavy"}, "'grams_weight'"),
    ],
)
def test_bad_settings_are_refused_clearly(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_keyword_tokenizer(settings)
