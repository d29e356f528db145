"""Words typed in kana find the words written in kanji: けいたいそかいせき → 形態素 解析.

A Japanese reader who does not know (or cannot type) a word's kanji writes it
in kana. Keyword search compares written forms, so けいたいそかいせき matches
nothing written 形態素解析, and Sudachi, reading kana with no context, guesses
(けいたい → 携帯). This module turns kana in a query into the words of the
index that are read that way, like an input method's kana–kanji conversion
limited to the index's own vocabulary:

* the **dictionary** maps each reading (katakana) to the index's `words` terms
  read that way: 解析, 懐石 and 会席 under カイセキ. Readings come from the
  keyword analyser (Sudachi's `reading_form`) on each term, built once per
  generation on the first query that needs it;
* a **kana stretch** of the query (two or more hiragana, ー too, not right
  after a kanji) is read as katakana and split into the fewest dictionary
  readings of two or more characters that cover most of it (a shortest-path
  search over the stretch); each reading adds its terms
  to the query's `words`. Characters no reading covers (particles, mostly)
  add nothing. A stretch is left as typed when the analyser finds no noun in
  it (という, である, これらを: words written in kana anyway) unless it reads as
  exactly one kanji word of the index (せいきか → 正規化), and when it reads as
  nothing but the query's own words (その: Sudachi already has 其の); verbs
  typed in kana need no help (Sudachi reads ひらいた as 開く). When readings
  cover at least half of a stretch, its kana's own terms (Sudachi's guess,
  kana bigrams) leave the query: the conversion already holds the word as
  written in kana where the index has it so (トークナイザ reads
  トークナイザ), and the guesses only add noise.

Kana right after a kanji is a word's ending or a particle (開きました,
家康は), never a stretch; so a query with its words in kanji changes only
where hiragana starts it or follows a space or a katakana word, and reads as
a word the query does not already hold. BM25 still ranks by what the chunks
hold: a homophone that no visible document holds scores nothing. Under an
API key's filter the dictionary holds only the words of the key's documents
(`ReadingDictionary.within`), so what the kana is read as, and so the query
as embedded and the `read_as` shown, are what an index of those documents
alone would give: a word of a hidden document is never read out.

Katakana is how loanwords are written (ロシア, トークナイザ, クラウド), but
some type kanji words in it too (ケイタイソカイセキ). A **katakana stretch**
(three or more, not right after a kanji) is read only when the index does
not hold it as typed (some of the analyser's terms that overlap it are not
in the vocabulary: コンゴ共和国 is one term) and readings cover all of it, each
the reading of a word written wholly in kanji: ケイタイソカイセキ → 形態素 解析.
A loanword the index holds is left as typed, and one it does not hold
rarely splits wholly into kanji words' readings (タクシー would be 宅 シー,
but シー is no kanji word; `benchmarks/kana_queries.py` counts how rarely).
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from indexer.text.keywords import Term
from indexer.text.language import JAPANESE_LETTERS

__all__ = ["Conversion", "LazyReadings", "ReadingDictionary", "has_stretches", "is_kanji", "kana_stretches",
           "katakana_stretches", "to_katakana"]

MIN_READING = 2       # one-kana readings (木, 気, 日…) would match almost anything
MAX_READING = 16      # longer readings are searched no further (徳川家康 is 8)
MIN_KATAKANA = 3      # two-katakana words are mostly loanwords (ラン, ワン, モノ), which homophones would replace
# hiragana (with the prolonged sound mark ー): katakana is how loanwords are written, not a stand-in
_HIRAGANA_RUN = re.compile("[\u3041-\u3096\u30fc]*[\u3041-\u3096][\u3041-\u3096\u30fc]*")
_KANJI = re.compile("[\u3005-\u3007\u3021-\u3029\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KATAKANA_ONLY = re.compile("[\u30a1-\u30fa\u30fc]+")
_KATAKANA_RUN = re.compile("[\u30a1-\u30fa\u30fc]*[\u30a1-\u30fa][\u30a1-\u30fa\u30fc]*")


def to_katakana(text: str) -> str:
    """Hiragana as katakana (ぁ–ゖ are ァ–ヶ shifted by 0x60); everything else unchanged."""
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def kana_stretches(text: str) -> list[tuple[int, int]]:
    """Spans of runs of two or more hiragana that do not follow a kanji (after one, kana is the
    word's ending or a particle: 開きました, 家康は)."""
    return _stretches(_HIRAGANA_RUN, text)


def katakana_stretches(text: str) -> list[tuple[int, int]]:
    """Spans of runs of three or more katakana that do not follow a kanji (東京タワー is one word)."""
    return _stretches(_KATAKANA_RUN, text, MIN_KATAKANA)


def has_stretches(text: str) -> bool:
    """Whether the query has kana that `ReadingDictionary.expand` may read."""
    return bool(kana_stretches(text) or katakana_stretches(text))


def _stretches(run_of: re.Pattern[str], text: str, shortest: int = MIN_READING) -> list[tuple[int, int]]:
    spans = []
    for run in run_of.finditer(text):
        start, end = run.span()
        if end - start >= shortest and not (start and _KANJI.match(text[start - 1])):
            spans.append((start, end))
    return spans


class ReadingDictionary:
    """Readings (katakana) → the terms read that way, for one vocabulary."""

    def __init__(self, terms: Mapping[str, int] | Iterable[str], reading: Callable[[str], str | None]) -> None:
        """`terms`: the vocabulary, or its terms with their document frequencies (the most frequent
        of a reading's terms is the one `Conversion.text` writes)."""
        frequency = terms if isinstance(terms, Mapping) else {}
        by_reading: dict[str, set[str]] = defaultdict(set)
        for term in terms:
            if not _has_japanese(term):
                continue
            read = reading(term)
            if read and MIN_READING <= len(read) <= MAX_READING and _KATAKANA_ONLY.fullmatch(read):
                by_reading[read].add(term)
        self.terms: Mapping[str, tuple[str, ...]] = {
            read: tuple(sorted(found, key=lambda term: (-frequency.get(term, 0), term)))
            for read, found in by_reading.items()
        }
        self._longest = max(map(len, self.terms), default=0)
        self.vocabulary: Container[str] = frozenset(term for found in by_reading.values() for term in found)

    def within(self, frequency: Callable[[str], int]) -> ReadingDictionary:
        """The dictionary of the part of the index where a term occurs `frequency(term)` times (in that many
        chunks; 0: not at all), as if only that part were indexed: an API key's documents. Readings are looked
        up lazily, so a query costs a count for the few terms its kana can read as, not one per term."""
        view = copy.copy(self)
        counts = functools.cache(frequency)
        view.terms = _VisibleTerms(self.terms, counts)
        view.vocabulary = _VisibleVocabulary(self.vocabulary, counts)
        return view

    def __len__(self) -> int:
        return len(self.terms)

    def convert(self, kana: str) -> list[str]:
        """The readings that cover most of `kana` (as katakana) in the fewest pieces, in order."""
        text = to_katakana(kana)
        return [text[start:end] for start, end in self._pieces(text)]

    def _pieces(self, text: str) -> list[tuple[int, int]]:
        """Spans of `convert`'s readings in `text` (katakana)."""
        n = len(text)
        # best[i]: (characters covered, -pieces) of the best split of text[:i]; back[i]: where its last piece began
        best: list[tuple[int, int]] = [(0, 0)] + [(-1, 0)] * n
        back: list[int | None] = [None] * (n + 1)
        for i in range(n):
            covered, pieces = best[i]
            if (covered, pieces) > best[i + 1]:  # leave text[i] uncovered
                best[i + 1], back[i + 1] = (covered, pieces), None
            for j in range(i + MIN_READING, min(n, i + self._longest) + 1):
                if text[i:j] in self.terms:
                    candidate = (covered + j - i, pieces - 1)
                    if candidate > best[j]:
                        best[j], back[j] = candidate, i
        found: list[tuple[int, int]] = []
        i = n
        while i > 0:
            start = back[i]
            if start is None:
                i -= 1
            else:
                found.append((start, i))
                i = start
        return found[::-1]

    def _one_kanji_word(self, kana: str, pieces: list[tuple[int, int]]) -> bool:
        """Whether three or more kana read as exactly one word of the index, written with a kanji
        (せいきか → 正規化, where Sudachi sees a verb and particles)."""
        return (len(kana) >= 3 and pieces == [(0, len(kana))]
                and any(_KANJI.search(term) for term in self.terms[kana]))

    def _spelled_in_katakana(self, kana: str, pieces: list[tuple[int, int]], own: Sequence[str]) -> bool:
        """Whether a katakana stretch is kanji words typed in katakana: the index does not hold it
        as typed (`own`, the analyser's terms that overlap it, are not all in the vocabulary), and
        readings cover all of it, each the reading of a word written wholly in kanji (ケイタイソカイセキ →
        形態素 解析; not タクシー → 宅 シー, a loanword)."""
        return (not (own and all(term in self.vocabulary for term in own))
                and sum(e - s for s, e in pieces) == len(kana)
                and all(any(_all_kanji(term) for term in self.terms[kana[s:e]]) for s, e in pieces))

    def expand(self, query: str, words: Sequence[Term] = (),
               nouns: Sequence[tuple[int, int]] | None = None) -> Conversion:
        """The terms the query's kana stretches are read as, each once, in query order, and the
        stretches that readings cover at least half of (whose kana then stands for those terms).

        A hiragana stretch is left as typed when its readings add no term beyond the query's own
        `words` (その → 其の), or, given the spans the analyser reads as `nouns`, when none of them
        lies in it (という, である, のように, これらを: particles and other words written in kana
        anyway) and it does not read as exactly one kanji word of the index (`_one_kanji_word`).
        A katakana stretch is read only as kanji words typed in katakana (`_spelled_in_katakana`).
        """
        known = {term.text for term in words}
        found: dict[str, None] = {}
        spans = []
        written = []  # the query, with each replaced stretch in the index's words
        position = 0
        stretches = [(start, end, False) for start, end in kana_stretches(query)]
        stretches += [(start, end, True) for start, end in katakana_stretches(query)]
        for start, end, katakana in sorted(stretches):
            kana = to_katakana(query[start:end])
            pieces = self._pieces(kana)
            if katakana:
                own = [term.text for term in words if term.start < end and start < term.end]
                if not self._spelled_in_katakana(kana, pieces, own):
                    continue
            elif nouns is not None and not any(start <= s and e <= end for s, e in nouns) \
                    and not self._one_kanji_word(kana, pieces):
                continue
            terms = [term for s, e in pieces for term in self.terms[kana[s:e]]]
            if all(term in known for term in terms):
                continue
            found.update(dict.fromkeys(terms))
            if 2 * sum(e - s for s, e in pieces) < end - start:
                continue
            spans.append((start, end))
            written.append(query[position:start])
            typed = start
            for s, e in pieces:
                written += [query[typed : start + s], self.terms[kana[s:e]][0]]
                typed = start + e
            written.append(query[typed:end])
            position = end
        written.append(query[position:])
        return Conversion(tuple(found), tuple(spans), "".join(written))


class Conversion(NamedTuple):
    terms: tuple[str, ...]               # the index's words the kana reads as
    spans: tuple[tuple[int, int], ...]   # the query's kana stretches these terms replace
    text: str                            # the query with those stretches written in the words
                                         # most chunks use (けいたいそかいせきとは → 形態素解析とは)


class LazyReadings:
    """A generation's reading dictionary, built on first use; None where the vocabulary is not readable."""

    def __init__(self, vocabulary: Callable[[], Mapping[str, int] | None],
                 reading: Callable[[str], str | None]) -> None:
        self._vocabulary = vocabulary
        self._reading = reading
        self._lock = threading.Lock()
        self._built = False
        self._dictionary: ReadingDictionary | None = None

    @property
    def ready(self) -> bool:
        """Whether `get` returns at once (the dictionary is built, or known not to be possible)."""
        return self._built

    def get(self) -> ReadingDictionary | None:
        if not self._built:
            with self._lock:
                if not self._built:
                    terms = self._vocabulary()
                    self._dictionary = None if terms is None else ReadingDictionary(terms, self._reading)
                    self._built = True
        return self._dictionary


class _VisibleTerms(Mapping[str, tuple[str, ...]]):
    """Readings → the terms read that way that occur where `counts` says, most frequent there first."""

    def __init__(self, terms: Mapping[str, tuple[str, ...]], counts: Callable[[str], int]) -> None:
        self._terms, self._counts = terms, counts
        self._visible: dict[str, tuple[str, ...]] = {}

    def _lookup(self, reading: str) -> tuple[str, ...]:
        if reading not in self._visible:
            found = [term for term in self._terms.get(reading, ()) if self._counts(term) > 0]
            self._visible[reading] = tuple(sorted(found, key=lambda term: (-self._counts(term), term)))
        return self._visible[reading]

    def __contains__(self, reading: object) -> bool:
        return isinstance(reading, str) and bool(self._lookup(reading))

    def __getitem__(self, reading: str) -> tuple[str, ...]:
        if not (found := self._lookup(reading)):
            raise KeyError(reading)
        return found

    def __iter__(self) -> Iterator[str]:
        return (reading for reading in self._terms if reading in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _VisibleVocabulary(Container[str]):
    def __init__(self, vocabulary: Container[str], counts: Callable[[str], int]) -> None:
        self._vocabulary, self._counts = vocabulary, counts

    def __contains__(self, term: object) -> bool:
        return term in self._vocabulary and isinstance(term, str) and self._counts(term) > 0


def is_kanji(char: str) -> bool:
    return bool(_KANJI.fullmatch(char))


def _all_kanji(term: str) -> bool:
    return all(_KANJI.match(c) for c in term)


def _has_japanese(term: str) -> bool:
    return any(_JAPANESE.match(c) for c in term)


_JAPANESE = re.compile(f"[{JAPANESE_LETTERS}]")
