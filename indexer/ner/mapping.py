"""Type mappings: a model's entity types → the caller's scheme, kept as data (JSON), not code.

A mapping file holds the caller's `labels` and `types`, a table from the
model's type to one of those labels. Bundled mappings live in
`indexer/ner/mappings/NAME.json`; a mapping can also be a path or, over HTTP,
an inline table. Every model type in it must be one the model knows and every
target one of the declared labels, so a typo fails loudly instead of dropping
entities.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import InputError

MAPPINGS_DIR = Path(__file__).parent / "mappings"


class MappingError(InputError):
    """A mapping that names unknown types or labels, or cannot be read."""


@dataclass(frozen=True)
class TypeMapping:
    name: str
    labels: tuple[str, ...]        # the caller's scheme
    types: dict[str, str]          # model type -> caller label

    def get(self, model_type: str) -> str | None:
        return self.types.get(model_type)

    def check_model(self, model_labels: Iterable[str], model_name: str) -> None:
        """Refuse a mapping from types the model does not have."""
        known = set(model_labels)
        unknown = sorted(t for t in self.types if t not in known)
        if unknown:
            raise MappingError(f"mapping {self.name!r} maps types that model {model_name!r} does not produce: "
                               f"{', '.join(unknown[:10])}")


def bundled_mappings() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.json"))


def mapping_from_table(name: str, types: Mapping[str, str], labels: Iterable[str] | None = None) -> TypeMapping:
    """A mapping from its parts; every target must be one of `labels` (default: the targets themselves)."""
    declared = tuple(dict.fromkeys(labels if labels is not None else types.values()))
    stray = sorted({v for v in types.values() if v not in declared})
    if stray:
        raise MappingError(f"mapping {name!r} maps to labels it does not declare: {', '.join(stray)}")
    if not types:
        raise MappingError(f"mapping {name!r} maps no types")
    return TypeMapping(name, declared, dict(types))


def load_mapping(name_or_path: str, *, files: bool = True) -> TypeMapping:
    """A bundled mapping by name (see `bundled_mappings`) or, with `files`, a JSON file by path."""
    path = Path(name_or_path).expanduser()
    if not files or not path.is_file():
        path = MAPPINGS_DIR / f"{name_or_path}.json"
    if name_or_path not in bundled_mappings() and not (files and path.is_file()):
        raise MappingError(f"no entity type mapping {name_or_path!r}: give {'a JSON file or ' if files else ''}"
                           f"one of {', '.join(bundled_mappings())}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        types, labels = data["types"], data.get("labels")
        if not isinstance(types, dict) or not all(isinstance(v, str) for v in types.values()):
            raise TypeError("types must be an object of strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MappingError(f"{path}: expected {{\"labels\": [...], \"types\": {{MODEL_TYPE: LABEL}}}}: {exc}") from exc
    return mapping_from_table(path.stem, types, labels)
