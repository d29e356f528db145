"""Request and response bodies of the search and document endpoints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from indexer.normalize import normalize_query
from indexer.search import Hit
from indexer.store import Filters

MAX_QUERY_CHARS = 2000
Mode = Literal["dense", "keyword", "hybrid"]
Query = Annotated[str, Meta(min_length=1, max_length=MAX_QUERY_CHARS,
                            description="Search text, 1-2000 characters.")]
TopK = Annotated[int, Meta(ge=1, le=100, description="Number of hits, 1-100.")]
Tag = Annotated[str, Meta(min_length=1, max_length=100)]
EntityType = Annotated[str, Meta(min_length=1, max_length=100)]
EntityNames = Annotated[list[Annotated[str, Meta(min_length=1, max_length=200)]], Meta(min_length=1, max_length=50)]


class SearchFilters(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Metadata filters applied before ranking."""

    source: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    language: Literal["ja", "en"] | None = None
    tags: Annotated[list[Tag], Meta(max_length=50)] = []
    # chunks holding, for every type given, an entity with any of its names (index --entities)
    entities: Annotated[dict[EntityType, EntityNames], Meta(max_length=20)] = {}

    def to_filters(self) -> Filters:
        return Filters(source=self.source, language=self.language, tags=tuple(self.tags),
                       entities=entity_filters(self.entities.items()))


def entity_filters(pairs: Iterable[tuple[str, Iterable[str]]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(type, names) with the names normalized as the index stores them."""
    return tuple((entity_type, tuple(dict.fromkeys(normalize_query(n).strip() for n in names)))
                 for entity_type, names in pairs)


class SearchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    query: Query
    mode: Mode = "hybrid"
    k: TopK = 10
    filters: SearchFilters | None = None


class HitOut(msgspec.Struct, frozen=True):
    doc_id: str
    chunk_id: int
    title: str
    source: str
    section: list[str]
    text: str
    start: int
    end: int
    score: float
    highlights: list[tuple[int, int]]
    language: str

    @classmethod
    def from_hit(cls, hit: Hit) -> HitOut:
        return cls(doc_id=hit.doc_id, chunk_id=hit.chunk_id, title=hit.title, source=hit.source,
                   section=list(hit.section), text=hit.text, start=hit.start, end=hit.end,
                   score=hit.score, highlights=list(hit.highlights), language=hit.language)


class SearchResponse(msgspec.Struct, frozen=True):
    query: str
    mode: Mode
    k: int
    generation: str
    took_ms: float
    hits: list[HitOut]


class DocumentOut(msgspec.Struct, frozen=True):
    id: str
    source: str
    title: str
    language: str
    text: str
    metadata: dict[str, object]
    generation: str
