"""How well a text (a passage or a sentence) supports a question.

The score mixes two signals, each in [0, 1]:

* dense: cosine similarity of the question's and the text's embeddings, measured
  from the question's own floor — its median similarity to everyday sentences on
  unrelated topics, embedded as passages (`similarity_floor`, with the reference
  sentences zero-shot classification reads its thresholds from): about 0.75 under
  multilingual-e5-small, whose cosines all lie in a high, narrow band, near 0.1
  under all-MiniLM-L6-v2 — so that 0 means "no closer than an arbitrary
  sentence" and one threshold serves every model; weighted
  like hybrid search weights its dense ranking, by the embedding model's
  coverage of the question (near 1 for English under all-MiniLM-L6-v2, 0 for
  Japanese, where it sees isolated characters);
* keywords: the IDF-weighted share of the question's keyword terms (the same
  words and Japanese character bigrams the FTS5 index holds) found in the text,
  with document frequencies taken from the index itself; bigrams count only
  for a text with Japanese in it.

The sentence reader ranks sentences with it, and the answering pipeline uses
the best passage's score to decide that the documents do not hold the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import Embedder, embed_for
from indexer.search.searcher import Hit, Searcher
from indexer.store.sqlite import Filters
from indexer.text.language import detect_language
from indexer.text.normalize import normalize_query
from server.nlp.label_baseline import REFERENCES

DENSE_SHARE = 0.5  # share of the dense similarity when the model covers the question fully
# Question words say what kind of answer is wanted, not where it is: they are not matched.
INTERROGATIVES = frozenset({
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "do", "does", "did",
    "many", "much", "is", "are", "was", "were",
    "何", "なに", "なん", "いつ", "どこ", "誰", "だれ", "どれ", "どの", "どう", "どんな", "なぜ",
    "何故", "いくつ", "いくら", "どちら", "どなた", "幾つ",
})  # fmt: skip


def similarity_floor(embedder: Embedder, query_vector: np.ndarray, language: str) -> float:
    """The question's median cosine to the reference sentences of its language, embedded as passages."""
    references = REFERENCES.vectors(embedder, kind="passage")
    return float(np.median(references.get(language, references["en"]) @ query_vector))


def warm_up(embedder: Embedder) -> None:
    """Pay the first question's one-off costs before serving: the reference sentences of the floor
    (about 0.4 s under multilingual-e5-small) and the model's first forward pass."""
    REFERENCES.vectors(embedder, kind="passage")
    embed_for(embedder, ["warm-up"], kind="query")


def above_floor(similarity: np.ndarray, floor: float) -> np.ndarray:
    """Cosine similarities rescaled so that the floor is 0 and identity is 1, clipped to [0, 1]."""
    return np.clip((similarity - floor) / (1.0 - floor), 0.0, 1.0)


@dataclass(frozen=True)
class QuestionProfile:
    text: str                     # the normalized question, its kana read as the index's words
    words: dict[str, float]       # keyword term -> IDF weight
    grams: dict[str, float]       # Japanese character bigram -> IDF weight
    vector: np.ndarray | None     # None when the dense signal has no say
    dense: float                  # weight of the dense similarity in the score
    floor: float = 0.0            # the question's similarity to unrelated text (`similarity_floor`)


class RelevanceScorer:
    """Scores texts against a question, with term weights from one index generation."""

    def __init__(self, searcher: Searcher, dense_share: float = DENSE_SHARE, scope: Filters | None = None) -> None:
        """`scope`: the chunks whose document frequencies weigh the terms (`Filters.statistics`; None: all), so
        that under an API key's access filter the documents it cannot see weigh nothing."""
        self.searcher = searcher
        self.dense_share = dense_share
        self.scope = scope
        if scope is None:
            self._chunks = max(1, searcher.generation.manifest.counts.chunks)
        else:
            self._chunks = max(1, searcher.search_store.vector_count(scope))

    def profile(self, question: str) -> QuestionProfile:
        # hiragana read as the index's words (`indexer.search.readings`): passages hold them in kanji
        text = self.searcher.kana_terms(normalize_query(question).strip(), self.scope).text
        keywords = self.searcher.keywords
        words = {t.text for t in keywords.words(text) if text[t.start : t.end].lower() not in INTERROGATIVES}
        grams = {t.text for t in keywords.grams(text) if t.text not in INTERROGATIVES}
        coverage = self.searcher.embedder.coverage(text)
        dense = self.dense_share * self.searcher.fusion.readable(coverage)
        vector = embed_for(self.searcher.embedder, [text], "query")[0] if dense > 0 else None
        floor = similarity_floor(self.searcher.embedder, vector, detect_language(text)) if vector is not None else 0.0
        return QuestionProfile(text=text, words=self._idf("words", words), grams=self._idf("grams", grams),
                               vector=vector, dense=dense if vector is not None else 0.0, floor=floor)

    def _idf(self, column: str, terms: set[str]) -> dict[str, float]:
        weights = {}
        for term in sorted(terms):
            df = self.searcher.search_store.document_frequency(column, term, self.scope)
            weights[term] = math.log(1 + (self._chunks - df + 0.5) / (df + 0.5))
        return weights

    def score(self, profile: QuestionProfile, texts: Sequence[str], vectors: np.ndarray | None = None,
              *, keyword_only: bool = False) -> np.ndarray:
        """Relevance of each normalized text to the question, in [0, 1]."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        keyword = np.array([self._keyword_share(profile, text) for text in texts], dtype=np.float32)
        if profile.vector is None or keyword_only:
            return keyword
        if vectors is None:
            vectors = embed_for(self.searcher.embedder, list(texts), "passage")
        dense = above_floor(vectors @ profile.vector, profile.floor)
        return profile.dense * dense + (1.0 - profile.dense) * keyword

    def _keyword_share(self, profile: QuestionProfile, text: str) -> float:
        keywords = self.searcher.keywords
        shares = []
        if profile.words:
            found = {t.text for t in keywords.words(text)}
            shares.append(_weighted_share(profile.words, found))
        if profile.grams and (found := {t.text for t in keywords.grams(text)}):
            # Japanese bigrams are a second reading of the Japanese words above; a text with no Japanese
            # letters (an English passage for a Japanese question) cannot hold them, so they do not count.
            shares.append(_weighted_share(profile.grams, found))
        return float(np.mean(shares)) if shares else 0.0

    def passage_vectors(self, hits: Sequence[Hit]) -> np.ndarray | None:
        """The stored embeddings of retrieved chunks (read back from FAISS, not recomputed)."""
        return self.searcher.search_store.stored_vectors([int(hit.chunk_id) for hit in hits])  # None: embed instead

    def passages(self, profile: QuestionProfile, hits: Sequence[Hit]) -> list[float]:
        """Relevance of each retrieved passage."""
        texts = [normalize_query(hit.text) for hit in hits]
        vectors = self.passage_vectors(hits) if profile.vector is not None else None
        return [round(float(s), 6) for s in self.score(profile, texts, vectors)]


def _weighted_share(weights: dict[str, float], found: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for term, w in weights.items() if term in found) / total if total else 0.0
