"""Entities of each chunk at index time (`yomitoki index --entities`), grouped by type.

Chunk texts are already NFKC-normalized, so the model reads them as they are and
the stored names are normalized too (queries and filters are normalized the same
way). Each chunk gets `{"Person": ["山田太郎"], "Company": ["トヨタ自動車"], ...}`
in the model's own types; the store keeps one row per (chunk, type, name) in
`chunk_entities` so searches can filter on them (`indexer.store.sqlite.Filters.entities`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.ner.entities import EntityModel, entities_by_type
from indexer.ner.pipelines import DEFAULT_JA_MODEL, load_entity_model
from indexer.store.manifest import EntitiesEntry


@dataclass
class ChunkEntities:
    model: EntityModel
    languages: tuple[str, ...] | None = None   # documents in these languages only; None: every document

    @classmethod
    def load(cls, name: str | None = None) -> ChunkEntities:
        """The named model for every document, or GiNZA for Japanese documents (it reads only Japanese)."""
        if name is None:
            return cls(load_entity_model(DEFAULT_JA_MODEL), ("ja",))
        return cls(load_entity_model(name))

    @classmethod
    def find(cls, index_dir: Path | None, name: str | None) -> ChunkEntities:
        """A model trained beside the index by that name (`train-entities`), else `load`'s."""
        from indexer.ner.named import NAME_PATTERN, EntityModelStore

        if name and index_dir is not None and re.match(NAME_PATTERN, name):
            named = EntityModelStore.for_index(index_dir)
            if named.exists(name):
                return cls(named.load(name))
        return cls.load(name)

    @classmethod
    def recorded(cls, entry: EntitiesEntry, index_dir: Path | None) -> ChunkEntities:
        """The extractor a generation's manifest names, for the documents written to it over HTTP."""
        return _recorded(entry.model, entry.revision, tuple(entry.languages or ()), index_dir)

    def covers(self, language: str) -> bool:
        return self.languages is None or language in self.languages

    def settings(self) -> EntitiesEntry:
        """What the manifest records: a different model means the entities must be extracted again."""
        location = getattr(self.model, "location", None)
        return EntitiesEntry(model=self.model.name, revision=location.revision() if location is not None else None,
                             languages=list(self.languages) if self.languages else None)

    def extract(self, texts: Sequence[str]) -> list[dict[str, list[str]]]:
        return [entities_by_type(found, text) for text, found in zip(texts, self.model.analyse(texts), strict=True)]


@functools.lru_cache(maxsize=4)  # loaded once, not at every write
def _recorded(model: str, revision: str | None, languages: tuple[str, ...], index_dir: Path | None) -> ChunkEntities:
    return ChunkEntities(ChunkEntities.find(index_dir, model).model, languages or None)
