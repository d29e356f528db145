"""What an API key may see: its access filter, applied by every route that reads documents.

A key may carry a `where` filter (`indexer.store.where`), set with `yomitoki keys add
NAME --scope read --where JSON`. `ApiKeyAuth` puts the key's filter in the
request's scope; a route asks for it with `access_filter(request)` and either
adds it to the search filters (`scoped`), so it applies before ranking, or
checks one document with `visible`. A document outside the filter is treated
exactly as a missing one: never ranked, never counted, never cited, and a 404
with the missing document's message.

Keyword scores stay those of the whole index: BM25's IDF and average length
count every chunk, so a hidden document shifts the scores (not the set, nor,
except for near ties, the order) that a restricted key sees. The embedded
store removes that effect (`KeywordMatrix.search(..., own_statistics=True)`): with
an access filter its BM25 is computed over the visible chunks only. Milvus
computes BM25 statistics over its whole collection, so there the effect stays;
give groups that must not learn anything from each other's documents separate
indexes.
"""

from __future__ import annotations

from typing import Any

from indexer.store.sqlite import Filters, StoredDocument
from indexer.store.where import Where, evaluate

STATE_KEY = "access_filter"


def access_filter(request: Any) -> Where | None:
    """The access filter of the key a request carries (None: the key sees everything)."""
    scope = request.scope if hasattr(request, "scope") else request
    return (scope.get("state") or {}).get(STATE_KEY)


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
