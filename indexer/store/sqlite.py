"""The SQLite side of a generation: documents, chunks and the FTS5 keyword index.

Built with sqlite-utils. Chunk ids are the FAISS ids, never reused (the table
uses AUTOINCREMENT), so a vector always means the same chunk. The keyword
index holds text pre-tokenized by `indexer.text.keywords` in two columns, `words`
and `grams`, under FTS5's `ascii` tokenizer (which splits on spaces only for
non-ASCII text), ranked with bm25.

Entities extracted at index time (`index --entities`) sit in `chunk_entities`,
one row per (chunk_id, type, text) with the text NFKC-normalized; the table
exists only in indexes built with entities.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from indexer.errors import InputError
from indexer.store.where import Where, both, evaluate, to_sql
from indexer.text.normalize import tag_form

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StoredDocument:
    id: str
    key: str
    source: str
    title: str
    text: str
    language: str
    metadata: dict[str, Any]
    content_hash: str


@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    section: tuple[str, ...]
    tokens: int
    offsets: np.ndarray | None  # (2, len(text)) original starts/ends per normalized char, None = 1:1

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the chunk's normalized text to the document's original text."""
        if end <= start:
            return (self.start + start, self.start + start) if self.offsets is None else (0, 0)
        if self.offsets is None:
            return self.start + start, self.start + end
        return int(self.offsets[0][start]), int(self.offsets[1][end - 1])


@dataclass(frozen=True)
class Filters:
    """Metadata filters, applied before ranking."""

    source: str | None = None     # source path prefix
    language: str | None = None   # 'ja' or 'en'
    tags: tuple[str, ...] = ()    # any of these tags
    expression: Where | None = None  # a `where` filter (indexer.store.where) over any field or metadata
    access: bool = False          # an API key's access filter is among them: keyword statistics count only
                                  # the chunks that pass (see server.access)
    # (type, names): chunks holding an entity of each type with any of its names (normalized)
    entities: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:  # as documents keep their tags: HR and ＨＲ find hr
        object.__setattr__(self, "tags", tuple(tag_form(tag) for tag in self.tags))

    @property
    def empty(self) -> bool:
        return (self.source is None and self.language is None and not self.tags and self.expression is None
                and not self.entities)

    def restricted(self, where: Where | None, *, access: bool = False) -> Filters:
        """These filters and `where` too (`access`: it is an API key's access filter)."""
        if where is None:
            return self
        return replace(self, expression=both(self.expression, where), access=self.access or access)

    @property
    def statistics(self) -> Filters | None:
        """The chunks keyword statistics (BM25's IDF and average length, term weights) count: those that pass
        these filters when an API key's access filter is among them, else None (the whole index)."""
        return self if self.access else None

    def admits(self, doc_id: str, source: str, language: str, metadata: dict[str, Any]) -> bool:
        """True when a document passes these filters (the Python reading of `where()`)."""
        tags = metadata.get("tags")
        tags = {str(t) for t in tags} if isinstance(tags, list) else set()
        return ((self.source is None or source.startswith(self.source))
                and (self.language is None or language == self.language)
                and (not self.tags or bool(tags & set(self.tags)))
                and (self.expression is None or evaluate(self.expression, doc_id, source, language, metadata)))

    def where(self) -> tuple[str, list[Any]]:
        """A SQL condition over `documents d`, with its parameters."""
        clauses, params = [], []
        if self.source is not None:
            clauses.append("substr(d.source, 1, ?) = ?")
            params += [len(self.source), self.source]
        if self.language is not None:
            clauses.append("d.language = ?")
            params.append(self.language)
        if self.tags:
            marks = ",".join("?" * len(self.tags))
            clauses.append(f"d.id IN (SELECT doc_id FROM doc_tags WHERE tag IN ({marks}))")
            params += list(self.tags)
        if self.expression is not None:
            sql, more = to_sql(self.expression)
            clauses.append(f"coalesce({sql}, 0)")  # unknown (NULL) does not pass
            params += more
        for entity_type, names in self.entities:  # needs `chunks c` joined (every caller joins it)
            marks = ",".join("?" * len(names))
            clauses.append(f"c.id IN (SELECT chunk_id FROM chunk_entities WHERE type = ? AND text IN ({marks}))")
            params += [entity_type, *names]
        return (" AND ".join(clauses) or "1"), params


class EntityFilterError(InputError):
    """An entity filter on an index built without entities."""


class SqliteStore:
    """Documents, chunks and keyword index of one generation."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        if not readonly:
            self.db.execute("PRAGMA journal_mode = DELETE")
            self._create()

    def close(self) -> None:
        self.db.conn.close()

    def _create(self) -> None:
        db = self.db
        if "documents" in db.table_names():
            return
        db.table("documents").create(
            {"id": str, "key": str, "source": str, "title": str, "text": str, "language": str,
             "metadata": str, "content_hash": str},
            pk="id",
        )
        db.table("documents").create_index(["key"], unique=True)
        db.table("documents").create_index(["source"])
        db.table("doc_tags").create({"doc_id": str, "tag": str}, pk=("doc_id", "tag"))
        db.table("doc_tags").create_index(["tag"])
        db.execute(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, "
            "ordinal INTEGER, start INTEGER, end INTEGER, text TEXT, section TEXT, tokens INTEGER, "
            "offsets BLOB)"
        )
        db.table("chunks").create_index(["doc_id"])
        db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(words, grams, tokenize='ascii')")
        db.table("meta").create({"key": str, "value": str}, pk="key")
        db.table("meta").insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})

    # ---- writing ------------------------------------------------------
    def document_hashes(self) -> dict[str, tuple[str, str]]:
        """key -> (document id, content hash) of every stored document."""
        rows = self.db.execute("SELECT key, id, content_hash FROM documents")
        return {key: (doc_id, digest) for key, doc_id, digest in rows}

    def delete_documents(self, doc_ids: Iterable[str]) -> list[int]:
        """Remove documents with their chunks and keyword rows; returns the removed chunk ids."""
        removed: list[int] = []
        for doc_id in doc_ids:
            ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", [doc_id])]
            self.db.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
            self.db.execute("DELETE FROM chunks WHERE doc_id = ?", [doc_id])
            if self.has_entities():
                self.db.conn.executemany("DELETE FROM chunk_entities WHERE chunk_id = ?", [(i,) for i in ids])
            self.db.execute("DELETE FROM doc_tags WHERE doc_id = ?", [doc_id])
            self.db.execute("DELETE FROM documents WHERE id = ?", [doc_id])
            removed.extend(ids)
        return removed

    def add_document(self, doc: StoredDocument) -> None:
        self.db.table("documents").insert(
            {"id": doc.id, "key": doc.key, "source": doc.source, "title": doc.title,
             "text": doc.text, "language": doc.language,
             "metadata": json.dumps(doc.metadata, ensure_ascii=False), "content_hash": doc.content_hash}
        )
        tags = doc.metadata.get("tags") or []
        if isinstance(tags, list) and tags:
            self.db.table("doc_tags").insert_all(
                [{"doc_id": doc.id, "tag": str(t)} for t in dict.fromkeys(tags)]
            )

    def add_chunks(self, rows: Sequence[dict[str, Any]], fts: Sequence[tuple[str, str]]) -> list[int]:
        """Insert chunk rows with their (words, grams) keyword text; returns the new ids."""
        ids = []
        cursor = self.db.conn.cursor()
        for row, (words, grams) in zip(rows, fts, strict=True):
            cursor.execute(
                "INSERT INTO chunks (doc_id, ordinal, start, end, text, section, tokens, offsets) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [row["doc_id"], row["ordinal"], row["start"], row["end"], row["text"],
                 json.dumps(list(row["section"]), ensure_ascii=False), row["tokens"], row["offsets"]],
            )
            chunk_id = int(cursor.lastrowid or 0)
            cursor.execute("INSERT INTO chunks_fts (rowid, words, grams) VALUES (?, ?, ?)",
                           [chunk_id, words, grams])
            ids.append(chunk_id)
        return ids

    def add_entities(self, chunk_ids: Sequence[int], entities: Sequence[dict[str, list[str]]]) -> None:
        """Each chunk's entities by type ({"Person": ["山田太郎"], ...})."""
        self.db.execute("CREATE TABLE IF NOT EXISTS chunk_entities (chunk_id INTEGER NOT NULL, type TEXT NOT NULL, "
                        "text TEXT NOT NULL, PRIMARY KEY (chunk_id, type, text))")
        self.db.execute("CREATE INDEX IF NOT EXISTS chunk_entities_type_text ON chunk_entities (type, text)")
        rows = [(chunk_id, entity_type, name) for chunk_id, found in zip(chunk_ids, entities, strict=True)
                for entity_type, names in found.items() for name in names]
        self.db.conn.executemany("INSERT OR IGNORE INTO chunk_entities VALUES (?, ?, ?)", rows)

    def has_entities(self) -> bool:
        return "chunk_entities" in self.db.table_names()

    def chunk_entities(self, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        """Entities of the given chunks, by type (chunks without any are left out)."""
        if not ids or not self.has_entities():
            return {}
        marks = ",".join("?" * len(ids))
        found: dict[int, dict[str, list[str]]] = {}
        for chunk_id, entity_type, name in self.db.execute(
                f"SELECT chunk_id, type, text FROM chunk_entities WHERE chunk_id IN ({marks}) "
                "ORDER BY chunk_id, type, rowid", list(ids)):
            found.setdefault(chunk_id, {}).setdefault(entity_type, []).append(name)
        return found

    def entity_counts(self, entity_type: str | None = None, limit: int = 50,
                      filters: Filters | None = None) -> list[tuple[str, str, int]]:
        """(type, text, chunks) most frequent first: the facet counts of entities, over the chunks of the
        documents that `filters` admit (an API key's access filter: hidden documents count nothing)."""
        if not self.has_entities():
            raise EntityFilterError("this index holds no entities: build it with `yomitoki index --entities`")
        clauses, params = (["e.type = ?"], [entity_type]) if entity_type else ([], [])
        if filters is not None and not filters.empty:
            sql, more = filters.where()
            clauses.append(f"e.chunk_id IN (SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {sql})")
            params += more
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.execute(f"SELECT e.type, e.text, count(*) AS n FROM chunk_entities e {where} "
                               "GROUP BY e.type, e.text ORDER BY n DESC, e.type, e.text LIMIT ?", [*params, limit])
        return [(str(t), str(x), int(n)) for t, x, n in rows]

    def _check_filters(self, filters: Filters) -> None:
        if filters.entities and not self.has_entities():
            raise EntityFilterError("filters.entities: this index holds no entities: build it with "
                                    "`yomitoki index --entities`")

    def commit(self) -> None:
        self.db.conn.commit()

    # ---- reading ------------------------------------------------------
    def counts(self, filters: Filters | None = None) -> dict[str, int]:
        """Documents and chunks, of the whole index or of those that pass `filters`."""
        if filters is None or filters.empty:
            docs = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            return {"documents": int(docs), "chunks": int(chunks)}
        self._check_filters(filters)
        where, params = filters.where()
        if filters.entities:  # a condition on chunks: the documents are those of the chunks that pass
            docs, chunks = self.db.execute(
                f"SELECT count(DISTINCT c.doc_id), count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                f"WHERE {where}", params).fetchone()
            return {"documents": int(docs), "chunks": int(chunks)}
        docs = self.db.execute(f"SELECT count(*) FROM documents d WHERE {where}", params).fetchone()[0]
        chunks = self.db.execute(
            f"SELECT count(*) FROM chunks c WHERE c.doc_id IN (SELECT d.id FROM documents d WHERE {where})",
            params).fetchone()[0]
        return {"documents": int(docs), "chunks": int(chunks)}

    def document(self, doc_id: str) -> StoredDocument | None:
        row = self.db.execute(
            "SELECT id, key, source, title, text, language, metadata, content_hash "
            "FROM documents WHERE id = ?", [doc_id]).fetchone()
        if row is None:
            return None
        return StoredDocument(*row[:6], metadata=json.loads(row[6]), content_hash=row[7])  # type: ignore[misc]

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, doc_id, ordinal, start, end, text, section, tokens, offsets "
            f"FROM chunks WHERE id IN ({marks})", list(ids))
        return {row[0]: _chunk(row) for row in rows}

    def chunk_documents(self, ids: Sequence[int]) -> dict[int, str]:
        """chunk id -> its document's id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({marks})", list(ids)).fetchall())

    def document_chunk_ids(self, doc_id: str) -> list[int]:
        """The ids of a document's chunks, in order."""
        return [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY ordinal", [doc_id])]

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        """chunk id -> its normalized text."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", list(ids)).fetchall())

    def iter_chunks(self) -> Iterator[StoredChunk]:
        rows = self.db.execute(
            "SELECT id, doc_id, ordinal, start, end, text, section, tokens, offsets FROM chunks ORDER BY id")
        for row in rows:
            yield _chunk(row)

    def documents_brief(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, str, str, dict[str, Any], str]]:
        """id -> (title, source, language, metadata, key) for hits, without the full text."""
        if not doc_ids:
            return {}
        marks = ",".join("?" * len(doc_ids))
        rows = self.db.execute(
            f"SELECT id, title, source, language, metadata, key FROM documents WHERE id IN ({marks})",
            list(doc_ids))
        return {r[0]: (r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows}

    def chunk_originals(self, chunks: Sequence[StoredChunk]) -> dict[int, str]:
        """The original text of each chunk, sliced from its document in SQL."""
        if not chunks:
            return {}
        marks = ",".join("?" * len(chunks))
        rows = self.db.execute(
            f"SELECT c.id, substr(d.text, c.start + 1, c.end - c.start) FROM chunks c "
            f"JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})", [c.id for c in chunks])
        found = dict(rows.fetchall())
        return {c.id: found.get(c.id) or "" for c in chunks}

    def filtered_chunk_ids(self, filters: Filters) -> np.ndarray:
        self._check_filters(filters)
        where, params = filters.where()
        # the filter is evaluated once per document, not once per chunk
        rows = self.db.execute(
            f"SELECT c.id FROM chunks c WHERE c.doc_id IN (SELECT d.id FROM documents d WHERE {where})", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def keyword_vocabulary(self, column: str) -> dict[str, int]:
        """Every distinct term of one FTS5 column (`words` or `grams`), with the number of rows holding it."""
        if column not in ("words", "grams"):
            raise ValueError(f"unknown keyword column {column!r}: use words or grams")
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, col)")
        return dict(self.db.execute("SELECT term, doc FROM temp.chunks_vocab WHERE col = ?", [column]).fetchall())

    def keyword_search(
        self, match: str, k: int, filters: Filters, grams_weight: float
    ) -> list[tuple[int, float]]:
        """(chunk id, bm25 score) best first; higher is better."""
        self._check_filters(filters)
        where, params = filters.where()
        join = "" if filters.empty else "JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id"
        sql = (
            f"SELECT f.rowid, -bm25(chunks_fts, 1.0, ?) AS score FROM chunks_fts f {join} "
            f"WHERE chunks_fts MATCH ? AND {where} ORDER BY score DESC LIMIT ?"
        )
        rows = self.db.execute(sql, [grams_weight, match, *params, k])
        return [(int(r[0]), float(r[1])) for r in rows]


def _chunk(row: Sequence[Any]) -> StoredChunk:
    offsets = None
    if row[8] is not None:
        flat = np.frombuffer(row[8], dtype=np.int32)
        offsets = flat.reshape(2, -1)
    return StoredChunk(
        id=row[0], doc_id=row[1], ordinal=row[2], start=row[3], end=row[4], text=row[5],
        section=tuple(json.loads(row[6] or "[]")), tokens=row[7], offsets=offsets,
    )


def encode_offsets(chunk_text: str, original: str, starts: Sequence[int], ends: Sequence[int]) -> bytes | None:
    """The offset map of a chunk, or None when its text is the original slice char for char."""
    if not starts:
        return None
    if chunk_text == original[starts[0] : ends[-1]] and all(
        e - s == 1 for s, e in zip(starts, ends, strict=True)
    ):
        return None
    return np.array([list(starts), list(ends)], dtype=np.int32).tobytes()
