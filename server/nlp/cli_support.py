"""What `yomitoki classify` and `yomitoki models` need besides the library: files in, tables out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from indexer.embed.base import Embedder
from server.nlp.errors import TaskInputError
from server.nlp.few_shot import Example
from server.nlp.ladder import Classification
from server.nlp.model_caches import CacheEntry
from server.nlp.model_info import ModelFacts
from server.nlp.zero_shot import LabelSpec

T = TypeVar("T")


def parse_labels(values: Iterable[str]) -> list[LabelSpec]:
    """`NAME` or `NAME=DESCRIPTION`, as given to --label."""
    labels = []
    for value in values:
        name, _, description = value.partition("=")
        if not name.strip():
            raise TaskInputError("--label", f"{value!r} has no name: write NAME or NAME=DESCRIPTION")
        labels.append(LabelSpec(name.strip(), description.strip() or None))
    return labels


def read_examples(path: Path) -> list[Example]:
    """Labelled examples from JSON lines ({"text": …, "label": …}) or TSV (text<TAB>label)."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                examples.append(Example(str(row["text"]), str(row["label"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise TaskInputError("examples", f"{path}:{number}: expected {{\"text\": …, \"label\": …}}") from exc
        else:
            text, tab, label = line.rpartition("\t")
            if not tab or not text.strip() or not label.strip():
                raise TaskInputError("examples", f"{path}:{number}: expected text<TAB>label")
            examples.append(Example(text, label.strip()))
    return examples


def classification_json(texts: Sequence[str], result: Classification) -> dict[str, object]:
    return {"method": result.method, "model": result.model, "classifier": result.classifier,
            "multi_label": result.multi_label,
            "results": [{"text": text, "label": p.label, "predicted": list(p.predicted),
                         "scores": [{"label": s.label, "score": round(s.score, 6)} for s in p.scores]}
                        for text, p in zip(texts, result.predictions, strict=True)]}


def classification_table(texts: Sequence[str], result: Classification, top_k: int = 3) -> Table:
    table = Table("text", "label", "scores", title=f"{result.method} · {result.model}")
    for text, prediction in zip(texts, result.predictions, strict=True):
        scores = "  ".join(f"{s.label} {s.score:.3f}" for s in prediction.scores[:top_k])
        table.add_row(" ".join(text.split())[:80], ", ".join(prediction.predicted), scores)
    return table


def _size(size: int | None) -> str:
    return "" if size is None else f"{size / 1e6:,.1f} MB"


def _count(count: int | None) -> str:
    return "" if count is None else f"{count / 1e6:,.1f}M"


def models_tables(facts: Sequence[ModelFacts]) -> list[Table]:
    """One two-column table per model (narrow terminals stay readable)."""
    tables = []
    for f in facts:
        table = Table(show_header=False, title=f"{f.role}: {f.name}", title_justify="left", min_width=60)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")
        where = f"{f.source}" + (f" (package {f.package})" if f.package else "")
        loaded = "yes" if f.loaded else "no (facts from its files)"
        rows = [("source", where), ("path", f.path or ""), ("loaded", loaded),
                ("parameters", f"{_count(f.parameters)} ({f.parameters:,})" if f.parameters else ""),
                ("size on disk", _size(f.size_bytes)), ("embedding dimension", str(f.embedding_dimension or "")),
                ("hidden size", str(f.hidden_size or "")), ("max sequence length", str(f.max_sequence_length or "")),
                ("architecture", f.architecture or ""), ("tokenizer", f.tokenizer_class or ""),
                ("special tokens", " ".join(f"{k}={v}" for k, v in (f.special_tokens or {}).items())),
                ("labels", ", ".join(f.labels or [])), ("revision", f.revision or ""), ("error", f.error or "")]
        for key, value in rows:
            if value:
                table.add_row(key, value)
        tables.append(table)
    return tables


def caches_table(entries: Sequence[CacheEntry], hub_dir: Path) -> Table:
    table = Table("kind", "model", "size", title=f"local model caches (hub cache: {hub_dir})")
    table.add_column("path", overflow="fold")
    for entry in entries:
        table.add_row(entry.kind, entry.name, _size(entry.size_bytes), entry.path)
    return table


@contextmanager
def task_errors() -> Iterator[None]:
    """The task library's errors as clean command-line messages."""
    from indexer.cli import domain_errors

    with domain_errors():
        yield


def embedding_model_name(index_dir: Path, model: str | None) -> str:
    """The model to embed with: the one asked for, else the index's, else the default."""
    from indexer.embed.base import DEFAULT_EMBEDDER
    from indexer.store.generations import IndexDirectory

    if model:
        return model
    directory = IndexDirectory(index_dir)
    if directory.current_name() is None:
        return DEFAULT_EMBEDDER
    return directory.current().manifest.model.name


def load_index_embedder(index_dir: Path, model: str | None) -> Embedder:
    """The embedder the server would use for this index (its model, on its runtime), or `model`."""
    from indexer.embed.loading import load_embedder
    from indexer.search.opening import manifest_embedder
    from indexer.store.generations import IndexDirectory

    directory = IndexDirectory(index_dir)
    if directory.current_name() is None:
        return load_embedder(embedding_model_name(index_dir, model))
    return manifest_embedder(directory.current(), model=model)


def lazy(load: Callable[[], T]) -> Callable[[], T]:
    """`load`, called at most once, on first use."""
    loaded: list[T] = []

    def get() -> T:
        if not loaded:
            loaded.append(load())
        return loaded[0]

    return get
