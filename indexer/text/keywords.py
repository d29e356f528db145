"""Keyword terms for the SQLite FTS5 index: Japanese words, English stems, CJK bigrams.

The FTS5 table uses ``tokenize='ascii'``: ASCII letters and digits and every
non-ASCII character are token characters, everything else in ASCII separates
tokens.  Text is therefore pre-tokenized here into two space-joined columns:

* ``words`` — Japanese words from a morphological analyser (SudachiPy or
  fugashi + unidic-lite, normalized form, particles and auxiliaries dropped)
  and English words (lower-cased, Snowball-stemmed, stopwords dropped);
* ``grams`` — character bigrams of every run of Japanese characters, the
  fallback that lets unknown names and mis-segmented words still match.

Documents and queries go through the same :class:`KeywordTokenizer`, whose
``settings`` are recorded in the index manifest and turned back into the same
tokenizer by :func:`load_keyword_tokenizer`.

An ASCII word written against Japanese (``BM25のk1パラメータ``, ``e5モデル``)
reaches the analyser inside the Japanese run, which cuts it where letters
meet digits (BM / 25, k / 1). Since version 2 the pieces the analyser returns
side by side are joined again and read as English, so the word is the term
it is anywhere else (``bm25``, ``k1``, ``e5``); version 1, which kept the
pieces apart, is still read for the indexes built with it.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from indexer.text.language import JAPANESE_LETTERS

__all__ = [
    "DEFAULT_GRAMS_WEIGHT",
    "JapaneseAnalyser",
    "KeywordTokenizer",
    "Morpheme",
    "Term",
    "load_keyword_tokenizer",
]

TOKENIZER_NAME = "yomitoki-keywords"
TOKENIZER_VERSION = 2      # what new indexes are built with
TOKENIZER_VERSIONS = (1, 2)
ENGLISH_STEMMER = "snowball-english"

_JA_LETTERS = JAPANESE_LETTERS  # kana, kanji of every plane, 々, 〆, 〇 (indexer.text.language)
# Japanese punctuation kept inside a run so a sentence reaches the analyser whole.
_JA_PUNCT = "\u3001-\u3004\u3008-\u3020\u3030\u303d-\u303f\u30a0\u30fb"
_JA_LETTER = re.compile(f"[{_JA_LETTERS}]")
_JA_LETTER_RUN = re.compile(f"[{_JA_LETTERS}]+")
_CANDIDATE_RUN = re.compile(f"[{_JA_LETTERS}{_JA_PUNCT}A-Za-z0-9]+")
_WORD = re.compile(r"[^\W_]+")
_ASCII_SEPARATORS = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_SENTENCE_BREAK = re.compile("[。！？、\u3000]")

# bm25 weight of the grams column when words weigh 1.0, recorded in ``settings`` as
# ``grams_weight`` (measured in benchmarks/keyword_analysers.py).
DEFAULT_GRAMS_WEIGHT = 1.0
MAX_ANALYSER_CHARS = 8000  # SudachiPy refuses inputs over 49,149 bytes
DROPPED_POS = frozenset({"補助記号", "空白", "助詞", "助動詞"})
ENGLISH_STOPWORDS = frozenset(
    {
        "the", "a", "an", "of", "to", "in", "is", "are", "and", "or", "for", "on",
        "with", "as", "by", "at", "be", "it", "this", "that", "was", "were", "from",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Term:
    """One indexed term and the span of the input text it came from."""

    text: str
    start: int
    end: int


class Morpheme(NamedTuple):
    """A morpheme from a Japanese analyser: its normalized form, span and top-level POS."""

    form: str
    start: int
    end: int
    pos: str


class JapaneseAnalyser(Protocol):
    """A morphological analyser; must be safe to call from several threads."""

    settings: dict[str, object]

    def analyse(self, text: str, drop_pos: frozenset[str]) -> list[Morpheme]:
        """Morphemes of ``text`` (spans relative to it) whose top-level POS is not dropped."""
        ...

    def reading(self, text: str) -> str | None:
        """How ``text`` is read, in katakana (徳川家康 → トクガワイエヤス); None if the analyser cannot say."""
        ...


class SudachiAnalyser:
    """SudachiPy with a sudachidict package; one Sudachi tokenizer per thread."""

    def __init__(self, mode: str = "C", dictionary: str = "core") -> None:
        sudachipy = _import("sudachipy", f"sudachipy sudachidict-{dictionary}")
        if mode not in ("A", "B", "C"):
            raise ValueError(f"sudachi_mode must be 'A', 'B' or 'C', not {mode!r}")
        try:
            self._dictionary = sudachipy.Dictionary(dict=dictionary)
        except Exception as error:  # sudachipy raises its own error types
            raise ValueError(
                f"cannot load Sudachi dictionary {dictionary!r} "
                f"(pip install sudachidict-{dictionary}): {error}"
            ) from error
        self._mode = mode
        self._local = threading.local()
        self._pos0: dict[int, str] = {}
        self.settings: dict[str, object] = {
            "japanese": "sudachi",
            "sudachi_mode": mode,
            "dictionary": dictionary,
        }

    def analyse(self, text: str, drop_pos: frozenset[str]) -> list[Morpheme]:
        """Sudachi morphemes; the form is Sudachi's normalized form (行っ → 行く)."""
        pos0 = self._pos0
        morphemes = []
        for m in self._tokenizer().tokenize(text):
            pos_id = m.part_of_speech_id()
            pos = pos0.get(pos_id) or pos0.setdefault(pos_id, self._dictionary.pos_of(pos_id)[0])
            if pos not in drop_pos:
                morphemes.append(Morpheme(m.normalized_form(), m.begin(), m.end(), pos))
        return morphemes

    def reading(self, text: str) -> str | None:
        """Sudachi's reading forms of the morphemes of ``text``, joined."""
        return "".join(m.reading_form() for m in self._tokenizer().tokenize(text)) or None

    def _tokenizer(self) -> Any:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            if hasattr(self._dictionary, "tokenizer"):
                tokenizer = self._dictionary.tokenizer(mode=self._mode)
            else:  # SudachiPy 0.6 (what GiNZA pins) names it `create` and wants a SplitMode
                import sudachipy

                tokenizer = self._dictionary.create(mode=getattr(sudachipy.SplitMode, self._mode))
            self._local.tokenizer = tokenizer
        return tokenizer


class FugashiAnalyser:
    """fugashi (MeCab) with unidic-lite; one MeCab tagger per thread."""

    def __init__(self, dictionary: str = "unidic-lite") -> None:
        if dictionary != "unidic-lite":
            raise ValueError(f"fugashi supports dictionary 'unidic-lite', not {dictionary!r}")
        self._fugashi = _import("fugashi", "fugashi unidic-lite")
        _import("unidic_lite", "unidic-lite")
        self._local = threading.local()
        self._tagger()  # fail now, not on the first document, if the dictionary is broken
        self.settings: dict[str, object] = {"japanese": "fugashi", "dictionary": dictionary}

    def analyse(self, text: str, drop_pos: frozenset[str]) -> list[Morpheme]:
        """MeCab morphemes; the form is UniDic's written base form (行っ → 行く, 田中 → 田中).

        UniDic's lemma would also merge kana and kanji spellings, but it turns proper
        nouns into katakana readings (田中 → タナカ) and adds English glosses.
        """
        morphemes = []
        position = 0
        for word in self._tagger()(text):
            surface = word.surface
            start = text.find(surface, position)
            position = start + len(surface)
            pos, form = _unidic_pos_and_base(word.feature_raw)
            if pos not in drop_pos:
                morphemes.append(Morpheme(form or surface, start, position, pos))
        return morphemes

    def reading(self, text: str) -> str | None:
        """UniDic's kana of the words of ``text``, joined; None if one has none (an unknown word)."""
        kana = [getattr(word.feature, "kana", None) for word in self._tagger()(text)]
        return "".join(kana) if kana and all(kana) else None  # type: ignore[arg-type]

    def _tagger(self) -> Any:
        tagger = getattr(self._local, "tagger", None)
        if tagger is None:
            tagger = self._local.tagger = self._fugashi.Tagger()
        return tagger


def _unidic_pos_and_base(feature: str) -> tuple[str, str]:
    """UniDic's top-level POS and orthBase (field 11) from a raw feature string."""
    fields = feature.split(",", 11)
    if '"' in feature or len(fields) < 12:  # quoted CSV (symbols) or an unknown word
        return fields[0].strip('"'), ""
    return fields[0], fields[10]


class KeywordTokenizer:
    """Turns text into ``words`` and ``grams`` terms for FTS5, and queries into MATCH strings."""

    def __init__(
        self,
        analyser: JapaneseAnalyser,
        grams: int = 2,
        grams_weight: float = DEFAULT_GRAMS_WEIGHT,
        version: int = TOKENIZER_VERSION,
    ) -> None:
        if version not in TOKENIZER_VERSIONS:
            raise ValueError(f"keyword tokenizer setting 'version' is {version!r}; this yomitoki supports "
                             f"{', '.join(map(str, TOKENIZER_VERSIONS))} (re-index with this version)")
        if isinstance(grams, bool) or not isinstance(grams, int) or grams < 1:
            raise ValueError(f"keyword setting 'grams' must be a positive integer, not {grams!r}")
        if isinstance(grams_weight, bool) or not isinstance(grams_weight, int | float):
            raise ValueError(
                f"keyword setting 'grams_weight' must be a number, not {grams_weight!r}"
            )
        self._analyser = analyser
        self._gram_size = grams
        self._joins_ascii = version >= 2
        self._local = threading.local()
        self.settings: dict[str, object] = {
            "name": TOKENIZER_NAME,
            "version": version,
            **analyser.settings,
            "english": ENGLISH_STEMMER,
            "grams": grams,
            "grams_weight": float(grams_weight),  # bm25 weight of grams at query time
        }

    def words(self, text: str) -> list[Term]:
        """Word terms: Japanese runs through the analyser, everything else as English."""
        terms: list[Term] = []
        position = 0
        for run in _japanese_runs(text):
            terms.extend(self._english(text[position : run.start()], position))
            for start, end in _analyser_chunks(run.start(), run.end(), text):
                terms.extend(self._japanese(text[start:end], start))
            position = run.end()
        terms.extend(self._english(text[position:], position))
        return terms

    def grams(self, text: str) -> list[Term]:
        """Character n-grams of each run of Japanese letters (a shorter run is kept whole)."""
        size = self._gram_size
        terms: list[Term] = []
        for run in _JA_LETTER_RUN.finditer(text):
            start, chars = run.start(), run.group()
            if len(chars) <= size:
                terms.append(Term(chars, start, run.end()))
                continue
            terms.extend(
                Term(chars[i : i + size], start + i, start + i + size)
                for i in range(len(chars) - size + 1)
            )
        return terms

    def index_text(self, text: str) -> tuple[str, str]:
        """The ``(words, grams)`` column values of an FTS row for ``text``."""
        words = " ".join(term.text for term in self.words(text))
        grams = " ".join(term.text for term in self.grams(text))
        return words, grams

    def noun_spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of ``text`` that the analyser reads as nouns (名詞; unknown words are nouns too)."""
        spans: list[tuple[int, int]] = []
        for run in _japanese_runs(text):
            for start, end in _analyser_chunks(run.start(), run.end(), text):
                spans.extend((start + m.start, start + m.end)
                             for m in self._analyser.analyse(text[start:end], frozenset()) if m.pos == "名詞")
        return spans

    def reading(self, text: str) -> str | None:
        """How a Japanese word or phrase is read, in katakana, by the analyser."""
        return self._analyser.reading(text)

    def match_query(self, text: str) -> str | None:
        """An FTS5 MATCH expression OR-ing every term of ``text``; None when it has none."""
        return match_expression(_unique(self.words(text)), _unique(self.grams(text)))

    def _japanese(self, chunk: str, offset: int) -> Iterator[Term]:
        ascii_run: tuple[int, int] | None = None  # morphemes with no Japanese letter, side by side
        for form, start, end, _pos in self._analyser.analyse(chunk, DROPPED_POS):
            if not _JA_LETTER.search(chunk[start:end]):  # iPhone, 15: same terms as in English text
                if ascii_run is not None and self._joins_ascii and ascii_run[1] == start:
                    ascii_run = (ascii_run[0], end)  # BM + 25: one word, bm25
                    continue
                if ascii_run is not None:
                    yield from self._english(chunk[ascii_run[0] : ascii_run[1]], offset + ascii_run[0])
                ascii_run = (start, end)
                continue
            if ascii_run is not None:
                yield from self._english(chunk[ascii_run[0] : ascii_run[1]], offset + ascii_run[0])
                ascii_run = None
            for piece in _clean(form.lower()):
                yield Term(piece, offset + start, offset + end)
        if ascii_run is not None:
            yield from self._english(chunk[ascii_run[0] : ascii_run[1]], offset + ascii_run[0])

    def _english(self, text: str, offset: int) -> Iterator[Term]:
        stemmer = self._stemmer()
        for match in _WORD.finditer(text):
            word = match.group().lower()
            if word not in ENGLISH_STOPWORDS:
                yield Term(stemmer.stemWord(word), offset + match.start(), offset + match.end())

    def stem(self, word: str) -> str:
        """An English word's term: lower-cased and stemmed (running → run), as in the index."""
        return str(self._stemmer().stemWord(word.lower()))

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer_module = _import("Stemmer", "PyStemmer")
            stemmer = self._local.stemmer = stemmer_module.Stemmer("english")
        return stemmer


def load_keyword_tokenizer(settings: dict[str, object] | None = None) -> KeywordTokenizer:
    """The default tokenizer, or the one a manifest's ``settings`` describe."""
    settings = dict(settings or {})
    _check(settings, "name", TOKENIZER_NAME)
    _check(settings, "english", ENGLISH_STEMMER)
    version: Any = settings.pop("version", TOKENIZER_VERSION)
    japanese = settings.pop("japanese", "sudachi")
    grams: Any = settings.pop("grams", 2)  # these three checked by KeywordTokenizer
    grams_weight: Any = settings.pop("grams_weight", DEFAULT_GRAMS_WEIGHT)
    analyser = _load_analyser(japanese, settings)
    return KeywordTokenizer(analyser, grams=grams, grams_weight=grams_weight, version=version)


def _load_analyser(japanese: object, options: dict[str, object]) -> JapaneseAnalyser:
    if japanese == "sudachi":
        allowed = {"sudachi_mode", "dictionary"}
        _reject_unknown(options, allowed)
        mode = str(options.get("sudachi_mode", "C"))
        return SudachiAnalyser(mode=mode, dictionary=str(options.get("dictionary", "core")))
    if japanese == "fugashi":
        _reject_unknown(options, {"dictionary"})
        return FugashiAnalyser(dictionary=str(options.get("dictionary", "unidic-lite")))
    raise ValueError(
        f"unknown Japanese analyser {japanese!r} in keyword tokenizer settings; "
        "expected 'sudachi' or 'fugashi'"
    )


def _check(settings: dict[str, object], key: str, expected: object) -> None:
    value = settings.pop(key, expected)
    if value != expected:
        raise ValueError(
            f"keyword tokenizer setting {key!r} is {value!r}; this yomitoki supports "
            f"{expected!r} (re-index with this version)"
        )


def _reject_unknown(options: dict[str, object], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown keyword tokenizer settings: {', '.join(unknown)}")


def _import(module: str, packages: str) -> Any:
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"keyword search needs {module!r}: pip install {packages}") from error


def _japanese_runs(text: str) -> Iterator[re.Match[str]]:
    """Runs of Japanese letters, Japanese punctuation and embedded ASCII letters/digits."""
    for run in _CANDIDATE_RUN.finditer(text):
        if _JA_LETTER.search(run.group()):
            yield run


def _analyser_chunks(start: int, end: int, text: str) -> Iterator[tuple[int, int]]:
    """Split [start, end) into pieces short enough for the analyser, at punctuation if any."""
    while end - start > MAX_ANALYSER_CHARS:
        limit = start + MAX_ANALYSER_CHARS
        breaks = [m.end() for m in _SENTENCE_BREAK.finditer(text, start + 1, limit)]
        cut = breaks[-1] if breaks else limit
        yield start, cut
        start = cut
    yield start, end


@functools.lru_cache(maxsize=1 << 16)
def _clean(form: str) -> tuple[str, ...]:
    """Pieces of ``form`` the ascii tokenizer keeps whole: split on ASCII separators and
    drop non-ASCII punctuation, symbols, separators and control characters."""
    pieces = _ASCII_SEPARATORS.split(form)
    if not form.isascii():
        pieces = [
            "".join(c for c in piece if unicodedata.category(c)[0] not in "PSZC")
            for piece in pieces
        ]
    return tuple(piece for piece in pieces if piece)


def _unique(terms: list[Term]) -> list[str]:
    return list(dict.fromkeys(term.text for term in terms))


def match_expression(words: Sequence[str], grams: Sequence[str]) -> str | None:
    """The FTS5 MATCH expression OR-ing unique terms of the two columns; None when there are none."""
    parts = [f"{{{column}}} : ({' OR '.join(_quote(term) for term in terms)})"
             for column, terms in (("words", words), ("grams", grams)) if terms]
    return " OR ".join(parts) or None


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'
