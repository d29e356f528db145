"""Zero-shot classification: each label becomes a prompt, scored by embedding similarity.

A label's prompt is its description (or its name) put into a template such as
「この文章は{}についてです」 or "This review is {}.". The text and every prompt are
embedded with the served model; cosine similarities become probabilities by a
softmax with a temperature (one label per text), or, with `multi_label`, each on
its own by a sigmoid centred on a threshold cosine: the caller's, or by default
the label's own, read off the served model (`server.nlp.label_baseline`), since
a fixed cosine means "related" for one model and "unrelated" for another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import Embedder
from server.nlp.encoding import embed_texts
from server.nlp.errors import TaskInputError
from server.nlp.label_baseline import label_thresholds
from server.nlp.predictions import Prediction, label_identity, rank, sigmoid, softmax

PLACEHOLDER = "{}"
DEFAULT_TEMPERATURE = 0.05  # cosine differences of ~0.05 are meaningful for sentence embeddings


@dataclass(frozen=True)
class LabelSpec:
    name: str
    description: str | None = None  # what the label means, embedded instead of the bare name
    template: str | None = None     # overrides the request's template for this label


@dataclass(frozen=True)
class ZeroShotOptions:
    template: str | None = None
    multi_label: bool = False
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float | None = None  # multi-label: the cosine scoring 0.5; None: each label's, from the model


def _check_template(template: str | None, field: str) -> None:
    if template is not None and template.count(PLACEHOLDER) != 1:
        raise TaskInputError(field, f"a template needs exactly one {PLACEHOLDER} where the label goes, "
                                    f"got {template!r}")


def validate_labels(labels: Sequence[LabelSpec], options: ZeroShotOptions) -> None:
    """At least two distinct labels (one is enough with multi_label), templates with one {}."""
    if not labels:
        raise TaskInputError("labels", "give at least 2 labels")
    if len(labels) < 2 and not options.multi_label:
        raise TaskInputError("labels", "give at least 2 labels to choose between, or set multi_label "
                                       "for an independent yes/no score per label")
    if not 0.001 <= options.temperature <= 10:
        raise TaskInputError("temperature", f"use a temperature from 0.001 to 10, not {options.temperature}")
    seen: dict[str, str] = {}
    for i, label in enumerate(labels):
        identity = label_identity(label.name, f"labels[{i}]")
        if identity in seen:
            same = "" if seen[identity] == label.name else f" (as {seen[identity]!r})"
            raise TaskInputError(f"labels[{i}]", f"label {label.name!r} is given twice{same}")
        seen[identity] = label.name
        _check_template(label.template, f"labels[{i}].template")
    _check_template(options.template, "template")


def label_prompt(label: LabelSpec, template: str | None) -> str:
    """The text embedded for a label: its description or name, inside its template."""
    chosen = label.template or template or PLACEHOLDER
    return chosen.replace(PLACEHOLDER, label.description or label.name)


def zero_shot(embedder: Embedder, texts: Sequence[str], labels: Sequence[LabelSpec],
              options: ZeroShotOptions | None = None) -> list[Prediction]:
    """Score every label for every text; best label first."""
    options = options or ZeroShotOptions()
    validate_labels(labels, options)
    prompts = [label_prompt(label, options.template) for label in labels]
    vectors = embed_texts(embedder, [*prompts, *texts])
    cosines = vectors[len(prompts):] @ vectors[: len(prompts)].T  # (texts, labels)
    thresholds = None
    if options.multi_label:
        thresholds = (np.full(len(prompts), options.threshold, dtype=np.float32) if options.threshold is not None
                      else label_thresholds(embedder, prompts, vectors[: len(prompts)]))
        scores = sigmoid((cosines - thresholds) / options.temperature)
    else:
        scores = softmax(cosines / options.temperature)
    names = [label.name for label in labels]
    return [rank(names, np.asarray(s), cosines=c, multi_label=options.multi_label, thresholds=thresholds)
            for s, c in zip(scores, cosines, strict=True)]
