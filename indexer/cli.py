"""The `yomitoki` command line: the indexer's commands.

Each command opens what it needs, calls one library function and turns
domain errors into `click.ClickException`. The server package adds its own
commands (`serve`, `ask`, …) to the same group in `server.cli`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from indexer.build.builder import BuildOptions, BuildReport, IndexBuilder
from indexer.build.distributed import RayPreparer, ray_preparer
from indexer.build.distributed import connect as connect_ray
from indexer.build.watching import describe, watch_corpus
from indexer.build.writes import manifest_chunking
from indexer.embed.base import RUNTIMES
from indexer.embed.cross_encoder import RUNTIMES as RERANKER_RUNTIMES
from indexer.embed.loading import load_embedder
from indexer.embed.locations import locate_embedder
from indexer.embed.selection import choose_embedder
from indexer.errors import NotFoundError, YomitokiError
from indexer.ner.index_entities import ChunkEntities
from indexer.search.opening import open_index, read_target
from indexer.search.rerank import DEFAULT_DEPTH, MAX_DEPTH, Reranking, load_reranker
from indexer.search.searcher import MAX_RESULTS, MODES, Hit
from indexer.store.base import STORE_KINDS
from indexer.store.factory import open_target
from indexer.store.generations import BuildInProgressError, IndexDirectory, IndexStateError, built_manifest
from indexer.store.integrity import check_index
from indexer.store.manifest import manifest_dict
from indexer.store.sqlite import Filters
from indexer.store.vectors import INDEX_TYPES, KEEP
from indexer.store.where import FilterError, parse_json
from indexer.text.chunking import ChunkSettings
from indexer.text.exclusions import corpus_exclusions
from indexer.text.keywords import load_keyword_tokenizer
from indexer.text.loaders import discover_files

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


def reranker_options(command: Any) -> Any:
    """--reranker, --reranker-backend and --rerank-depth, shared by search, ask and serve."""
    command = click.option(
        "--reranker-backend", type=click.Choice(RERANKER_RUNTIMES), default="torch", show_default=True,
        envvar="YOMITOKI_RERANKER_BACKEND",
        help="How the reranker runs: torch, or exported once to ONNX (onnx, onnx-int8: faster on CPUs).")(command)
    command = click.option(
        "--rerank-depth", default=DEFAULT_DEPTH, show_default=True, type=click.IntRange(1, MAX_DEPTH),
        envvar="YOMITOKI_RERANK_DEPTH", help="Results the reranker reads per query.")(command)
    return click.option(
        "--reranker", default=None, envvar="YOMITOKI_RERANKER", metavar="PATH_OR_HUB_ID",
        help="Cross-encoder that re-orders the first results (a sentence-transformers CrossEncoder with one "
             "output: a local folder or hub id; none ships offline). Loaded on first use.")(command)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the product's errors into clean command-line messages, exiting with each one's code.

    A bare ValueError from the library is a setting it refused (a chunk size, an
    index type): a message too, with exit code 1.
    """
    try:
        yield
    except YomitokiError as exc:
        if exc.exit_code == click.UsageError.exit_code:  # bad input: exit 2, as click's own usage errors
            raise click.UsageError(str(exc)) from exc
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
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
@click.option("--max-tokens", type=click.IntRange(min=1), default=None,
              help="Chunk size in model tokens. Default: the index's, else 200.")
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Overlap between chunks, in tokens. Default: the index's, else 40.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Embedding batch size. Default: the backend's fastest (16 for torch, 8 for onnx-int8).")
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks that lead outside CORPUS.")
@click.option("--images", is_flag=True,
              help="Also read image files (.png, .jpg, .jpeg, .tif, .tiff) as scanned pages, by OCR (needs "
                   "tesseract-ocr). Scanned PDFs are read by OCR without it.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Leave out the files and folders this .gitignore pattern matches, relative to CORPUS "
                   "(repeatable; added to CORPUS/.yomitokiignore), e.g. --exclude 'node_modules/' --exclude '*.json'.")
@click.option("--backend", type=click.Choice(RUNTIMES), default=None,
              help="How the model runs: torch (float32), torch-bf16 (≈ 1.7–1.8× faster where the CPU has AMX or "
                   "AVX512-BF16), onnx, or onnx-int8 (≈ 2.8× faster on any CPU, cosine ≥ 0.99 to torch; "
                   "exported once and cached). Default: the index's backend, else torch.")
@click.option("--index-type", type=click.Choice(["auto", *INDEX_TYPES]), default=None,
              help="Vector index: flat (exact), hnsw, ivfpq (compressed, re-scored exactly), or auto by size. "
                   "Default: the type the index was given, else auto.")
@click.option("--store", type=click.Choice(STORE_KINDS), default=None,
              help="Where the index lives: embedded (FAISS + SQLite in --index) or milvus (needs --milvus-uri). "
                   "Default: milvus when --milvus-uri is given, else embedded.")
@milvus_options
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Load, chunk and embed on a Ray cluster (auto, HOST:PORT or ray://HOST:PORT; needs the "
                   "'scale' extra). CORPUS must be at the same path on every node. See docs/scaling.md.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None,
              help="Embedding actors on the Ray cluster, one CPU each. Default: one per CPU of the cluster.")
@click.option("--entities", "with_entities", is_flag=True,
              help="Extract named entities per chunk, for entity filters in search (embedded store, local builds). "
                   "Give it on every run: switching it on or off re-processes every document.")
@click.option("--entity-model", default=None, metavar="NAME_OR_PATH",
              help="Entity model for --entities: a model trained with train-entities, a spaCy pipeline or a "
                   "transformers token classifier. Default: ja_ginza.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.option("--watch", is_flag=True,
              help="After indexing, keep watching CORPUS and re-index on changes (one line per generation).")
@click.option("--settle", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="With --watch: seconds a changed file must stay unchanged before it is indexed.")
def index_command(corpus: Path, index_dir: Path, model: str | None, rebuild: bool, max_tokens: int | None,
                  overlap: int | None, batch_size: int | None, follow_symlinks: bool, images: bool,
                  exclude: tuple[str, ...], backend: str | None, index_type: str | None,
                  ray_address: str | None, ray_workers: int | None, store: str | None, milvus_uri: str | None,
                  milvus_collection: str | None, with_entities: bool, entity_model: str | None,
                  as_json: bool, watch: bool, settle: float) -> None:
    """Index the files under CORPUS into --index.

    Formats: .md, .txt, .html, .json, .jsonl, .csv, .tsv, .xlsx, .xls, .pdf, .docx, .doc, .pptx, .ppt; with --images,
    .png, .jpg, .tif.

    Re-running it embeds only new or changed documents and drops documents
    whose files are gone. Exits with 3 when some files were skipped.
    """
    with domain_errors():
        # a pattern that is wrong, in --exclude or any .yomitokiignore, fails before models load
        discover_files(corpus, follow_symlinks=follow_symlinks, exclusions=corpus_exclusions(corpus, exclude))
        if ray_address:
            connect_ray(ray_address)  # first: an unreachable cluster fails in seconds, before models load
        directory = open_target(index_dir, store, milvus_uri, milvus_collection)
        name = model or choose_embedder(directory, corpus, rebuild=rebuild)
        embedder = load_embedder(name, runtime=backend or _index_backend(directory, name, rebuild), bulk=True)
        options = BuildOptions(chunking=_index_chunking(directory, rebuild, max_tokens, overlap), rebuild=rebuild,
                               batch_size=batch_size, follow_symlinks=follow_symlinks, exclude=exclude,
                               images=images, index_type=index_type or KEEP)
        keywords = load_keyword_tokenizer(_index_keywords(directory, rebuild))
        preparing: AbstractContextManager[RayPreparer | None] = nullcontext()
        if ray_address:
            preparing = ray_preparer(ray_address, corpus, embedder, keywords, options, workers=ray_workers)
        entities = _entities(index_dir, entity_model) if with_entities or entity_model else None
        progress, update = _progress()
        with preparing as preparer, progress:
            builder = IndexBuilder(directory, embedder, keywords, options, update, preparer, entities=entities)
            report = builder.build(corpus)
    _print_report(report, as_json, preparer.summary() if preparer else None)
    if watch:
        _watch(corpus, IndexBuilder(directory, embedder, keywords, replace(options, rebuild=False), entities=entities),
               settle)
    if report.failures:
        sys.exit(EXIT_SKIPPED)


def _watch(corpus: Path, builder: IndexBuilder, settle: float) -> None:
    """Re-index on every settled change until interrupted; a failed build is reported and watching goes on,
    until the folder itself is gone."""
    click.echo(f"Watching {corpus} for changes (Ctrl-C to stop).", err=True)

    def build() -> BuildReport | None:
        while True:
            if not corpus.is_dir():
                raise click.ClickException(f"the watched folder {corpus} is gone (moved or deleted): stopped watching")
            try:
                return builder.build(corpus)
            except BuildInProgressError as exc:  # another build holds the lock: try again shortly
                console.print(f"[yellow]waiting[/] {exc}")
                time.sleep(settle)
            except YomitokiError as exc:  # an ignore file edited into something wrong, say: wait for a fix
                if not corpus.is_dir():
                    continue  # gone while it was read: say so above
                console.print(f"[red]not indexed[/] {exc}")
                return None

    def report(done: BuildReport | None) -> None:
        if done is None:
            return
        click.echo(describe(done))
        for failure in done.failures:
            console.print(f"[yellow]skipped[/] {failure.path}: {failure.reason}")

    watch_corpus(corpus, build, report, exclude=builder.options.exclude, images=builder.options.images,
                 settle_s=settle, on_error=lambda message: console.print(f"[yellow]watching[/] {message}"))


def _entities(index_dir: Path, name: str | None) -> ChunkEntities:
    """The entity extractor: a model trained beside the index by that name, else any entity model."""
    from indexer.ner.pipelines import EntityModelLoadError

    try:
        return ChunkEntities.find(index_dir, name)
    except EntityModelLoadError as exc:
        raise ValueError(str(exc)) from exc


def _index_chunking(directory: IndexDirectory, rebuild: bool, max_tokens: int | None,
                    overlap: int | None) -> ChunkSettings:
    """The chunk sizes given, else the live generation's (a re-run that names none re-embeds nothing), else 200/40."""
    live = None if rebuild else built_manifest(directory)
    built = manifest_chunking(live) if live is not None else ChunkSettings()
    return ChunkSettings(max_tokens if max_tokens is not None else built.max_tokens,
                         overlap if overlap is not None else built.overlap)


def _index_keywords(directory: IndexDirectory, rebuild: bool) -> dict[str, object] | None:
    """The keyword tokenizer settings of the live generation (so an update is searched as it was
    built, without re-embedding a word); None for the current default."""
    live = None if rebuild else built_manifest(directory)
    return live.keywords if live is not None else None


def _index_backend(directory: IndexDirectory, name: str, rebuild: bool) -> str | None:
    """The backend the live generation was built with, when it used this model (to keep updates alike, and a
    `--rebuild` that names no backend)."""
    live = built_manifest(directory)
    return live.model.backend if live is not None and locate_embedder(name).name == live.model.name else None


def _print_report(report: BuildReport, as_json: bool, ray: dict[str, Any] | None = None) -> None:
    if as_json:
        payload = {**report.__dict__, "failures": [f.__dict__ for f in report.failures]}
        if ray is not None:
            payload["ray"] = ray
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for failure in report.failures:
        console.print(f"[yellow]skipped[/] {failure.path}: {failure.reason}")
    if not report.published:
        click.echo(describe(report))
    else:
        rate = report.chunks_embedded / report.embed_seconds if report.embed_seconds else 0.0
        click.echo(
            f"{report.generation}: {report.added} added, {report.changed} changed, "
            f"{report.removed} removed, {report.unchanged} unchanged; embedded "
            f"{report.chunks_embedded} chunks ({rate:,.1f}/s); {report.documents} documents, "
            f"{report.chunks} chunks in {report.seconds:.1f}s."
        )
        if report.entity_seconds:
            rate = report.entity_chunks / report.entity_seconds
            click.echo(f"Entities: {report.entity_chunks} chunks ({rate:,.1f}/s).")
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
        directory = read_target(index_dir, milvus_uri, milvus_collection)
        generation = directory.current()
    sizes = {p.name: p.stat().st_size for p in generation.path.iterdir() if p.is_file()} if milvus_uri is None else {}
    info = {"index": str(index_dir) if milvus_uri is None else str(directory.path), "generation": generation.name,
            "generations": directory.generations(), "sizes": sizes, "manifest": manifest_dict(generation.manifest)}
    click.echo(json.dumps(info, ensure_ascii=False, indent=2))


@cli.command("check")
@index_option
@click.option("--all", "every", is_flag=True, help="Check every generation on disk, not only the live one.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems per generation as JSON "
              "({\"error\": …} when there is no index or no live generation).")
def check_command(index_dir: Path, every: bool, as_json: bool) -> None:
    """Verify an index: manifest checksums, SQLite integrity, FAISS loadability.

    Exits with 1 when a generation is damaged, naming each damaged file.
    """
    with domain_errors():
        try:
            results = check_index(IndexDirectory(index_dir), every=every)
        except IndexStateError as exc:  # no index there, or nothing live: still JSON for a script that asked
            if not as_json:
                raise
            click.echo(json.dumps({"error": str(exc)}, ensure_ascii=False, indent=2))
            sys.exit(1)
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
@click.option("--where", "where_text", default=None, metavar="JSON",
              help='A filter on any field or metadata, e.g. \'{"field": "metadata.year", "gte": 2020}\'.')
@click.option("--offset", type=click.IntRange(0, MAX_RESULTS - 1), default=None, help="Skip this many results.")
@click.option("--collapse", is_flag=True, help="Each document once, with its best chunk.")
@milvus_options
@reranker_options
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search_command(query: str, index_dir: Path, mode: str, k: int, source: str | None,
                   language: str | None, tags: tuple[str, ...], where_text: str | None, offset: int | None,
                   collapse: bool, milvus_uri: str | None, milvus_collection: str | None,
                   reranker: str | None, reranker_backend: str, rerank_depth: int, as_json: bool) -> None:
    """Search the index from the terminal."""
    if (offset or 0) + k > MAX_RESULTS:  # as over HTTP: a ranking goes no deeper
        raise click.BadParameter(f"--offset + -k must be at most {MAX_RESULTS}, got {offset} + {k}",
                                 param_hint="--offset")
    try:
        where = None if where_text is None else parse_json(where_text, "--where")
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from exc
    with domain_errors():
        reranking = Reranking(load_reranker(reranker, reranker_backend), rerank_depth) if reranker else None
        searcher = open_index(index_dir, milvus_uri=milvus_uri, milvus_collection=milvus_collection)
        try:
            filters = Filters(source=source, language=language, tags=tags, expression=where)
            results = searcher.find(query, mode=mode, k=k, offset=offset, filters=filters, collapse=collapse,
                                    reranking=reranking)
            hits = results.hits
        finally:
            searcher.close()
    _print_hits(hits, as_json, f"searched as: {results.read_as}" if results.read_as else None,
                reranked=reranking is not None)


@cli.command("related")
@click.argument("document")
@index_option
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--source", default=None, help="Only documents whose source path starts with this.")
@click.option("--language", type=click.Choice(["ja", "en"]), default=None)
@milvus_options
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def related_command(document: str, index_dir: Path, k: int, source: str | None, language: str | None,
                    milvus_uri: str | None, milvus_collection: str | None, as_json: bool) -> None:
    """Documents on the subject of DOCUMENT (its key or id), in any language, each once by its closest chunk."""
    with domain_errors():
        searcher = open_index(index_dir, milvus_uri=milvus_uri, milvus_collection=milvus_collection)
        try:
            doc = next(searcher.documents_named(document), None)
            if doc is None:
                raise NotFoundError(f"no document with id or key {document!r}")
            hits = searcher.related(doc.id, k=k, filters=Filters(source=source, language=language))
        finally:
            searcher.close()
    _print_hits(hits, as_json, f"related to: {doc.title or doc.key}")


def _print_hits(hits: list[Hit], as_json: bool, title: str | None, *, reranked: bool = False) -> None:
    """Hits as a table (or JSON rows) for the terminal."""
    if as_json:
        rows = [{**{name: value for name, value in hit.__dict__.items() if name != "page_starts"},
                 "page": hit.page} for hit in hits]  # as over HTTP
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("#", "score", *(["rerank"] if reranked else []), "title", "key", "page", "text", title=title)
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())[:120]
        page = "-".join(str(p) for p in dict.fromkeys((hit.pages[0], hit.pages[-1]))) if hit.pages else ""
        rerank = [] if not reranked else ["" if hit.rerank_score is None else f"{hit.rerank_score:.4f}"]
        table.add_row(str(rank), f"{hit.score:.4f}", *rerank, hit.title, hit.key, page, snippet)
    Console().print(table)

