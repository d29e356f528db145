"""Few-shot classification: logistic regression on the embeddings of labelled examples.

The trained model is kept as plain arrays (classes, coefficients, intercepts),
so it can be stored without pickle and applied with numpy alone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import Embedder
from server.nlp.encoding import embed_texts
from server.nlp.errors import TaskInputError
from server.nlp.predictions import Prediction, label_identity, rank, sigmoid, softmax

MIN_PER_LABEL_FOR_METRICS = 5   # a held-out split needs at least this many examples of every label
HOLDOUT_SHARE = 0.2
C_GRID = (0.1, 1.0, 10.0, 100.0)  # regularization strengths tried by cross-validation
CV_FOLDS = 3
DEFAULT_C = 10.0  # with fewer than 3 examples of a label: unit-length embeddings need weak regularization


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class TrainOptions:
    c: float | None = None  # inverse regularization strength (scikit-learn's C); None: cross-validated
    max_iter: int = 1000
    seed: int = 42


@dataclass(frozen=True)
class LinearModel:
    """A fitted logistic regression: one row of coefficients for two classes, one per class above."""

    classes: tuple[str, ...]
    coef: np.ndarray       # (1, dim) for two classes, (classes, dim) otherwise
    intercept: np.ndarray  # (1,) or (classes,)
    c: float | None = None  # the regularization it was trained with, when known

    @property
    def dimension(self) -> int:
        return int(self.coef.shape[1])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(texts, classes) probabilities, as scikit-learn's predict_proba gives them."""
        logits = vectors.astype(np.float64) @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            positive = sigmoid(logits[:, 0])
            return np.stack([1.0 - positive, positive], axis=1)
        return softmax(logits)

    def predict(self, vectors: np.ndarray) -> list[Prediction]:
        return [rank(self.classes, p) for p in self.probabilities(vectors)]


def label_counts(examples: Sequence[Example], field: str = "examples") -> Counter[str]:
    """Examples per label; at least two different labels are needed to train."""
    counts = Counter(example.label for example in examples)
    seen: dict[str, str] = {}
    for i, example in enumerate(examples):
        identity = label_identity(example.label, f"{field}[{i}].label")
        if seen.setdefault(identity, example.label) != example.label:
            raise TaskInputError(f"{field}[{i}].label", f"label {example.label!r} is {seen[identity]!r} written "
                                                        "another way: use one spelling for each label")
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "none"
        raise TaskInputError(field, f"examples must cover at least 2 different labels ({found} given)")
    return counts


def _fit(vectors: np.ndarray, labels: Sequence[str], c: float, options: TrainOptions) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=options.max_iter, random_state=options.seed)
    model.fit(vectors, list(labels))
    return LinearModel(classes=tuple(str(c) for c in model.classes_), coef=np.asarray(model.coef_, np.float64),
                       intercept=np.asarray(model.intercept_, np.float64), c=c)


def choose_c(vectors: np.ndarray, labels: Sequence[str], options: TrainOptions) -> float:
    """The C of C_GRID with the lowest 3-fold cross-validated log loss (DEFAULT_C for tiny sets)."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    if min(Counter(labels).values()) < CV_FOLDS:
        return DEFAULT_C
    gold = np.asarray(labels)
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=options.seed).split(vectors, gold))
    losses = []
    for c in C_GRID:
        loss = 0.0
        for train, test in folds:
            model = _fit(vectors[train], gold[train], c, options)
            loss += log_loss(gold[test], model.probabilities(vectors[test]), labels=list(model.classes))
        losses.append(loss)
    return C_GRID[int(np.argmin(losses))]


def train_linear(vectors: np.ndarray, labels: Sequence[str], options: TrainOptions | None = None) -> LinearModel:
    """Fit a logistic regression (lbfgs, L2) on embeddings; C cross-validated unless given."""
    options = options or TrainOptions()
    c = options.c if options.c is not None else choose_c(vectors, labels, options)
    return _fit(vectors, labels, c, options)


def holdout_metrics(vectors: np.ndarray, labels: Sequence[str],
                    options: TrainOptions | None = None) -> dict[str, float | int] | None:
    """Accuracy and macro-F1 on a stratified 20% split, or None when a label has under 5 examples.

    An example given more than once counts once, so that no copy of a training example is held out to
    be "predicted" (five copies of two examples would measure 1.0).
    """
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    rows = sorted({(vectors[i].tobytes(), label): i for i, label in enumerate(labels)}.values())
    vectors, labels = vectors[rows], [labels[i] for i in rows]
    if min(Counter(labels).values()) < MIN_PER_LABEL_FOR_METRICS:
        return None
    seed = (options or TrainOptions()).seed
    train_x, test_x, train_y, test_y = train_test_split(
        vectors, list(labels), test_size=HOLDOUT_SHARE, stratify=list(labels), random_state=seed)
    predicted = [p.label for p in train_linear(train_x, train_y, options).predict(test_x)]
    return {"accuracy": round(float(accuracy_score(test_y, predicted)), 4),
            "macro_f1": round(float(f1_score(test_y, predicted, average="macro")), 4),
            "train_examples": len(train_y), "test_examples": len(test_y)}


class FewShotCache:
    """The last few models trained from inline examples, so a client resending them pays once."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._models: OrderedDict[str, LinearModel] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(model_revision: str, examples: Sequence[Example], options: TrainOptions) -> str:
        payload = json.dumps([model_revision, [(e.text, e.label) for e in examples], options.__dict__])
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, key: str) -> LinearModel | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def put(self, key: str, model: LinearModel) -> None:
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)


def few_shot(embedder: Embedder, texts: Sequence[str], examples: Sequence[Example],
             cache: FewShotCache | None = None, options: TrainOptions | None = None) -> list[Prediction]:
    """Train on `examples` (or reuse the cached model) and classify `texts`."""
    options = options or TrainOptions()
    label_counts(examples)
    key = FewShotCache.key(str(embedder.describe().get("revision")), examples, options)
    model = cache.get(key) if cache is not None else None
    if model is None:
        vectors = embed_texts(embedder, [*(e.text for e in examples), *texts])
        model = train_linear(vectors[: len(examples)], [e.label for e in examples], options)
        if cache is not None:
            cache.put(key, model)
        text_vectors = vectors[len(examples):]
    else:
        text_vectors = embed_texts(embedder, texts)
    return model.predict(text_vectors)
