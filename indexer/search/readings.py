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
家康は), never a stretch, and katakana is how loanwords are written (ロシア,
トークナイザ), not a stand-in for kanji; so a query with its words in kanji
changes only where hiragana starts it or follows a space or a katakana
word, and reads as a word the query does not already hold. BM25 still ranks
by what the chunks hold: a homophone that no visible document holds (under
an API key's filter too) scores nothing.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

from indexer.text.language import JAPANESE_LETTERS

__all__ = ["Conversion", "LazyReadings", "ReadingDictionary", "kana_stretches", "to_katakana"]

MIN_READING = 2       # one-kana readings (木, 気, 日…) would match almost anything
MAX_READING = 16      # longer readings are searched no further (徳川家康 is 8)
# hiragana (with the prolonged sound mark ー): katakana is how loanwords are written, not a stand-in
_HIRAGANA_RUN = re.compile("[\u3041-\u3096\u30fc]*[\u3041-\u3096][\u3041-\u3096\u30fc]*")
_KANJI = re.compile("[\u3005-\u3007\u3021-\u3029\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KATAKANA_ONLY = re.compile("[\u30a1-\u30fa\u30fc]+")


def to_katakana(text: str) -> str:
    """Hiragana as katakana (ぁ–ゖ are ァ–ヶ shifted by 0x60); everything else unchanged."""
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def kana_stretches(text: str) -> list[tuple[int, int]]:
    """Spans of runs of two or more hiragana that do not follow a kanji (after one, kana is the
    word's ending or a particle: 開きました, 家康は)."""
    spans = []
    for run in _HIRAGANA_RUN.finditer(text):
        start, end = run.span()
        if end - start >= MIN_READING and not (start and _KANJI.match(text[start - 1])):
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
        self.terms: dict[str, tuple[str, ...]] = {
            read: tuple(sorted(found, key=lambda term: (-frequency.get(term, 0), term)))
            for read, found in by_reading.items()
        }
        self._longest = max(map(len, self.terms), default=0)

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

    def expand(self, query: str, known: Collection[str] = (),
               nouns: Sequence[tuple[int, int]] | None = None) -> Conversion:
        """The terms the query's kana stretches are read as, each once, in query order, and the
        stretches that readings cover at least half of (whose kana then stands for those terms).

        A stretch is left as typed when its readings add no term beyond `known` (the query's own
        words: その → 其の), or, given the spans the analyser reads as `nouns`, when none of them lies
        in it (という, である, のように, これらを: particles and other words written in kana anyway) and
        it does not read as exactly one kanji word of the index (`_one_kanji_word`).
        """
        found: dict[str, None] = {}
        spans = []
        written = []  # the query, with each replaced stretch in the index's words
        position = 0
        for start, end in kana_stretches(query):
            kana = to_katakana(query[start:end])
            pieces = self._pieces(kana)
            if nouns is not None and not any(start <= s and e <= end for s, e in nouns) \
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

    def get(self) -> ReadingDictionary | None:
        if not self._built:
            with self._lock:
                if not self._built:
                    terms = self._vocabulary()
                    self._dictionary = None if terms is None else ReadingDictionary(terms, self._reading)
                    self._built = True
        return self._dictionary


def _has_japanese(term: str) -> bool:
    return any(_JAPANESE.match(c) for c in term)


_JAPANESE = re.compile(f"[{JAPANESE_LETTERS}]")
