"""What an API key may see: its access filter, applied by every route that reads documents.

A key may carry a `where` filter (`indexer.store.where`), set with `yomitoki keys add
NAME --scope read --where JSON`. `ApiKeyAuth` puts the key's filter in the
request's scope; a route asks for it with `access_filter(request)` and either
adds it to the search filters (`scoped`), so it applies before ranking, or
checks one document with `visible`. A document outside the filter is treated
exactly as a missing one: never ranked, never counted, never cited, and a 404
with the missing document's message.

Statistics count only what the key sees: `scoped` marks the filters as an
access filter (`Filters.statistics`), and then BM25's IDF and average length
(both stores, FTS5 included), the compound boost's IDF and the answer
relevance's term weights are computed over the visible chunks, so a hidden
document shifts no score, no order and no refusal.

Figures of the whole index go only to callers who see all of it
(`whole_index`): `/health` gives a restricted key its own documents' counts
and a caller without a key none (with keys on), and `/metrics` refuses a
restricted key. What still depends on hidden documents: the generation name
(it changes when any document does), timings, and, on an HNSW or IVF-PQ index
and a key that sees more than 10,000 chunks (on Milvus's HNSW, any key), which
neighbours the approximate search finds (the graph and the lists are built
from every vector; scores are exact, and the embedded store searches a smaller
visible set exactly).
"""

from __future__ import annotations

from typing import Any

from indexer.store.sqlite import Filters, StoredDocument
from indexer.store.where import Where, evaluate

STATE_KEY = "access_filter"
WHOLE_INDEX_KEY = "whole_index"  # set by ApiKeyAuth when keys are on: does the caller see every document?


def access_filter(request: Any) -> Where | None:
    """The access filter of the key a request carries (None: the key sees everything)."""
    scope = request.scope if hasattr(request, "scope") else request
    return (scope.get("state") or {}).get(STATE_KEY)


def whole_index(request: Any) -> bool:
    """True when the caller may see figures of the whole index: API keys are off, or its key has no filter."""
    scope = request.scope if hasattr(request, "scope") else request
    return bool((scope.get("state") or {}).get(WHOLE_INDEX_KEY, True))


def scoped(filters: Filters, request: Any) -> Filters:
    """The request's filters with its key's access filter added (applied before ranking)."""
    where = access_filter(request)
    return filters if where is None else filters.restricted(where, access=True)


def visible(document: StoredDocument | None, where: Where | None) -> StoredDocument | None:
    """The document if the access filter lets it through, else None (a hidden document is a missing one)."""
    if document is None or where is None:
        return document
    admitted = evaluate(where, document.id, document.source, document.language, document.metadata)
    return document if admitted else None
