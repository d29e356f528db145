"""The full `yomitoki` command: the indexer's commands plus the server's."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from indexer.cli import cli, domain_errors, index_option, milvus_options, reranker_options
from indexer.embed.base import DEFAULT_EMBEDDER
from indexer.errors import InputError
from indexer.text import file_cache
from server import keys_cli  # noqa: F401  (registers `yomitoki keys`)
from server.answering.loading import check_generator, generator_name
from server.auth import KeysFileError, collect_keys, file_keys
from server.cross_site import host_name, is_loopback
from server.entities_cli import entities_command, train_entities_command
from server.nlp.entities import parse_ner_models
from server.request_log import log_config
from server.settings import DEFAULTS, WORKER_SETTINGS_ENV, ServerSettings, parse_languages


def generator_options(command: Any) -> Any:
    """--generator-model, --generator-languages and --generator-threads."""
    for option in reversed([
        click.option("--generator-model", default=None, envvar="YOMITOKI_GENERATOR_MODEL",
                     help="The upstream's model name, for --generator openai:BASE_URL."),
        click.option("--generator-languages", default=None, envvar="YOMITOKI_GENERATOR_LANGUAGES",
                     metavar="ja,en", help="Languages `auto` generates answers in; it answers questions in "
                                           "others extractively. Default: ja,en, but none for the bundled "
                                           "SmolLM2 (it writes only when asked: mode generative; "
                                           "`--generator-languages en` lets `auto` use it)."),
        click.option("--generator-threads", default=None, type=click.IntRange(1, 256),
                     help="llama.cpp threads for a GGUF generator; default 1 (faster than 2 when searches "
                          "share the cores; see the README)."),
    ]):
        command = option(command)
    return command


@cli.command("serve")
@index_option
@milvus_options
@click.option("--host", default=DEFAULTS.host, show_default=True)
@click.option("--port", default=DEFAULTS.port, show_default=True, type=click.IntRange(0, 65535))
@click.option("--model", default=None, envvar="YOMITOKI_MODEL",
              help="Embedding model; default: the one the index was built with.")
@click.option("--threads", default=DEFAULTS.threads, show_default=True, type=click.IntRange(1, 256),
              help="Threads for model inference.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--api-key", "api_keys", multiple=True, metavar="[read:]KEY",
              help="Require this API key (repeatable; admin scope unless prefixed `read:`). "
                   "Also from YOMITOKI_API_KEYS (comma-separated).")
@click.option("--api-keys-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="YOMITOKI_API_KEYS_FILE",
              help="File of `sha256:HEX SCOPE [label]` lines: hashed API keys with scope read or admin. "
                   "Read again whenever it changes (`yomitoki keys add/remove` need no restart).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Allow browsers on this origin (e.g. https://app.example.com) to call the API; "
                   "repeatable. CORS is off by default.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Without API keys on a loopback address, only requests addressed to this machine are answered "
                   "(no DNS rebinding); also answer this Host (a proxy on this machine that passes its own name "
                   "on). Repeatable.")
@click.option("--max-in-flight", default=DEFAULTS.max_in_flight, show_default=True, type=click.IntRange(1, 100_000),
              help="Requests handled at once per endpoint; more get 503 with Retry-After.")
@click.option("--sts-model", default=None, envvar="YOMITOKI_STS_MODEL",
              help="Cross-encoder for /similarity (a sentence-transformers CrossEncoder: path or hub id); "
                   "loaded on first use. Without it, /similarity uses embedding cosine.")
@click.option("--classifier-model", default=None, envvar="YOMITOKI_CLASSIFIER_MODEL",
              help="Fine-tuned transformers sequence-classification model for /classify (path or hub id); "
                   "loaded on first use, labels from its config.")
@click.option("--qa-model", default=None, envvar="YOMITOKI_QA_MODEL",
              help="Extractive QA model for /ask (a transformers question-answering model: path or hub id); "
                   "loaded on first use. Without it, extractive answers are the best-supported sentence.")
@click.option("--generator", default=DEFAULTS.generator, envvar="YOMITOKI_GENERATOR", show_default=True,
              help="Generation model for /ask and /v1/chat/completions: the bundled name or a .gguf file "
                   "(run by llama.cpp), openai:BASE_URL (an OpenAI-compatible server, with --generator-model; "
                   "key from YOMITOKI_GENERATOR_API_KEY), a transformers folder or hub id; `none` switches "
                   "generation off. Loaded on first use.")
@generator_options
@reranker_options
@click.option("--ner-model", "ner_models", multiple=True, metavar="[LANG=]PATH_OR_ID",
              help="Entity model for /entities in a language (repeat per language): a transformers "
                   "token-classification model or a spaCy pipeline. Japanese uses GiNZA (ja_ginza) unless given.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port, for throughput on several cores; each loads its own "
                   "models (memory × N). With N workers, give each fewer --threads (cores / N).")
def serve_command(index_dir: Path, milvus_uri: str | None, milvus_collection: str | None, host: str,
                  port: int, model: str | None, threads: int, workers: int,
                  log_level: str, api_keys: tuple[str, ...], api_keys_file: Path | None,
                  cors_origins: tuple[str, ...], allowed_hosts: tuple[str, ...], max_in_flight: int,
                  sts_model: str | None,
                  classifier_model: str | None, qa_model: str | None, generator: str, generator_model: str | None,
                  generator_languages: str | None, generator_threads: int | None,
                  reranker: str | None, reranker_backend: str, rerank_depth: int,
                  ner_models: tuple[str, ...]) -> None:
    """Serve the index over HTTP (OpenAPI page at /schema)."""
    import torch
    import uvicorn

    from indexer.search.opening import index_source
    from indexer.store.milvus import release
    from server.app import create_app, open_services
    from server.metrics import MULTIPROCESS_ENV

    torch.set_num_threads(threads)
    with domain_errors():
        check_workers(workers, milvus_uri)
    check_port_free(host, port)  # before seconds of loading models, not after
    with domain_errors():
        keys = collect_keys(api_keys, os.environ)
        if api_keys_file is not None and not (keys or file_keys(api_keys_file)):
            raise KeysFileError(f"keys file {api_keys_file} holds no keys, so every request would be refused: "
                                f"add one with `yomitoki keys add NAME --file {api_keys_file}`")
        ner = parse_ner_models(ner_models)
        file_cache.limit_bytes()  # documents written over HTTP may be scans or .doc files: fail now, not then
    settings = ServerSettings(index_dir=index_dir, milvus_uri=milvus_uri, milvus_collection=milvus_collection,
                              model=model, host=host, port=port, threads=threads,
                              api_keys=keys, api_keys_file=api_keys_file, cors_origins=cors_origins,
                              allowed_hosts=allowed_host_names(allowed_hosts) if is_loopback(host_name(host)) else None,
                              max_in_flight=max_in_flight,
                              sts_model=sts_model, classifier_model=classifier_model, qa_model=qa_model,
                              generator=generator, generator_model=generator_model,
                              generator_languages=parse_languages(generator_languages) if generator_languages else None,
                              generator_threads=generator_threads,
                              generator_api_key=os.environ.get("YOMITOKI_GENERATOR_API_KEY") or None,
                              reranker=reranker, reranker_backend=reranker_backend, rerank_depth=rerank_depth,
                              ner_models=tuple(ner.items()))
    with domain_errors():
        check_generator(settings.generator, settings.generator_options())
    common: dict[str, Any] = {
        "host": host, "port": port, "log_level": log_level, "log_config": log_config(log_level),
        "access_log": False,  # one line per request: request_log
        "limit_concurrency": settings.max_connections, "timeout_graceful_shutdown": int(settings.shutdown_grace_s)}
    if workers > 1:
        with domain_errors():
            # fail fast on the index; each worker loads the models itself
            index_source(settings.index_dir, settings.milvus_uri, settings.milvus_collection)
        if settings.milvus_uri:
            release(settings.milvus_uri)  # the workers open their own clients; this one would only idle
        os.environ[WORKER_SETTINGS_ENV] = settings.to_env()
        with tempfile.TemporaryDirectory(prefix="yomitoki-metrics-") as shared:
            os.environ[MULTIPROCESS_ENV] = shared  # every worker's figures in one /metrics (server/metrics.py)
            # a worker loading its models, or swapping in a big generation, may hold the GIL for seconds:
            # uvicorn's default 5 s ping would take that for a hang and restart it, over and over on a busy CPU
            with startup_failure(host, port):
                uvicorn.run("server.app:app_from_environment", factory=True, workers=workers,
                            timeout_worker_healthcheck=120, **common)
        return
    with domain_errors():
        services = open_services(settings)  # fail fast, before binding the port
    with startup_failure(host, port):
        uvicorn.run(create_app(settings, services), **common)


def check_workers(workers: int, milvus_uri: str | None) -> None:
    """Refuse several workers on a Milvus Lite file: each worker is a process, and the file admits one."""
    from indexer.store.milvus import is_lite

    if workers > 1 and milvus_uri and is_lite(milvus_uri):
        raise InputError(f"a Milvus Lite file ({milvus_uri}) admits one process, and each of the {workers} workers "
                         "is one: serve it with --workers 1, or keep the index on a Milvus server "
                         "(--milvus-uri http://HOST:19530)", field="--workers")


def allowed_host_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--allowed-host` values as the check compares them: a proxy's Host copied whole (`name:8443`,
    `[fd00::1]`) means its name."""
    names = tuple(host_name(value) for value in values)
    if bad := [value for value, name in zip(values, names, strict=True)
               if not name or any(mark in value for mark in "/@ ")]:  # a URL, not a Host
        raise click.BadParameter(f"{bad[0]!r} is not a host name", param_hint="'--allowed-host'")
    return names


def check_port_free(host: str, port: int) -> None:
    """Refuse a host and port this process cannot listen on (exit 1), saying which and why."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise click.BadParameter(f"cannot listen on {host!r}: {exc.strerror}", param_hint="'--host'") from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port in TIME_WAIT
        try:
            probe.bind(address)
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror}"
                + (" (another server is there: stop it or pick another --port)" if exc.errno == errno.EADDRINUSE
                   else "")) from exc


@contextlib.contextmanager
def startup_failure(host: str, port: int) -> Iterator[None]:
    """uvicorn's own exit when it cannot start (status 3, which `yomitoki index` uses for skipped files) as
    the command line's failure: status 1, after uvicorn's logged reason."""
    try:
        yield
    except SystemExit as exc:
        if exc.code in (None, 0):
            raise
        raise click.ClickException(f"the server could not start on {host}:{port} (the reason is logged above)") from exc


@cli.command("classify")
@click.argument("texts", nargs=-1)
@index_option
@click.option("--label", "labels", multiple=True, metavar="NAME[=DESCRIPTION]",
              help="Zero-shot: a label (repeat for each); text after = describes it and is embedded instead.")
@click.option("--template", default=None, help="Zero-shot: a template with {} for the label, e.g. "
                                               "'この文章は{}についてです' or 'This review is {}.'")
@click.option("--multi-label", is_flag=True, help="Score each label on its own instead of choosing one.")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Few-shot: labelled examples, .jsonl ({\"text\", \"label\"}) or text<TAB>label lines.")
@click.option("--classifier", default=None, help="A named classifier stored in the index (POST /classifiers).")
@click.option("--classifier-model", default=None, envvar="YOMITOKI_CLASSIFIER_MODEL",
              help="Fine-tuned transformers sequence-classification model (path or hub id).")
@click.option("--method", type=click.Choice(["auto", "zero-shot", "few-shot", "classifier", "fine-tuned"]),
              default="auto", show_default=True, help="Default: implied by the options given.")
@click.option("--model", default=None, help=f"Embedding model; default: the index's ({DEFAULT_EMBEDDER} without one).")
@click.option("--temperature", default=0.05, show_default=True, type=click.FloatRange(0.001, 10),
              help="Zero-shot: softmax temperature over cosine similarities.")
@click.option("--threshold", default=None, type=click.FloatRange(-1, 1),
              help="Zero-shot multi-label: the cosine that scores 0.5. Default: each label's own, read off the "
                   "model (the cosines it gives unrelated sentences).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def classify_command(texts: tuple[str, ...], index_dir: Path, labels: tuple[str, ...], template: str | None,
                     multi_label: bool, examples: Path | None, classifier: str | None,
                     classifier_model: str | None, method: str, model: str | None, temperature: float,
                     threshold: float | None, as_json: bool) -> None:
    """Classify TEXTS (or the lines of stdin): zero-shot labels, few-shot examples, a named
    classifier or a fine-tuned model, as POST /classify does."""
    import json
    import sys

    from rich.console import Console

    from server.nlp import cli_support as support
    from server.nlp.classifiers import ClassifierStore
    from server.nlp.finetuned import load_finetuned
    from server.nlp.ladder import Backends, ClassifyJob, classify
    from server.nlp.zero_shot import ZeroShotOptions

    inputs = list(texts) or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not inputs:
        raise click.UsageError("give texts as arguments or as lines on stdin")
    with support.task_errors():
        job = ClassifyJob(texts=inputs, labels=support.parse_labels(labels) if labels else None,
                          examples=support.read_examples(examples) if examples else None, classifier=classifier,
                          method=method, zero_shot=ZeroShotOptions(template, multi_label, temperature, threshold))  # type: ignore[arg-type]
        embedder = support.lazy(lambda: support.load_index_embedder(index_dir, model))
        finetuned = support.lazy(lambda: load_finetuned(classifier_model)) if classifier_model else None
        result = classify(job, Backends(embedder=embedder, store=ClassifierStore.for_index(index_dir),
                                        finetuned=finetuned))
    if as_json:
        click.echo(json.dumps(support.classification_json(inputs, result), ensure_ascii=False, indent=2))
    else:
        Console().print(support.classification_table(inputs, result))


@cli.command("models")
@index_option
@click.option("--model", default=None, envvar="YOMITOKI_MODEL",
              help=f"Embedding model; default: the index's ({DEFAULT_EMBEDDER} without one).")
@click.option("--sts-model", default=None, envvar="YOMITOKI_STS_MODEL", help="Cross-encoder for /similarity.")
@click.option("--classifier-model", default=None, envvar="YOMITOKI_CLASSIFIER_MODEL",
              help="Fine-tuned sequence-classification model.")
@click.option("--qa-model", default=None, envvar="YOMITOKI_QA_MODEL", help="Extractive QA model.")
@click.option("--generator", default=None, envvar="YOMITOKI_GENERATOR",
              help="Generation model; default: the server's default.")
@click.option("--ner-model", "ner_models", multiple=True, metavar="[LANG=]PATH_OR_ID",
              help="Entity model for a language, as serve takes it. Japanese: GiNZA (ja_ginza) unless given.")
@click.option("--json", "as_json", is_flag=True, help="Print models and caches as JSON.")
def models_command(index_dir: Path, model: str | None, sts_model: str | None, classifier_model: str | None,
                   qa_model: str | None, generator: str | None, ner_models: tuple[str, ...], as_json: bool) -> None:
    """What each model is (source, parameters, size, dimensions, window, tokenizer, special tokens),
    read from its files without loading it, and the local model caches."""
    import dataclasses
    import json

    from rich.console import Console

    from server.nlp import cli_support as support
    from server.nlp.entities import configured_models, parse_ner_models
    from server.nlp.model_caches import hub_cache_dir, local_caches
    from server.nlp.model_info import configured_facts

    with support.task_errors():
        roles = {"embedding": support.embedding_model_name(index_dir, model), "sts": sts_model,
                 "classifier": classifier_model, "qa": qa_model, "generator": generator or DEFAULTS.generator,
                 **{f"ner.{lang}": name for lang, name in configured_models(parse_ner_models(ner_models)).items()}}
        facts = configured_facts({role: name for role, name in roles.items() if name})
        caches = local_caches()
    if as_json:
        payload = {"models": [dataclasses.asdict(f) for f in facts], "caches": [dataclasses.asdict(c) for c in caches],
                   "hub_cache": str(hub_cache_dir())}
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    console = Console()
    for table in support.models_tables(facts):
        console.print(table)
    console.print(support.caches_table(caches, hub_cache_dir()))


@cli.command("ask")
@click.argument("question")
@index_option
@milvus_options
@click.option("--mode", type=click.Choice(["auto", "extractive", "generative"]), default="auto",
              show_default=True, help="auto: generative when the generator loads and is set to answer the "
                                      "question's language (the bundled SmolLM2 is not, unless "
                                      "--generator-languages says so), else extractive.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 20), help="Passages to retrieve.")
@click.option("--qa-model", default=None, envvar="YOMITOKI_QA_MODEL",
              help="Extractive QA model (path or hub id); without it, the best-supported sentence.")
@click.option("--generator", default=DEFAULTS.generator, envvar="YOMITOKI_GENERATOR", show_default=True,
              help="Generation model (bundled name, folder, .gguf file or hub id); `none` switches it off.")
@generator_options
@reranker_options
@click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(1, 512),
              help="Most tokens to generate.")
@click.option("--source", default=None, help="Only documents whose source path starts with this.")
@click.option("--language", type=click.Choice(["ja", "en"]), default=None)
@click.option("--tag", "tags", multiple=True, help="Only documents with any of these tags.")
@click.option("--json", "as_json", is_flag=True, help="Print the full response as JSON.")
def ask_command(question: str, index_dir: Path, mode: str, k: int, qa_model: str | None, generator: str,
                generator_model: str | None, generator_languages: str | None, generator_threads: int | None,
                reranker: str | None, reranker_backend: str, rerank_depth: int, max_tokens: int,
                source: str | None,
                language: str | None, tags: tuple[str, ...], milvus_uri: str | None,
                milvus_collection: str | None, as_json: bool) -> None:
    """Answer QUESTION from the indexed documents, citing the passages it came from."""
    from indexer.store.sqlite import Filters
    from server.answering import Question, ask_locally

    if mode == "generative" and generator_name(generator) is None:  # before the index and its model load
        raise click.UsageError(f"--mode generative needs a generator; --generator is {generator!r}")
    ask = Question(text=question, mode=mode, k=k, max_tokens=max_tokens,
                   filters=Filters(source=source, language=language, tags=tags))
    with domain_errors():
        options = ServerSettings(
            index_dir=index_dir, generator_model=generator_model, generator_threads=generator_threads,
            generator_languages=parse_languages(generator_languages) if generator_languages else None,
            generator_api_key=os.environ.get("YOMITOKI_GENERATOR_API_KEY") or None).generator_options()
        check_generator(generator, options)
        ask_locally(index_dir, ask, qa_model=qa_model, generator=generator, as_json=as_json,
                    milvus_uri=milvus_uri, milvus_collection=milvus_collection, options=options,
                    reranker=reranker, reranker_backend=reranker_backend, rerank_depth=rerank_depth)


cli.add_command(entities_command)
cli.add_command(train_entities_command)


def main() -> None:
    cli()
