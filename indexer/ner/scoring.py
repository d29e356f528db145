"""Entity-level precision, recall and F1: a predicted entity counts only with the exact span and type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

Labelled = tuple[int, int, str]


@dataclass(frozen=True)
class SpanScores:
    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int
    per_type: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, object]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "gold": self.gold, "predicted": self.predicted, "correct": self.correct,
                "per_type": self.per_type}


def _prf(correct: int, gold: int, predicted: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_spans(gold: Sequence[Sequence[Labelled]], predicted: Sequence[Sequence[Labelled]]) -> SpanScores:
    """Micro-averaged scores over texts (as seqeval's entity-level scores), with each type's beside them."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # gold, predicted, correct
    for truth, guess in zip(gold, predicted, strict=True):
        truth_set, guess_set = set(truth), set(guess)
        for _, _, label in truth_set:
            counts[label][0] += 1
        for _, _, label in guess_set:
            counts[label][1] += 1
        for _, _, label in truth_set & guess_set:
            counts[label][2] += 1
    per_type = {}
    for label, (g, p, c) in sorted(counts.items()):
        precision, recall, f1 = _prf(c, g, p)
        per_type[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                           "support": g}
    g, p, c = (sum(v[i] for v in counts.values()) for i in range(3))
    return SpanScores(*_prf(c, g, p), gold=g, predicted=p, correct=c, per_type=per_type)
