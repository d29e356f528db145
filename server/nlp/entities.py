"""Named entities for the server and the command line: which model answers, and the named-model ladder.

Pre-trained models are configured per language (`--ner-model en=PATH_OR_ID`) and
loaded lazily under the roles `ner.LANG`; Japanese has GiNZA unless told
otherwise. A request may name a model fine-tuned beside the index instead
(`POST /entity-models`). Texts are grouped by language (given, or detected per
text) and each group goes to its language's model.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from indexer.ner.entities import EntityModel, Extraction, extract
from indexer.ner.mapping import TypeMapping, load_mapping, mapping_from_table
from indexer.ner.named import EntityModelExistsError, EntityModelNotFoundError, EntityModelStore
from indexer.ner.pipelines import DEFAULT_JA_MODEL, EntityModelLoadError, load_entity_model
from indexer.text.language import detect_language
from indexer.text.normalize import normalize_query
from server.errors import ConflictError, NotFoundError, UnavailableError
from server.model_registry import ModelRegistry
from server.nlp.errors import TaskInputError

ROLE_PREFIX = "ner."
MAX_NORMALIZED_CHARS = 12_000  # NFKC can lengthen a text many times (ﷺ → 18 characters); Sudachi takes ≤ 49,149 bytes


def parse_ner_models(values: Sequence[str]) -> dict[str, str]:
    """`LANG=PATH_OR_ID` (or a bare PATH_OR_ID, meaning English) as given to --ner-model."""
    models = {}
    for value in values:
        language, sep, name = value.partition("=")
        if not sep:
            language, name = "en", value
        if not language.strip() or not name.strip():
            raise ValueError(f"--ner-model {value!r}: expected LANG=PATH_OR_ID, e.g. en=dslim/bert-base-NER")
        models[language.strip()] = name.strip()
    return models


def configured_models(ner_models: Mapping[str, str]) -> dict[str, str]:
    """Language → model: GiNZA for Japanese unless another is given, then the configured ones."""
    return {"ja": DEFAULT_JA_MODEL, **ner_models}


def register_entity_models(registry: ModelRegistry, ner_models: Mapping[str, str]) -> None:
    """Register each language's model under the role `ner.LANG`; nothing loads yet."""
    for language, name in configured_models(ner_models).items():
        registry.register(f"{ROLE_PREFIX}{language}", name, partial(load_entity_model, name))


@dataclass(frozen=True)
class EntityJob:
    texts: Sequence[str]
    iob2: bool = False
    model: str | None = None                      # a named model fine-tuned beside the index
    language: str | None = None                   # None: detected per text
    mapping: TypeMapping | None = None            # report types in the caller's scheme too


@dataclass(frozen=True)
class EntityResult:
    models: list[str]                 # the model of each text, in order
    mapping: str | None
    extractions: list[Extraction]


@contextmanager
def named_model_errors() -> Iterator[None]:
    """The named-model store's errors as the server's (404, 409)."""
    try:
        yield
    except EntityModelNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    except EntityModelExistsError as exc:
        raise ConflictError(str(exc)) from exc


def resolve_mapping(spec: str | Mapping[str, str] | None, *, files: bool) -> TypeMapping | None:
    """A bundled mapping's name, an inline table or (with `files`: the command line) a JSON file."""
    if spec is None:
        return None
    return load_mapping(spec, files=files) if isinstance(spec, str) else mapping_from_table("inline", dict(spec))


def _no_model(language: str) -> UnavailableError:
    return UnavailableError(f"no entity model is configured for language {language!r}: start the server with "
                            f"--ner-model {language}=PATH_OR_ID (a transformers token-classification model or a "
                            f"spaCy pipeline), or name a fine-tuned model with \"model\"")


def _check_texts(texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        normalized = normalize_query(text)
        if all(c.isspace() or unicodedata.category(c)[0] in "CM" for c in normalized):
            raise TaskInputError(f"texts[{i}]", "has nothing to read: it is empty, or only whitespace, control, "
                                                "zero-width or combining characters")
        if (length := len(normalized)) > MAX_NORMALIZED_CHARS:
            raise TaskInputError(f"texts[{i}]", f"is {length:,} characters once NFKC-normalized; the limit is "
                                                f"{MAX_NORMALIZED_CHARS:,}")


def run_entities(job: EntityJob, model_for: Callable[[str], EntityModel],
                 named: Callable[[str], EntityModel]) -> EntityResult:
    """Extract entities from each text with its language's model (or the named one)."""
    _check_texts(job.texts)
    mapping = job.mapping
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(job.texts):
        key = f"model:{job.model}" if job.model else job.language or detect_language(text)
        groups.setdefault(key, []).append(i)
    extractions: list[Any] = [None] * len(job.texts)
    models: list[str] = [""] * len(job.texts)
    for key, indices in groups.items():
        model = named(job.model) if job.model else model_for(key)
        if mapping is not None:
            mapping.check_model(model.labels, model.name)
        found = extract(model, [job.texts[i] for i in indices], iob2=job.iob2, mapping=mapping)
        for i, extraction in zip(indices, found, strict=True):
            extractions[i], models[i] = extraction, model.name
    return EntityResult(models, None if mapping is None else mapping.name, extractions)


def registry_model_for(registry: ModelRegistry) -> Callable[[str], EntityModel]:
    def model_for(language: str) -> EntityModel:
        if not registry.has(f"{ROLE_PREFIX}{language}"):
            raise _no_model(language)
        model: EntityModel = registry.get(f"{ROLE_PREFIX}{language}")
        return model

    return model_for


class NamedModels:
    """Named models loaded on first use and kept; dropped when replaced or deleted."""

    def __init__(self, store: EntityModelStore) -> None:
        self.store = store
        self._loaded: dict[str, EntityModel] = {}

    def get(self, name: str) -> EntityModel:
        if name not in self._loaded:
            with named_model_errors():
                try:
                    self._loaded[name] = self.store.load(name)
                except EntityModelLoadError as exc:
                    raise UnavailableError(f"entity model {name!r} failed to load: {exc}") from exc
        return self._loaded[name]

    def forget(self, name: str) -> None:
        self._loaded.pop(name, None)
