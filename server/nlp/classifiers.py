"""Named classifiers: trained once from labelled examples, kept in SQLite beside the index.

They live in `INDEX/classifiers.sqlite`, outside the generations, so they survive
re-indexing. Each row holds the logistic regression as float64 arrays (no pickle),
its labels, the embedding model (name and revision) it was trained with, metrics
from a held-out split when there are enough examples, and when it was made. A
classifier is only applied with the embedding model it was trained with.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from indexer.embed.base import Embedder
from server.errors import NotFoundError
from server.nlp.encoding import embed_texts
from server.nlp.errors import ClassifierExistsError, ModelMismatchError, TaskInputError
from server.nlp.few_shot import Example, LinearModel, TrainOptions, holdout_metrics, label_counts, train_linear
from server.nlp.predictions import Prediction

STORE_FILE = "classifiers.sqlite"
TABLE = "classifiers"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@dataclass(frozen=True)
class NamedClassifier:
    name: str
    model: LinearModel
    embedding: dict[str, Any]        # name, revision and dimension of the embedding model
    label_counts: dict[str, int]     # training examples per label
    metrics: dict[str, Any] | None   # held-out accuracy and macro-F1, when every label had 5+ examples
    created: str                     # ISO 8601, UTC
    description: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.classes

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse to apply this classifier with another embedding model than it was trained with."""
        loaded = embedder.describe()
        if (loaded.get("name"), loaded.get("revision")) != (self.embedding.get("name"), self.embedding.get("revision")):
            raise ModelMismatchError(
                f"classifier {self.name!r} was trained with embedding model {self.embedding.get('name')!r} "
                f"(revision {self.embedding.get('revision')}), but the server embeds with {loaded.get('name')!r} "
                f"(revision {loaded.get('revision')}): train it again with POST /classifiers"
            )

    def classify(self, embedder: Embedder, texts: Sequence[str]) -> list[Prediction]:
        self.check_embedder(embedder)
        return self.model.predict(embed_texts(embedder, texts))


def _check_name(name: str, field: str = "classifier") -> None:
    """A 400 naming `field` for a name no classifier can have, as for any bad input, rather than a 404 for a
    missing one."""
    if not re.match(NAME_PATTERN, name):
        raise TaskInputError(field, f"{name!r} is not a valid classifier name: use 1-64 letters, digits, "
                                    "'_', '.' or '-', starting with a letter or digit")


def train_classifier(embedder: Embedder, name: str, examples: Sequence[Example], *,
                     description: str | None = None, options: TrainOptions | None = None) -> NamedClassifier:
    """Embed the examples, measure on a held-out split if possible, then fit on all of them."""
    _check_name(name, "name")
    counts = label_counts(examples)
    vectors = embed_texts(embedder, [e.text for e in examples])
    labels = [e.label for e in examples]
    described = embedder.describe()
    model = train_linear(vectors, labels, options)
    metrics = holdout_metrics(vectors, labels, options)
    return NamedClassifier(
        name=name, model=model, embedding={k: described.get(k) for k in ("name", "revision", "dimension")},
        label_counts=dict(sorted(counts.items())), metrics=None if metrics is None else {**metrics, "c": model.c},
        created=datetime.now(UTC).isoformat(timespec="seconds"), description=description,
    )


def create_classifier(store: ClassifierStore, embedder: Embedder, name: str, examples: Sequence[Example], *,
                      description: str | None = None, replace: bool = False) -> NamedClassifier:
    """Train and store a classifier; a taken name is refused before any work unless `replace`."""
    if not replace and store.exists(name):
        raise _exists(name)
    classifier = train_classifier(embedder, name, examples, description=description)
    store.save(classifier, replace=replace)
    return classifier


def _exists(name: str) -> ClassifierExistsError:
    return ClassifierExistsError(f"a classifier named {name!r} already exists: delete it first or send "
                                 "\"replace\": true")


def _row(classifier: NamedClassifier) -> dict[str, Any]:
    model = classifier.model
    return {
        "name": classifier.name, "labels": json.dumps(list(model.classes), ensure_ascii=False),
        "coef": model.coef.astype("<f8").tobytes(), "intercept": model.intercept.astype("<f8").tobytes(),
        "embedding": json.dumps(classifier.embedding), "label_counts": json.dumps(classifier.label_counts,
                                                                                  ensure_ascii=False),
        "metrics": json.dumps(classifier.metrics) if classifier.metrics is not None else None,
        "created": classifier.created, "description": classifier.description,
    }


def _from_row(row: dict[str, Any]) -> NamedClassifier:
    classes = tuple(json.loads(row["labels"]))
    intercept = np.frombuffer(row["intercept"], dtype="<f8").copy()
    coef = np.frombuffer(row["coef"], dtype="<f8").reshape(len(intercept), -1).copy()
    return NamedClassifier(
        name=row["name"], model=LinearModel(classes=classes, coef=coef, intercept=intercept),
        embedding=json.loads(row["embedding"]), label_counts=json.loads(row["label_counts"]),
        metrics=json.loads(row["metrics"]) if row["metrics"] else None, created=row["created"],
        description=row["description"],
    )


class ClassifierStore:
    """Named classifiers in one SQLite file; each call opens its own short-lived connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_index(cls, index_dir: Path) -> ClassifierStore:
        return cls(Path(index_dir) / STORE_FILE)

    def _db(self) -> sqlite_utils.Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(sqlite3.connect(self.path, timeout=30, isolation_level=None))
        db.table(TABLE).create({"name": str, "labels": str, "coef": bytes, "intercept": bytes, "embedding": str,
                          "label_counts": str, "metrics": str, "created": str, "description": str},
                         pk="name", if_not_exists=True)
        return db

    def _rows(self, where: str | None = None, args: Sequence[str] = ()) -> list[dict[str, Any]]:
        if not self.path.exists():  # nothing saved yet: don't create files on a read
            return []
        db = sqlite_utils.Database(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30))
        try:
            if not db.table(TABLE).exists():
                return []
            return list(db.table(TABLE).rows_where(where, list(args), order_by="name"))
        finally:
            db.close()

    def save(self, classifier: NamedClassifier, *, replace: bool = False) -> None:
        """Store a classifier; an existing name is refused unless `replace`."""
        db = self._db()
        try:
            db.table(TABLE).insert(_row(classifier), replace=replace)
        except sqlite3.IntegrityError as exc:
            raise _exists(classifier.name) from exc
        finally:
            db.close()

    def exists(self, name: str) -> bool:
        return bool(self._rows("name = ?", [name]))

    def get(self, name: str) -> NamedClassifier:
        _check_name(name)
        rows = self._rows("name = ?", [name])
        if not rows:
            raise NotFoundError(f"no classifier named {name!r} (GET /classifiers lists them)")
        return _from_row(rows[0])

    def entries(self) -> list[NamedClassifier]:
        return [_from_row(row) for row in self._rows()]

    def delete(self, name: str) -> None:
        _check_name(name)
        deleted = 0
        if self.path.exists():
            db = self._db()
            try:
                deleted = db.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name]).rowcount
            finally:
                db.close()
        if not deleted:
            raise NotFoundError(f"no classifier named {name!r}")
