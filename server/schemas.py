"""Request and response bodies of the search and document endpoints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from indexer.search.searcher import MAX_RESULTS, Hit
from indexer.store.sqlite import Filters
from indexer.store.where import check_field, parse
from indexer.text.normalize import normalize_query

WHERE_DESCRIPTION = (
    "A filter on any field, applied before ranking: a condition `{\"field\": F, OP: VALUE}` or "
    "`{\"and\": [...]}`, `{\"or\": [...]}`, `{\"not\": {...}}`. F is source, language, doc_id, tags or "
    "metadata.KEY[.KEY]; OP is eq, in (a list), gt, gte, lt, lte (a number or an ISO 8601 date), exists "
    "(true/false) or prefix (source only). A condition on a key a document lacks is unknown, and `not` of "
    "unknown is unknown: only documents for which the filter is true pass."
)
Where = Annotated[dict[str, Any], Meta(description=WHERE_DESCRIPTION, examples=[
    {"and": [{"field": "metadata.year", "gte": 2020}, {"field": "tags", "in": ["hr", "legal"]}]}])]
FacetField = Annotated[str, Meta(min_length=1, max_length=200,
                                 description="tags, source, language or metadata.KEY[.KEY]")]

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
    where: Where | None = None
    # chunks holding, for every type given, an entity with any of its names (index --entities)
    entities: Annotated[dict[EntityType, EntityNames], Meta(max_length=20)] = {}

    def to_filters(self) -> Filters:
        """The filters, checked; a bad `where` raises FilterError (a 400 naming the place)."""
        expression = None if self.where is None else parse(self.where, "filters.where")
        return Filters(source=self.source, language=self.language, tags=tuple(self.tags), expression=expression,
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
    offset: Annotated[int, Meta(ge=0, le=MAX_RESULTS - 1, description=(
        f"Skip this many results: pages of one query, in one stable order, over its best {MAX_RESULTS} "
        "results. Send it from the first page on (0), as a paged search ranks deeper than a plain one."))] | None = None
    facets: Annotated[list[FacetField], Meta(max_length=20, description=(
        "Fields to count values of, over every document in the filtered result set (not just this page)."))] = []
    collapse: Annotated[Literal["document"], Meta(description=(
        "`document`: each document once, with its best chunk; `more` counts its other matching chunks."))] | None = None
    rerank: Annotated[bool, Meta(description=(
        "Re-order the first results with the server's cross-encoder (`--reranker`): by default when one is "
        "configured; `false` skips it, `true` without one is a 400."))] | None = None

    def checked_facets(self) -> list[str]:
        for number, field in enumerate(self.facets):
            check_field(field, f"facets[{number}]")
        return self.facets


class FacetCount(msgspec.Struct, frozen=True):
    value: str | int | float | bool
    count: int


class HitOut(msgspec.Struct, frozen=True, omit_defaults=True):
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
    page: int | None = None    # page of a paged document (PDF, slides) where the match is: its first highlight
    pages: list[int] = []      # every page it lies on: two when it crosses a page break
    more: int | None = None  # with collapse: the document's other matching chunks
    rerank_score: float | None = None  # the reranker's score, for a hit it read

    @classmethod
    def from_hit(cls, hit: Hit, collapsed: bool = False) -> HitOut:
        return cls(doc_id=hit.doc_id, chunk_id=hit.chunk_id, title=hit.title, source=hit.source,
                   section=list(hit.section), text=hit.text, start=hit.start, end=hit.end,
                   score=hit.score, highlights=list(hit.highlights), language=hit.language,
                   key=hit.key, metadata=hit.metadata, page=hit.page,
                   pages=list(hit.pages),
                   more=hit.more if collapsed else None,
                   rerank_score=None if hit.rerank_score is None else round(hit.rerank_score, 6))


class SearchResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    query: str
    mode: Mode
    k: int
    generation: str
    took_ms: float
    hits: list[HitOut]
    offset: int = 0
    total: int | None = None  # the result set's size (documents when collapsed)
    facets: dict[str, list[FacetCount]] | None = None
    reranker: str | None = None  # the cross-encoder that re-ordered the first hits, when one did
    read_as: str | None = None   # the query as searched, when kana in it was read as the index's words


class RelatedResponse(msgspec.Struct, frozen=True):
    """Documents like one document (`GET /documents/{id}/related`): each once, by its closest chunk."""

    id: str          # the document asked about
    key: str
    title: str
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
