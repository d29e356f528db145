"""`yomitoki entities` and `yomitoki train-entities`: what POST /entities and POST /entity-models do."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import click

from indexer.cli import domain_errors, index_option
from indexer.ner.entities import Extraction
from indexer.ner.named import EntityModelStore
from indexer.ner.pipelines import DEFAULT_JA_MODEL, load_entity_model
from indexer.ner.training import TrainOptions, fine_tune, parse_examples
from server.errors import UnavailableError
from server.nlp.cli_support import lazy
from server.nlp.entities import (
    EntityJob,
    NamedModels,
    configured_models,
    named_model_errors,
    parse_ner_models,
    resolve_mapping,
)
from server.nlp.entities import run_entities as run


@contextmanager
def _errors() -> Iterator[None]:
    """Errors as messages: bad input exits with 2, as click's own usage errors, anything else with 1."""
    with domain_errors(), named_model_errors():
        yield


def _line(text: str, extraction: Extraction, iob2: bool) -> str:
    if iob2 and extraction.tokens is not None:
        return "\n".join(f"{t.text}\t{t.mapped_tag or t.tag}" for t in extraction.tokens) + "\n"
    found = "  ".join(f"{e.text} [{e.mapped_type or e.type}] {e.start}-{e.end}" for e in extraction.entities)
    return f"{' '.join(text.split())[:60]}\t{found or '(none)'}"


@click.command("entities")
@click.argument("texts", nargs=-1)
@index_option
@click.option("--format", "output_format", type=click.Choice(["spans", "iob2"]), default="spans", show_default=True,
              help="Entities with offsets, or every token with its IOB2 tag.")
@click.option("--model", default=None, help="A named entity model fine-tuned beside the index (train-entities).")
@click.option("--ner-model", "ner_models", multiple=True, metavar="[LANG=]PATH_OR_ID",
              help="Entity model for a language: transformers token classifier or spaCy pipeline. "
                   f"Japanese: {DEFAULT_JA_MODEL} unless given.")
@click.option("--language", default=None, help="Language of every text (default: detected per text).")
@click.option("--mapping", default=None, help="Report types in another scheme too: a bundled mapping "
                                              "(ginza-ner-wikipedia-ja) or a JSON file.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def entities_command(texts: tuple[str, ...], index_dir: Path, output_format: str, model: str | None,
                     ner_models: tuple[str, ...], language: str | None, mapping: str | None, as_json: bool) -> None:
    """Named entities in TEXTS (or the lines of stdin), with offsets into each text, as POST /entities."""
    inputs = list(texts) or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not inputs:
        raise click.UsageError("give texts as arguments or as lines on stdin")
    with _errors():
        loaders = {lang: lazy(partial(load_entity_model, name))
                   for lang, name in configured_models(parse_ner_models(ner_models)).items()}

        def model_for(lang: str) -> Any:
            if lang not in loaders:
                raise UnavailableError(f"no entity model for language {lang!r}: give --ner-model {lang}=PATH_OR_ID")
            return loaders[lang]()

        job = EntityJob(texts=inputs, iob2=output_format == "iob2", model=model, language=language,
                        mapping=resolve_mapping(mapping, files=True))
        result = run(job, model_for, NamedModels(EntityModelStore.for_index(index_dir)).get)
    if as_json:
        rows = [{"model": m, **asdict(x)} for m, x in zip(result.models, result.extractions, strict=True)]
        if output_format == "spans":
            rows = [{k: v for k, v in row.items() if k != "tokens"} for row in rows]
        click.echo(json.dumps({"format": output_format, "mapping": result.mapping, "results": rows},
                              ensure_ascii=False, indent=2))
        return
    for text, extraction in zip(inputs, result.extractions, strict=True):
        click.echo(_line(text, extraction, output_format == "iob2"))


def _read_rows(path: Path) -> list[Any]:
    """A JSON list, or JSON lines."""
    raw = path.read_text(encoding="utf-8")
    if raw.lstrip().startswith("["):
        return list(json.loads(raw))
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
    return rows


@click.command("train-entities")
@click.argument("examples", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@click.option("--name", required=True, help="Name to store the model under, beside the index.")
@click.option("--base", default=DEFAULT_JA_MODEL, show_default=True, help="spaCy pipeline to start from.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 0.5),
              help="Share held out to measure F1 (with 50 examples or more).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Train on the first N only.")
@click.option("--description", default=None)
@click.option("--replace", is_flag=True, help="Replace a model of the same name.")
def train_entities_command(examples: Path, index_dir: Path, name: str, base: str, epochs: int, holdout: float,
                           max_examples: int | None, description: str | None, replace: bool) -> None:
    """Fine-tune an entity model on EXAMPLES (JSON lines or a JSON list; spans or IOB2) and store it as NAME."""
    with _errors():
        store = EntityModelStore.for_index(index_dir)
        store.check_free(name, replace=replace)
        labelled = parse_examples(_read_rows(examples)[:max_examples], str(examples))
        trained = fine_tune(labelled, TrainOptions(base=base, epochs=epochs, holdout=holdout))
        info = store.save(name, trained, description=description, replace=replace)
    click.echo(json.dumps(asdict(info), ensure_ascii=False, indent=2))
