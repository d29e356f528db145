"""Request and response bodies of the search and document endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from indexer.search import Hit
from indexer.store import Filters

MAX_QUERY_CHARS = 2000
Mode = Literal["dense", "keyword", "hybrid"]
Query = Annotated[str, Meta(min_length=1, max_length=MAX_QUERY_CHARS,
                            description="Search text, 1-2000 characters.")]
TopK = Annotated[int, Meta(ge=1, le=100, description="Number of hits, 1-100.")]
Tag = Annotated[str, Meta(min_length=1, max_length=100)]


class SearchFilters(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Metadata filters applied before ranking."""

    source: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    language: Literal["ja", "en"] | None = None
    tags: Annotated[list[Tag], Meta(max_length=50)] = []

    def to_filters(self) -> Filters:
        return Filters(source=self.source, language=self.language, tags=tuple(self.tags))


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
    key: str = ""
    metadata: dict[str, object] = {}
    page: int | None = None    # first page of a paged document (PDF) the chunk lies on
    pages: list[int] = []      # every page it lies on: two when it crosses a page break

    @classmethod
    def from_hit(cls, hit: Hit) -> HitOut:
        return cls(doc_id=hit.doc_id, chunk_id=hit.chunk_id, title=hit.title, source=hit.source,
                   section=list(hit.section), text=hit.text, start=hit.start, end=hit.end,
                   score=hit.score, highlights=list(hit.highlights), language=hit.language,
                   key=hit.key, metadata=hit.metadata, page=hit.pages[0] if hit.pages else None,
                   pages=list(hit.pages))


class SearchResponse(msgspec.Struct, frozen=True):
    query: str
    mode: Mode
    k: int
    generation: str
    took_ms: float
    hits: list[HitOut]


class PageOut(msgspec.Struct, frozen=True):
    """One page of a paged document: text[start:end] is its text."""

    page: int
    start: int
    end: int


class DocumentOut(msgspec.Struct, frozen=True):
    id: str
    source: str
    title: str
    language: str
    text: str
    metadata: dict[str, object]
    generation: str
    key: str = ""
    pages: list[PageOut] = []      # page boundaries of a paged document (PDF); [] for other formats
    file: str | None = None        # where the original file is served, when the index keeps it
