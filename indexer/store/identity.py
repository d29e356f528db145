"""A document's id: a short hash of its own key, the same in every generation and in both stores."""

from __future__ import annotations

import hashlib


def document_id(key: str) -> str:
    """A stable id for a document: the same key (a record's id, a file's path, an upload's key) gives the same id."""
    return hashlib.sha1(key.encode()).hexdigest()[:16]
