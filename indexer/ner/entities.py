"""Named entities with offsets into the original text, as spans or IOB2-tagged tokens.

A model sees the NFKC-normalized text (the same normalization as documents and
queries) and answers in its offsets; `extract` maps every span back through the
offset map, so an entity's `start:end` slices the caller's own text exactly,
half-width katakana, ㈱ and full-width letters included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from indexer.ner.mapping import TypeMapping
from indexer.text.normalize import NormalizedText, normalize

Span = tuple[int, int]


@dataclass(frozen=True)
class Analysis:
    """What a model found in one normalized text: token spans and (start, end, type) entities."""

    tokens: list[Span]
    entities: list[tuple[int, int, str]]


class EntityModel(Protocol):
    """A named-entity model over normalized text (spaCy pipeline, transformers token classifier)."""

    name: str

    @property
    def labels(self) -> tuple[str, ...]: ...

    def analyse(self, texts: Sequence[str]) -> list[Analysis]: ...


@dataclass(frozen=True)
class Entity:
    type: str                       # in the model's own scheme
    text: str                       # original[start:end]
    start: int                      # offsets into the original text
    end: int
    mapped_type: str | None = None  # in the caller's scheme, when a mapping is given and covers `type`


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    tag: str                        # IOB2 in the model's scheme: B-Person, I-Person or O
    mapped_tag: str | None = None   # IOB2 in the caller's scheme, when a mapping is given


@dataclass(frozen=True)
class Extraction:
    text: str
    entities: list[Entity]
    tokens: list[Token] | None      # only when IOB2 was asked for


def iob2_tags(tokens: Sequence[Span], entities: Sequence[tuple[int, int, str]]) -> list[str]:
    """One IOB2 tag per token: B- for the token an entity starts in, I- for the rest of it, else O."""
    tags = ["O"] * len(tokens)
    for start, end, label in entities:
        inside = [i for i, (s, e) in enumerate(tokens) if s < end and e > start]
        for n, i in enumerate(inside):
            tags[i] = f"{'B' if n == 0 else 'I'}-{label}"
    return tags


def _mapped(tag: str, mapping: TypeMapping) -> str:
    if tag == "O":
        return tag
    prefix, _, label = tag.partition("-")
    target = mapping.get(label)
    return f"{prefix}-{target}" if target else "O"


def _entities(norm: NormalizedText, found: Analysis, mapping: TypeMapping | None) -> list[Entity]:
    entities = []
    for start, end, label in found.entities:
        s, e = norm.to_original(start, end)
        if e > s:
            entities.append(Entity(label, norm.original[s:e], s, e, mapping.get(label) if mapping else None))
    return entities


def _tokens(norm: NormalizedText, found: Analysis, mapping: TypeMapping | None) -> list[Token]:
    tags = iob2_tags(found.tokens, found.entities)
    tokens = []
    for (start, end), tag in zip(found.tokens, tags, strict=True):
        s, e = norm.to_original(start, end)
        tokens.append(Token(norm.original[s:e], s, e, tag, _mapped(tag, mapping) if mapping else None))
    return tokens


def extract(model: EntityModel, texts: Sequence[str], *, iob2: bool = False,
            mapping: TypeMapping | None = None) -> list[Extraction]:
    """Entities of each text, with offsets into that text (and its IOB2 tokens when asked)."""
    norms = [normalize(text) for text in texts]
    analyses = model.analyse([n.text for n in norms])
    return [Extraction(n.original, _entities(n, a, mapping), _tokens(n, a, mapping) if iob2 else None)
            for n, a in zip(norms, analyses, strict=True)]


def entities_by_type(analysis: Analysis, text: str) -> dict[str, list[str]]:
    """`{"Person": ["山田太郎"], ...}` for one normalized text: each type's distinct entity texts, in order."""
    grouped: dict[str, list[str]] = {}
    for start, end, label in analysis.entities:
        names = grouped.setdefault(label, [])
        if text[start:end] not in names:
            names.append(text[start:end])
    return grouped
