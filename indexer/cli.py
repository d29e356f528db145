"""The `yomitoki` command line: the indexer's commands.

Each command opens what it needs, calls one library function and turns
domain errors into `click.ClickException`. The server package adds its own
commands (`serve`, `ask`, …) to the same group in `server.cli`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from indexer.backends import STORE_KINDS, open_target
from indexer.build import BuildOptions, BuildReport, IndexBuilder
from indexer.chunking import ChunkSettings
from indexer.distributed import RayIndexingError, RayPreparer, ray_preparer
from indexer.distributed import connect as connect_ray
from indexer.embedders import BACKENDS, EmbedderLoadError, load_embedder, load_manifest_embedder
from indexer.generations import IndexDirectory, IndexStateError
from indexer.integrity import check_index
from indexer.keywords import load_keyword_tokenizer
from indexer.models import locate_embedder
from indexer.search import MODES, IndexMismatchError, QueryError, Searcher
from indexer.selection import choose_embedder
from indexer.store import Filters
from indexer.vectors import INDEX_TYPES

EXIT_SKIPPED = 3
console = Console(stderr=True)
index_option = click.option(
    "--index", "index_dir", type=click.Path(path_type=Path), envvar="YOMITOKI_INDEX",
    default=Path("index"), show_default=True, help="Index directory (env YOMITOKI_INDEX).",
)


def milvus_options(command: Any) -> Any:
    """--milvus-uri and --milvus-collection, shared by index, search and serve."""
    command = click.option(
        "--milvus-collection", default=None, envvar="YOMITOKI_MILVUS_COLLECTION",
        help="Milvus collection alias of the index. Default: derived from --index's folder name.")(command)
    return click.option(
        "--milvus-uri", default=None, envvar="YOMITOKI_MILVUS_URI", metavar="URI",
        help="Keep the index in Milvus: a server (http://HOST:19530) or a Milvus Lite file (PATH.db). "
             "Implies --store milvus.")(command)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the library's errors into clean command-line messages."""
    try:
        yield
    except (IndexStateError, IndexMismatchError, EmbedderLoadError, QueryError, RayIndexingError,
            ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="yomitoki")
def cli() -> None:
    """yomitoki: search and question answering over Japanese and English documents."""


def _progress() -> tuple[Progress, Any]:
    progress = Progress(
        TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
        disable=not console.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, rate="")
        task = progress.tasks[tasks[stage]]
        elapsed = task.elapsed or 0.0
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 else ""
        progress.update(tasks[stage], completed=done, total=total, rate=rate)

    return progress, update


@cli.command("index")
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@index_option
@click.option("--model", default=None,
              help="Embedding model: a bundled name (multilingual-e5-small, all-minilm-l6-v2, use-multilingual-v3), "
                   "a local path or a hub id. Default: the index's model, else multilingual-e5-small.")
@click.option("--rebuild", is_flag=True, help="Start over instead of updating incrementally.")
@click.option("--max-tokens", default=200, show_default=True, help="Chunk size in model tokens.")
@click.option("--overlap", default=40, show_default=True, help="Overlap between chunks, in tokens.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Embedding batch size. Default: the backend's fastest (16 for torch, 8 for onnx-int8).")
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks that lead outside CORPUS.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="How the model runs: torch (float32), torch-bf16 (≈ 1.7–1.8× faster where the CPU has AMX or "
                   "AVX512-BF16), onnx, or onnx-int8 (≈ 2.8× faster on any CPU, cosine ≥ 0.99 to torch; "
                   "exported once and cached). Default: the index's backend, else torch.")
@click.option("--index-type", type=click.Choice(["auto", *INDEX_TYPES]), default="auto", show_default=True,
              help="Vector index: flat (exact), hnsw, ivfpq (compressed, re-scored exactly), or auto by size.")
@click.option("--store", type=click.Choice(STORE_KINDS), default=None,
              help="Where the index lives: embedded (FAISS + SQLite in --index) or milvus (needs --milvus-uri). "
                   "Default: milvus when --milvus-uri is given, else embedded.")
@milvus_options
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Load, chunk and embed on a Ray cluster (auto, HOST:PORT or ray://HOST:PORT; needs the "
                   "'scale' extra). CORPUS must be at the same path on every node. See docs/scaling.md.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None,
              help="Embedding actors on the Ray cluster, one CPU each. Default: one per CPU of the cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
def index_command(corpus: Path, index_dir: Path, model: str | None, rebuild: bool, max_tokens: int,
                  overlap: int, batch_size: int | None, follow_symlinks: bool, backend: str | None, index_type: str,
                  ray_address: str | None, ray_workers: int | None, store: str | None, milvus_uri: str | None,
                  milvus_collection: str | None, as_json: bool) -> None:
    """Index the files under CORPUS (.md, .txt, .html, .jsonl) into --index.

    Re-running it embeds only new or changed documents and drops documents
    whose files are gone. Exits with 3 when some files were skipped.
    """
    with domain_errors():
        if ray_address:
            connect_ray(ray_address)  # first: an unreachable cluster fails in seconds, before models load
        directory = open_target(index_dir, store, milvus_uri, milvus_collection)
        name = model or choose_embedder(directory, corpus, rebuild=rebuild)
        embedder = load_embedder(name, backend=backend or _index_backend(directory, name, rebuild))
        options = BuildOptions(chunking=ChunkSettings(max_tokens, overlap), rebuild=rebuild,
                               batch_size=batch_size, follow_symlinks=follow_symlinks, index_type=index_type)
        keywords = load_keyword_tokenizer()
        preparing: AbstractContextManager[RayPreparer | None] = nullcontext()
        if ray_address:
            preparing = ray_preparer(ray_address, corpus, embedder, keywords, options, workers=ray_workers)
        progress, update = _progress()
        with preparing as preparer, progress:
            report = IndexBuilder(directory, embedder, keywords, options, update, preparer).build(corpus)
    _print_report(report, as_json, preparer.summary() if preparer else None)
    if report.failures:
        sys.exit(EXIT_SKIPPED)


def _index_backend(directory: IndexDirectory, name: str, rebuild: bool) -> str | None:
    """The backend the live generation was built with, when it used this model (to keep updates alike)."""
    if rebuild or directory.current_name() is None:
        return None
    built = directory.current().manifest.get("model", {})
    return built.get("backend") if locate_embedder(name).name == built.get("name") else None


def _print_report(report: BuildReport, as_json: bool, ray: dict[str, Any] | None = None) -> None:
    if as_json:
        payload = {**report.__dict__, "failures": [f.__dict__ for f in report.failures]}
        if ray is not None:
            payload["ray"] = ray
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for failure in report.failures:
        console.print(f"[yellow]skipped[/] {failure.path}: {failure.reason}")
    if report.chunks_embedded == 0 and not report.removed:
        click.echo(f"No changes: {report.unchanged} documents unchanged, nothing embedded "
                   f"({report.generation}).")
    else:
        rate = report.chunks_embedded / report.embed_seconds if report.embed_seconds else 0.0
        click.echo(
            f"{report.generation}: {report.added} added, {report.changed} changed, "
            f"{report.removed} removed, {report.unchanged} unchanged; embedded "
            f"{report.chunks_embedded} chunks ({rate:,.1f}/s); {report.documents} documents, "
            f"{report.chunks} chunks in {report.seconds:.1f}s."
        )
    if ray is not None:
        click.echo(f"Ray ({ray['address']}): {ray['nodes']} node(s), {ray['workers']} worker(s) embedded.")
    if report.failures:
        click.echo(f"{len(report.failures)} file(s) skipped.")


@cli.command("info")
@index_option
@milvus_options
def info_command(index_dir: Path, milvus_uri: str | None, milvus_collection: str | None) -> None:
    """Show the live generation's manifest, counts and sizes on disk (none for an index in Milvus)."""
    with domain_errors():
        directory = open_target(index_dir, None, milvus_uri, milvus_collection)
        generation = directory.current()
    sizes = {p.name: p.stat().st_size for p in generation.path.iterdir() if p.is_file()} if milvus_uri is None else {}
    info = {"index": str(index_dir) if milvus_uri is None else str(directory.path), "generation": generation.name,
            "generations": directory.generations(), "sizes": sizes, "manifest": generation.manifest}
    click.echo(json.dumps(info, ensure_ascii=False, indent=2))


@cli.command("check")
@index_option
@click.option("--all", "every", is_flag=True, help="Check every generation on disk, not only the live one.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems per generation as JSON.")
def check_command(index_dir: Path, every: bool, as_json: bool) -> None:
    """Verify an index: manifest checksums, SQLite integrity, FAISS loadability.

    Exits with 1 when a generation is damaged, naming each damaged file.
    """
    with domain_errors():
        results = check_index(IndexDirectory(index_dir), every=every)
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for name, problems in results.items():
            click.echo(f"{name}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
            for problem in problems:
                click.echo(f"  {problem}")
    if any(results.values()):
        sys.exit(1)


@cli.command("search")
@click.argument("query")
@index_option
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--source", default=None, help="Only documents whose source path starts with this.")
@click.option("--language", type=click.Choice(["ja", "en"]), default=None)
@click.option("--tag", "tags", multiple=True, help="Only documents with any of these tags.")
@milvus_options
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search_command(query: str, index_dir: Path, mode: str, k: int, source: str | None,
                   language: str | None, tags: tuple[str, ...], milvus_uri: str | None,
                   milvus_collection: str | None, as_json: bool) -> None:
    """Search the index from the terminal."""
    with domain_errors():
        generation = open_target(index_dir, None, milvus_uri, milvus_collection).current()
        searcher = Searcher(generation, load_manifest_embedder(generation.manifest["model"]))
        hits = searcher.search(query, mode=mode, k=k,
                               filters=Filters(source=source, language=language, tags=tags))
    if as_json:
        click.echo(json.dumps([hit.__dict__ for hit in hits], ensure_ascii=False, indent=2))
        return
    table = Table("#", "score", "title", "source", "text")
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())[:120]
        table.add_row(str(rank), f"{hit.score:.4f}", hit.title, hit.source, snippet)
    Console().print(table)


def main() -> None:
    cli()
