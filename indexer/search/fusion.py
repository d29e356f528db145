"""Fusing dense and keyword rankings, weighted by how far each can be trusted.

Plain reciprocal rank fusion gives both retrievers equal say. That fails when
one of them is blind: all-MiniLM-L6-v2 sees Japanese as isolated characters,
so on Japanese passage retrieval its ranking is mostly noise and equal fusion
drags a strong keyword ranking down. Here the dense ranking's weight is the
embedding model's *coverage* of the query (the share of its characters the
model's vocabulary carries as whole words, see `Embedder.coverage`): near 1 for
English under MiniLM or for any language under a multilingual model, near 0
for Japanese under MiniLM. Below a floor the dense ranking is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from indexer.store.manifest import FusionEntry

# Fixed text per language on which a model's coverage is measured (ordinary prose, no rare characters).
COVERAGE_SAMPLES = {
    "en": ("Keyword search and vector search fail in different ways.",
           "The model was fine-tuned on questions and answers from the documentation."),
    "ja": ("キーワード検索とベクトル検索は、それぞれ異なる場面で失敗する。",
           "東京の天気は午後から雨になり、気温は昨日より五度低い見込みです。"),
}


@dataclass(frozen=True)
class FusionSettings:
    method: str = "coverage-weighted-rrf"
    k: int = 60                  # the RRF constant
    keyword_weight: float = 1.0
    coverage_floor: float = 0.5  # dense weight is 0 below this coverage, the coverage above it
    candidates: int = 100        # how deep each retriever's list goes before fusion
    # How far a dense ranking is trusted per query language, before coverage. Japanese keyword
    # search with Sudachi words + bigrams is strong (JSQuAD recall@1 0.90) and even a multilingual
    # embedding model trails it (USE v3: 0.63), so a Japanese query's dense ranking only breaks ties.
    language_weights: tuple[tuple[str, float], ...] = (("en", 1.0), ("ja", 0.2))
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
        if entry is None:
            return cls()
        recorded: dict[str, Any] = {name: value for name in cls.__dataclass_fields__
                                    if (value := getattr(entry, name)) is not None}
        for name in ("language_weights", "model_coverage"):
            if name in recorded:
                recorded[name] = tuple(recorded[name].items())
        return cls(**recorded)

    @classmethod
    def for_model(cls, coverage: Callable[[str], float]) -> FusionSettings:
        """The settings for an embedding model, from how much of each language its vocabulary reads.

        `coverage` is the model's `Embedder.coverage`, measured on a fixed sample per
        language (`COVERAGE_SAMPLES`) and recorded with the weights. A language the
        model cannot read (coverage under `coverage_floor`: MiniLM in Japanese, 0)
        is left out query by query by that floor; one it reads keeps the language's
        trust, which reflects how strong keyword search is there (Japanese: Sudachi
        words and bigrams, JSQuAD recall@1 0.91), not how well the model reads it.
        Giving a model that reads Japanese fully (multilingual-e5-small, coverage
        1.0) English's trust instead was measured and is worse: JSQuAD hybrid
        recall@1 0.886 against keyword's 0.912 (README, "Hybrid search").
        """
        measured = {lang: min(coverage(text) for text in texts) for lang, texts in COVERAGE_SAMPLES.items()}
        return replace(cls(), model_coverage=tuple((lang, round(value, 3)) for lang, value in measured.items()))

    def dense_weight(self, coverage: float, language: str = "en") -> float:
        if coverage < self.coverage_floor:
            return 0.0
        return coverage * dict(self.language_weights).get(language, 1.0)


def fuse(
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    dense_weight: float,
    settings: FusionSettings,
) -> list[tuple[int, float]]:
    """Weighted RRF of two rankings of chunk ids; best first.

    When one side has nothing to say (no keyword terms matched, or the dense
    weight is zero), the other side's order is returned as it is.
    """
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
