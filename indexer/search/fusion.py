"""Fusing dense and keyword rankings, weighted by how far each can be trusted.

Two rankings of chunk ids come in, each with its own scores: cosine similarities
from the vector index, BM25 from the keyword index. They are fused per query:

- **coverage-weighted-zscore** (what a new index records): each list's scores
  become z-scores (mean and standard deviation over its first `candidates`
  entries, so a paged ranking is the same as a plain one), and a chunk's fused
  score is `a·z_dense + (1 − a)·z_keyword`, where `a` is the dense ranking's
  share for the query's language. A chunk one list did not return takes that
  list's lowest z-score. Unlike rank fusion this keeps how far the first hit
  stands out: a keyword hit far above its runners-up outweighs a dense hit
  that barely leads, and the other way round.
- **coverage-weighted-rrf** (indexes built before): weighted reciprocal rank
  fusion with constant `k`, the dense ranking weighted against the keyword
  ranking's `keyword_weight`.

Either way the dense side is scaled by the embedding model's *coverage* of the
query (the share of its characters the model's vocabulary carries as whole
words, see `Embedder.coverage`) and left out below `coverage_floor`: all-MiniLM-L6-v2
sees Japanese as isolated characters, and its ranking would only drag a strong
keyword ranking down. The shares per language are per model (`MODEL_SHARES`,
each tuned on a training split, see `benchmarks/fusion_rules.py`) and are
recorded in the index's manifest with the model's measured coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from indexer.store.manifest import FusionEntry

ZSCORE = "coverage-weighted-zscore"
RRF = "coverage-weighted-rrf"
METHODS = (ZSCORE, RRF)

# Fixed text per language on which a model's coverage is measured (ordinary prose, no rare characters).
COVERAGE_SAMPLES = {
    "en": ("Keyword search and vector search fail in different ways.",
           "The model was fine-tuned on questions and answers from the documentation."),
    "ja": ("キーワード検索とベクトル検索は、それぞれ異なる場面で失敗する。",
           "東京の天気は午後から雨になり、気温は昨日より五度低い見込みです。"),
}

# The dense ranking's share `a` per query language, per bundled model, for z-score fusion, chosen on
# a tuning split only — English on SciFact's train queries, Japanese on the JSQuAD questions of half
# of its articles — and reported on the other split and on all questions (`python
# benchmarks/fusion_rules.py`; README "Hybrid search"). Chosen so: multilingual-e5-small's two shares
# and the English share of MiniLM (0.5) and of USE (0.3, a weaker English retriever); USE's Japanese
# share is the default model's. A language the model cannot read (MiniLM in Japanese) never reaches
# its share: the coverage floor leaves the dense ranking out.
MODEL_SHARES: dict[str, tuple[tuple[str, float], ...]] = {
    "multilingual-e5-small": (("en", 0.5), ("ja", 0.4)),
    "all-minilm-l6-v2": (("en", 0.5), ("ja", 0.0)),
    "use-multilingual-v3": (("en", 0.3), ("ja", 0.4)),
}
DEFAULT_SHARES = MODEL_SHARES["multilingual-e5-small"]  # any other model: the default model's shares


@dataclass(frozen=True)
class FusionSettings:
    method: str = ZSCORE
    k: int = 60                  # the RRF constant (rrf only)
    keyword_weight: float = 1.0  # the keyword ranking's RRF weight (rrf only)
    coverage_floor: float = 0.5  # dense weight is 0 below this coverage, the coverage times the share above it
    candidates: int = 100        # how deep each retriever's list goes before fusion
    # Per query language: z-score, the dense ranking's share a in [0, 1]; rrf, its weight against
    # keyword_weight (1.0 / 0.2 for English / Japanese in the indexes built with rrf).
    language_weights: tuple[tuple[str, float], ...] = DEFAULT_SHARES
    # The model's coverage of each language on COVERAGE_SAMPLES, recorded per model (see `for_model`).
    model_coverage: tuple[tuple[str, float], ...] = ()

    def as_entry(self) -> FusionEntry:
        """The manifest's `fusion` entry."""
        return FusionEntry(method=self.method, k=self.k, keyword_weight=self.keyword_weight,
                           coverage_floor=self.coverage_floor, candidates=self.candidates,
                           language_weights=dict(self.language_weights), model_coverage=dict(self.model_coverage))

    @classmethod
    def from_entry(cls, entry: FusionEntry | None) -> FusionSettings:
        """The settings a manifest recorded; what an older index did not record keeps its default."""
        if entry is None:  # an index from before fusion was recorded fuses as it always did (rrf)
            return LEGACY
        recorded: dict[str, Any] = {name: value for name in cls.__dataclass_fields__
                                    if (value := getattr(entry, name)) is not None}
        for name in ("language_weights", "model_coverage"):
            if name in recorded:
                recorded[name] = tuple(recorded[name].items())
        return cls(**recorded)

    @classmethod
    def for_model(cls, coverage: Callable[[str], float], name: str = "") -> FusionSettings:
        """The settings for an embedding model: its shares per language and how much of each language it reads.

        `coverage` is the model's `Embedder.coverage`, measured on a fixed sample per
        language (`COVERAGE_SAMPLES`) and recorded with the shares. A language the
        model cannot read (coverage under `coverage_floor`: MiniLM in Japanese, 0)
        is left out query by query by that floor; one it reads gets the model's
        share for the language (`MODEL_SHARES`, by the model's name; any other model
        gets the default model's).
        """
        measured = {lang: min(coverage(text) for text in texts) for lang, texts in COVERAGE_SAMPLES.items()}
        return replace(cls(), language_weights=MODEL_SHARES.get(name, DEFAULT_SHARES),
                       model_coverage=tuple((lang, round(value, 3)) for lang, value in measured.items()))

    def readable(self, coverage: float) -> float:
        """How far a model reads a text of this coverage: 0 under the floor, else the coverage."""
        return coverage if coverage >= self.coverage_floor else 0.0

    def dense_weight(self, coverage: float, language: str = "en") -> float:
        """The dense ranking's weight (z-score: its share) for a query of this coverage and language."""
        return self.readable(coverage) * dict(self.language_weights).get(language, 1.0 if self.method == RRF else 0.5)


# Indexes whose manifest has no fusion entry were built when weighted RRF was the only method.
LEGACY = FusionSettings(method=RRF, language_weights=(("en", 1.0), ("ja", 0.2)))


def fuse(
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    dense_weight: float,
    settings: FusionSettings,
) -> list[tuple[int, float]]:
    """One ranking of chunk ids from both, best first, by the settings' method.

    When one side has nothing to say (no keyword terms matched, or the dense
    weight is zero), the other side's order is returned as it is.
    """
    if settings.method == RRF:
        return fuse_rrf(dense, keyword, dense_weight, settings)
    if settings.method != ZSCORE:
        raise ValueError(f"unknown fusion method {settings.method!r}: use one of {', '.join(METHODS)}")
    if not keyword:
        return _zscored(dense, settings.candidates)
    if dense_weight <= 0 or not dense:
        return _zscored(keyword, settings.candidates)
    share = min(dense_weight, 1.0)
    zd = dict(_zscored(dense, settings.candidates))
    dense_floor = min(zd.values())
    zk, keyword_floor = _keyword_zscored(keyword, settings.candidates)
    scores = {cid: share * zd.get(cid, dense_floor) + (1 - share) * zk.get(cid, keyword_floor)
              for cid in dict.fromkeys([*zk, *zd])}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _keyword_zscored(ranked: Sequence[tuple[int, float]], head: int) -> tuple[dict[int, float], float]:
    """The keyword list as z-scores, and the z-score of a chunk it does not hold (the list's lowest).

    A list whose scores are all alike (one match: a word in one chunk alone, 東京 in the default corpus) has no
    spread of its own, and its z-scores would be 0, no better than a chunk that does not match. It is scored
    against the list filled up with what a chunk without the term scores, BM25's 0, to `head` entries: a lone
    match stands far above them, as a rare term should."""
    scores = np.array([score for _, score in ranked[:head]], dtype=np.float64)
    if scores.size > 1 and float(scores.std()) > 0:
        z = _zscored(ranked, head)
        return dict(z), min(value for _, value in z)
    padded = np.concatenate([scores, np.zeros(max(0, head - scores.size))])
    spread = float(padded.std())
    if spread == 0:
        return {cid: 0.0 for cid, _ in ranked}, 0.0
    mean = float(padded.mean())
    return {cid: (score - mean) / spread for cid, score in ranked}, -mean / spread


def _zscored(ranked: Sequence[tuple[int, float]], head: int) -> list[tuple[int, float]]:
    """The list with each score as a z-score, mean and deviation taken over its first `head` entries."""
    scores = np.array([score for _, score in ranked], dtype=np.float64)
    if scores.size == 0:
        return []
    first = scores[:head]
    spread = float(first.std())
    z = (scores - float(first.mean())) / spread if spread > 0 else np.zeros_like(scores)
    return [(cid, float(value)) for (cid, _), value in zip(ranked, z, strict=True)]


def fuse_rrf(
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    dense_weight: float,
    settings: FusionSettings,
) -> list[tuple[int, float]]:
    """Weighted RRF of two rankings of chunk ids; best first."""
    if not keyword:
        return [(cid, 1.0 / (settings.k + rank)) for rank, (cid, _) in enumerate(dense, 1)]
    if dense_weight <= 0 or not dense:
        return [(cid, settings.keyword_weight / (settings.k + rank))
                for rank, (cid, _) in enumerate(keyword, 1)]
    scores: dict[int, float] = {}
    for rank, (cid, _) in enumerate(dense, 1):
        scores[cid] = scores.get(cid, 0.0) + dense_weight / (settings.k + rank)
    for rank, (cid, _) in enumerate(keyword, 1):
        scores[cid] = scores.get(cid, 0.0) + settings.keyword_weight / (settings.k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
