"""Entity models: spaCy pipelines (GiNZA, or one fine-tuned from it) and transformers token classifiers.

`load_entity_model(name)` takes an installed spaCy package (`ja_ginza`), a
folder saved by spaCy (`config.cfg` beside its components), or anything
transformers can load as a token-classification model (a folder or a hub id).
Only the tokenizer, tok2vec and NER components of a spaCy pipeline are loaded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.embed.locations import ModelLocation, locate_model, package_dir, reach_hub
from indexer.errors import UnavailableError
from indexer.ner.entities import Analysis

DEFAULT_JA_MODEL = "ja_ginza"
# Components of a full pipeline that NER does not need (GiNZA's parser and its helpers, and the like).
UNNEEDED_PIPES = ("parser", "morphologizer", "compound_splitter", "bunsetu_recognizer", "tagger", "lemmatizer",
                  "attribute_ruler", "senter", "textcat", "entity_linker")


class EntityModelLoadError(UnavailableError):
    """An entity model that cannot be loaded; the message names it."""


@dataclass
class SpacyEntityModel:
    name: str
    location: ModelLocation
    nlp: Any                                # spacy.Language with an "ner" component
    only: tuple[str, ...] | None = None     # report only these types (a model fine-tuned to a new scheme)
    batch_size: int = 32
    # one text at a time: GiNZA's Sudachi tokenizer is not thread-safe ("Already borrowed" under concurrent calls)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.only or tuple(self.nlp.get_pipe("ner").labels)

    def analyse(self, texts: Sequence[str]) -> list[Analysis]:
        keep = set(self.only) if self.only else None
        analyses = []
        with self._lock:
            for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
                tokens = [(t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]
                entities = [(e.start_char, e.end_char, e.label_) for e in doc.ents if keep is None or e.label_ in keep]
                analyses.append(Analysis(tokens, entities))
        return analyses


@dataclass
class TransformersEntityModel:
    name: str
    location: ModelLocation
    pipeline: Any                           # transformers TokenClassificationPipeline, aggregation "simple"

    @property
    def model(self) -> Any:
        return self.pipeline.model

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer

    @property
    def labels(self) -> tuple[str, ...]:
        id2label = self.model.config.id2label
        names = [str(id2label[i]) for i in sorted(id2label, key=int)]
        return tuple(dict.fromkeys(n.split("-", 1)[-1] for n in names if n != "O"))

    def analyse(self, texts: Sequence[str]) -> list[Analysis]:
        if not texts:
            return []
        found = self.pipeline(list(texts))
        if texts and isinstance(found[0], dict):  # a single text comes back unwrapped
            found = [found]
        analyses = []
        for text, groups in zip(texts, found, strict=True):
            offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            tokens = [(int(s), int(e)) for s, e in offsets if e > s]
            entities = [(int(g["start"]), int(g["end"]), str(g["entity_group"])) for g in groups
                        if g["end"] > g["start"]]
            analyses.append(Analysis(tokens, entities))
        return analyses


def is_spacy_model(name: str) -> bool:
    import spacy.util

    path = Path(name).expanduser()
    return (path / "config.cfg").is_file() or (not path.exists() and spacy.util.is_package(name))


def spacy_location(name: str) -> ModelLocation:
    path = Path(name).expanduser()
    if path.exists():
        return ModelLocation(name=str(path.resolve()), kind="path", path=path.resolve())
    return ModelLocation(name=name, kind="bundled", path=package_dir(name), package=name.replace("_", "-"))


def entity_location(name: str) -> ModelLocation:
    """Where an entity model is, without loading it."""
    return spacy_location(name) if is_spacy_model(name) else locate_model(name)


def load_spacy_model(name: str, *, only: Sequence[str] | None = None) -> SpacyEntityModel:
    import spacy

    location = spacy_location(name)
    try:
        nlp = spacy.load(location.reference if location.kind == "path" else name, exclude=list(UNNEEDED_PIPES))
    except Exception as exc:
        raise EntityModelLoadError(f"cannot load spaCy pipeline {name!r}: {exc}") from exc
    if "ner" not in nlp.pipe_names:
        raise EntityModelLoadError(f"spaCy pipeline {name!r} has no 'ner' component (it has "
                                   f"{', '.join(nlp.pipe_names) or 'none'})")
    return SpacyEntityModel(name=name, location=location, nlp=nlp, only=tuple(only) if only else None)


_IOB2 = re.compile(r"O|[BI]-.+")


def load_transformers_model(name: str) -> TransformersEntityModel:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    location = locate_model(name)
    try:
        location = reach_hub(location)
        tokenizer = AutoTokenizer.from_pretrained(location.reference)
        model = AutoModelForTokenClassification.from_pretrained(location.reference)
    except Exception as exc:
        raise EntityModelLoadError(f"cannot load token-classification model {name!r}: {exc}") from exc
    trained_as = [a for a in getattr(model.config, "architectures", None) or [] if "TokenClassification" not in a]
    if trained_as:  # transformers would put an untrained tagging head on it
        raise EntityModelLoadError(f"{name!r} is a {trained_as[0]}, not a token-classification model: give an "
                                   "entity model (IOB2 labels in its config)")
    other = [str(label) for label in model.config.id2label.values() if not _IOB2.fullmatch(str(label))]
    if other:
        raise EntityModelLoadError(f"{name!r} has labels that are not IOB2 ({', '.join(other[:5])}): an entity "
                                   "model tags tokens O, B-TYPE or I-TYPE")
    model.eval()
    options: dict[str, Any] = {"aggregation_strategy": "simple"}
    if getattr(tokenizer, "is_fast", False):  # long texts in overlapping windows instead of an error
        options["stride"] = 32
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu", **options)
    return TransformersEntityModel(name=name, location=location, pipeline=tagger)


def load_entity_model(name: str) -> SpacyEntityModel | TransformersEntityModel:
    """A spaCy pipeline (package or saved folder) or a transformers token classifier (folder or hub id)."""
    if is_spacy_model(name):
        return load_spacy_model(name)
    return load_transformers_model(name)
