"""Named entity models fine-tuned by the caller, kept beside the index in `INDEX/entity-models/NAME/`.

Each folder holds the spaCy pipeline (`model/`, saved with `to_disk`) and
`info.json`: its types, base model, training size, held-out scores and when it
was made. They live outside the generations, so they survive re-indexing. A
folder is written under a temporary name and renamed into place, so a reader
never sees half a model.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.errors import ConflictError, InputError, NotFoundError
from indexer.ner.pipelines import SpacyEntityModel, load_spacy_model
from indexer.ner.training import TrainedEntities

STORE_DIR = "entity-models"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class EntityModelNotFoundError(NotFoundError):
    """No named entity model of that name."""


class EntityModelExistsError(ConflictError):
    """The name is taken and the caller did not ask to replace it."""


@dataclass(frozen=True)
class EntityModelInfo:
    name: str
    base: str
    labels: list[str]
    trained_on: int
    held_out: int
    epochs: int
    seconds: float
    metrics: dict[str, Any] | None    # held-out precision, recall, F1 (exact span and type), per type too
    created: str
    description: str | None = None


def check_name(name: str) -> str:
    if not re.match(NAME_PATTERN, name):
        raise InputError(f"{name!r} is not a valid name: use 1-64 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit", field="name")
    return name


class EntityModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_index(cls, index_dir: Path) -> EntityModelStore:
        return cls(Path(index_dir) / STORE_DIR)

    def _folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self._folder(name) / "info.json").is_file()

    def check_free(self, name: str, *, replace: bool = False) -> None:
        if not replace and self.exists(name):
            raise EntityModelExistsError(f"an entity model named {name!r} already exists: delete it first or "
                                         "ask to replace it")

    def save(self, name: str, trained: TrainedEntities, *, description: str | None = None,
             replace: bool = False) -> EntityModelInfo:
        self.check_free(name, replace=replace)
        info = EntityModelInfo(
            name=name, base=trained.model.name, labels=list(trained.labels), trained_on=trained.trained_on,
            held_out=trained.held_out, epochs=trained.epochs, seconds=round(trained.seconds, 1),
            metrics=trained.metrics.as_dict() if trained.metrics else None,
            created=datetime.now(UTC).isoformat(timespec="seconds"), description=description)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            trained.model.nlp.to_disk(staging / "model")
            (staging / "info.json").write_text(json.dumps(info.__dict__, ensure_ascii=False, indent=1),
                                               encoding="utf-8")
            target = self._folder(name)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return info

    def info(self, name: str) -> EntityModelInfo:
        path = self._folder(name) / "info.json"
        if not path.is_file():
            raise EntityModelNotFoundError(f"no entity model named {name!r} (GET /entity-models lists them)")
        return EntityModelInfo(**json.loads(path.read_text(encoding="utf-8")))

    def entries(self) -> list[EntityModelInfo]:
        if not self.root.is_dir():
            return []
        return [self.info(p.parent.name) for p in sorted(self.root.glob("*/info.json"))
                if not p.parent.name.startswith(".")]

    def load(self, name: str) -> SpacyEntityModel:
        info = self.info(name)
        model = load_spacy_model(str(self._folder(name) / "model"), only=info.labels)
        model.name = name
        return model

    def delete(self, name: str) -> None:
        if not self.exists(name):
            raise EntityModelNotFoundError(f"no entity model named {name!r}")
        shutil.rmtree(self._folder(name))
