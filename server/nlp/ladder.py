"""The classification ladder: zero-shot first, then few-shot, then named or fine-tuned models.

One entry point for the HTTP route and the command line: a `ClassifyJob` says
what the caller gave (labels, examples, a classifier name, or nothing when a
fine-tuned model is configured) and `classify` picks the method and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from indexer.embed.base import Embedder
from server.nlp.classifiers import ClassifierStore
from server.nlp.errors import TaskInputError
from server.nlp.few_shot import Example, FewShotCache, few_shot, label_counts
from server.nlp.finetuned import FineTunedClassifier
from server.nlp.predictions import Prediction
from server.nlp.zero_shot import LabelSpec, ZeroShotOptions, validate_labels, zero_shot

Method = Literal["auto", "zero-shot", "few-shot", "classifier", "fine-tuned"]


@dataclass(frozen=True)
class ClassifyJob:
    texts: Sequence[str]
    labels: Sequence[LabelSpec] | None = None       # zero-shot
    examples: Sequence[Example] | None = None       # few-shot
    classifier: str | None = None                   # a named classifier
    method: Method = "auto"
    zero_shot: ZeroShotOptions = field(default_factory=ZeroShotOptions)

    @property
    def multi_label(self) -> bool:
        return self.zero_shot.multi_label


@dataclass(frozen=True)
class Classification:
    method: str
    model: str                     # the model that produced the scores
    classifier: str | None
    multi_label: bool
    predictions: list[Prediction]


@dataclass
class Backends:
    """What the ladder may use. `embedder` and `finetuned` return the model, loading it on first call
    if need be (the command line loads only what the chosen method needs); `finetuned` is None when
    no fine-tuned model is configured."""

    embedder: Callable[[], Embedder]
    store: ClassifierStore
    finetuned: Callable[[], FineTunedClassifier] | None = None
    cache: FewShotCache | None = None


_FIELDS = {"zero-shot": "labels", "few-shot": "examples", "classifier": "classifier"}
_NOTHING_GIVEN = ("give labels (zero-shot), examples (few-shot) or classifier (a named classifier); "
                  "no fine-tuned model is configured (start the server with --classifier-model)")


def _given(job: ClassifyJob) -> list[str]:
    present = {"zero-shot": job.labels is not None, "few-shot": job.examples is not None,
               "classifier": job.classifier is not None}
    given = [method for method, there in present.items() if there]
    if len(given) > 1:
        raise TaskInputError(_FIELDS[given[1]], "give only one of labels (zero-shot), examples (few-shot) "
                                                "or classifier (a named classifier)")
    return given


def choose_method(job: ClassifyJob, *, finetuned_configured: bool) -> str:
    """The method the request asks for, or the one its fields imply."""
    given = _given(job)
    method: str = job.method
    if method == "auto":
        if not given and not finetuned_configured:
            raise TaskInputError("labels", _NOTHING_GIVEN)
        method = given[0] if given else "fine-tuned"
    elif method == "fine-tuned":
        if given:
            raise TaskInputError(_FIELDS[given[0]], "a fine-tuned model brings its own labels; leave this out")
        if not finetuned_configured:
            raise TaskInputError("method", "no fine-tuned classifier is configured (start the server with "
                                           "--classifier-model)")
    elif given != [method]:
        raise TaskInputError("method", f"{method} classification needs {_FIELDS[method]}")
    if job.multi_label and method in ("few-shot", "classifier"):
        raise TaskInputError("multi_label", f"{method} classifiers choose one label per text; multi_label "
                                            "works with zero-shot labels and fine-tuned models")
    return method


def classify(job: ClassifyJob, backends: Backends) -> Classification:
    method = choose_method(job, finetuned_configured=backends.finetuned is not None)
    if method == "fine-tuned":
        assert backends.finetuned is not None
        model = backends.finetuned()
        predictions = model.classify(job.texts, multi_label=job.multi_label or None)
        return Classification(method, model.location.name, None, job.multi_label or model.multi_label,
                              predictions)
    # what the job itself gets wrong is reported before the model is loaded (seconds, on the command line)
    if method == "zero-shot":
        validate_labels(job.labels or (), job.zero_shot)
    elif method == "few-shot":
        label_counts(job.examples or ())
    else:
        named = backends.store.get(str(job.classifier))
    embedder = backends.embedder()
    if method == "zero-shot":
        predictions = zero_shot(embedder, job.texts, job.labels or (), job.zero_shot)
    elif method == "few-shot":
        predictions = few_shot(embedder, job.texts, job.examples or (), backends.cache)
    else:
        predictions = named.classify(embedder, job.texts)
    return Classification(method, str(embedder.describe()["name"]), job.classifier, job.multi_label, predictions)
