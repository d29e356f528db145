"""`POST /classify` (zero-shot, few-shot, named or fine-tuned) and the named classifiers.

`POST /classifiers` and `DELETE /classifiers/{name}` change stored state and are
admin operations (server/auth.py); the rest only read.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from server.nlp.classifiers import NAME_PATTERN, NamedClassifier, create_classifier
from server.nlp.few_shot import Example
from server.nlp.ladder import Backends, Classification, ClassifyJob, classify
from server.nlp.predictions import Prediction
from server.nlp.zero_shot import DEFAULT_TEMPERATURE, LabelSpec, ZeroShotOptions
from server.services import Services

MAX_TEXTS = 256
MAX_INLINE_EXAMPLES = 2000
MAX_TRAINING_EXAMPLES = 20_000
Text = Annotated[str, Meta(min_length=1, max_length=10_000)]
LabelName = Annotated[str, Meta(min_length=1, max_length=200)]
Template = Annotated[str, Meta(min_length=2, max_length=1000, description="Text with one {} for the label.")]
ClassifierName = Annotated[str, Meta(pattern=NAME_PATTERN, description="1-64 letters, digits, '_', '.', '-'.")]


class LabelIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: LabelName
    description: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    template: Template | None = None


class ExampleIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: Text
    label: LabelName


class ClassifyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    texts: Annotated[list[Text], Meta(min_length=1, max_length=MAX_TEXTS)]
    labels: Annotated[list[LabelName | LabelIn], Meta(min_length=1, max_length=200)] | None = None
    template: Template | None = None
    examples: Annotated[list[ExampleIn], Meta(min_length=2, max_length=MAX_INLINE_EXAMPLES)] | None = None
    classifier: ClassifierName | None = None
    method: Literal["auto", "zero-shot", "few-shot", "classifier", "fine-tuned"] = "auto"
    multi_label: bool = False
    temperature: Annotated[float, Meta(ge=0.001, le=10)] = DEFAULT_TEMPERATURE
    threshold: Annotated[float, Meta(ge=-1, le=1)] | None = None  # multi-label; None: per label, from the model
    top_k: Annotated[int, Meta(ge=1, le=200)] | None = None

    def to_job(self) -> ClassifyJob:
        labels = None if self.labels is None else [
            LabelSpec(x) if isinstance(x, str) else LabelSpec(x.name, x.description, x.template) for x in self.labels]
        examples = None if self.examples is None else [Example(e.text, e.label) for e in self.examples]
        options = ZeroShotOptions(template=self.template, multi_label=self.multi_label,
                                  temperature=self.temperature, threshold=self.threshold)
        return ClassifyJob(texts=self.texts, labels=labels, examples=examples, classifier=self.classifier,
                           method=self.method, zero_shot=options)


class LabelScoreOut(msgspec.Struct, frozen=True, omit_defaults=True):
    label: str
    score: float
    cosine: float | None = None
    threshold: float | None = None   # zero-shot multi-label: the cosine at which the score is 0.5


class ResultOut(msgspec.Struct, frozen=True):
    label: str                 # the best label
    predicted: list[str]       # multi-label: every label scoring 0.5 or more; otherwise [label]
    scores: list[LabelScoreOut]

    @classmethod
    def of(cls, prediction: Prediction, top_k: int | None) -> ResultOut:
        scores = [LabelScoreOut(s.label, round(s.score, 6), None if s.cosine is None else round(s.cosine, 6),
                                None if s.threshold is None else round(s.threshold, 6))
                  for s in prediction.scores[:top_k]]
        return cls(label=prediction.label, predicted=list(prediction.predicted), scores=scores)


class ClassifyResponse(msgspec.Struct, frozen=True):
    method: str
    model: str
    classifier: str | None
    multi_label: bool
    took_ms: float
    results: list[ResultOut]


class ClassifierRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: ClassifierName
    examples: Annotated[list[ExampleIn], Meta(min_length=2, max_length=MAX_TRAINING_EXAMPLES)]
    description: Annotated[str, Meta(max_length=1000)] | None = None
    replace: bool = False


class ClassifierOut(msgspec.Struct, frozen=True):
    name: str
    labels: list[str]
    examples: int
    label_counts: dict[str, int]
    metrics: dict[str, Any] | None
    embedding_model: str
    embedding_revision: str | None
    created: str
    description: str | None

    @classmethod
    def of(cls, c: NamedClassifier) -> ClassifierOut:
        return cls(name=c.name, labels=list(c.labels), examples=sum(c.label_counts.values()),
                   label_counts=c.label_counts, metrics=c.metrics, embedding_model=str(c.embedding.get("name")),
                   embedding_revision=c.embedding.get("revision"), created=c.created, description=c.description)


class ClassifierList(msgspec.Struct, frozen=True):
    classifiers: list[ClassifierOut]


def _backends(services: Services) -> Backends:
    finetuned = partial(services.models.get, "classifier") if services.models.has("classifier") else None
    return Backends(embedder=lambda: services.embedder, store=services.classifiers, finetuned=finetuned,
                    cache=services.few_shot)


@post("/classify", status_code=200, summary="Classify texts: zero-shot labels, few-shot examples, a named "
                                            "classifier or the fine-tuned model")
async def classify_texts(data: JSONBody[ClassifyRequest], services: NamedDependency[Services]) -> ClassifyResponse:
    started = time.perf_counter()
    job = data.to_job()
    result: Classification = await anyio.to_thread.run_sync(classify, job, _backends(services))
    return ClassifyResponse(method=result.method, model=result.model, classifier=result.classifier,
                            multi_label=result.multi_label, took_ms=round((time.perf_counter() - started) * 1000, 3),
                            results=[ResultOut.of(p, data.top_k) for p in result.predictions])


@post("/classifiers", status_code=201, summary="Train and store a named classifier (admin)")
async def post_classifier(data: JSONBody[ClassifierRequest], services: NamedDependency[Services]) -> ClassifierOut:
    examples = [Example(e.text, e.label) for e in data.examples]

    trained = await anyio.to_thread.run_sync(partial(
        create_classifier, services.classifiers, services.embedder, data.name, examples,
        description=data.description, replace=data.replace))
    return ClassifierOut.of(trained)


@get("/classifiers", summary="The named classifiers")
async def list_classifiers(services: NamedDependency[Services]) -> ClassifierList:
    found = await anyio.to_thread.run_sync(services.classifiers.entries)
    return ClassifierList(classifiers=[ClassifierOut.of(c) for c in found])


@get("/classifiers/{name:str}", summary="One named classifier: labels, model, metrics")
async def get_classifier(name: FromPath[str], services: NamedDependency[Services]) -> ClassifierOut:
    return ClassifierOut.of(await anyio.to_thread.run_sync(services.classifiers.get, name))


@delete("/classifiers/{name:str}", status_code=204, summary="Delete a named classifier (admin)")
async def delete_classifier(name: FromPath[str], services: NamedDependency[Services]) -> None:
    await anyio.to_thread.run_sync(services.classifiers.delete, name)


router = Router(path="/", route_handlers=[classify_texts, post_classifier, list_classifiers, get_classifier,
                                          delete_classifier])
