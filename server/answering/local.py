"""`yomitoki ask`: answering from an index on disk, without a server, streamed to the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click
import msgspec

from indexer.search.opening import open_index
from indexer.search.rerank import DEFAULT_DEPTH
from server.answering.loading import GeneratorOptions, register_models
from server.answering.pipeline import Answerer, AnswerSettings, Question
from server.answering.schemas import AskResponse
from server.model_registry import ModelRegistry
from server.nlp.loading import register_reranker


@contextmanager
def local_answerer(index_dir: Path, qa_model: str | None, generator: str | None, *,
                   milvus_uri: str | None = None, milvus_collection: str | None = None,
                   options: GeneratorOptions | None = None, reranker: str | None = None,
                   reranker_backend: str = "torch", rerank_depth: int = DEFAULT_DEPTH) -> Iterator[Answerer]:
    """An answerer over the live generation of an index (its folder, or Milvus); models load on first use."""
    searcher = open_index(index_dir, milvus_uri=milvus_uri, milvus_collection=milvus_collection)
    registry = ModelRegistry()
    register_models(registry, qa_model, generator, options)
    register_reranker(registry, reranker, reranker_backend)
    try:
        yield Answerer(lambda: nullcontext(searcher), registry, AnswerSettings(rerank_depth=rerank_depth))
    finally:
        searcher.close()


def describe_sources(response: AskResponse) -> str:
    """The reader and the passages behind an answer, one line each."""
    lines = [f"({response.mode}, {response.reader}, {response.took_ms:.0f} ms)"]
    for label, passages in (("cited", response.citations), ("also shown", response.uncited)):
        for p in passages:
            lines.append(f"  [{p.n}] {label}: {p.title} — {p.source} [{p.start}:{p.end}]")
    return "\n".join(lines)


def ask_locally(index_dir: Path, question: Question, *, qa_model: str | None, generator: str | None,
                as_json: bool, milvus_uri: str | None = None, milvus_collection: str | None = None,
                options: GeneratorOptions | None = None, reranker: str | None = None,
                reranker_backend: str = "torch", rerank_depth: int = DEFAULT_DEPTH) -> AskResponse:
    """Answer and print: the answer as it streams, then its sources (or the response as JSON)."""
    with local_answerer(index_dir, qa_model, generator, milvus_uri=milvus_uri, milvus_collection=milvus_collection,
                        options=options, reranker=reranker, reranker_backend=reranker_backend,
                        rerank_depth=rerank_depth) as answerer:
        for event in answerer.stream(question):
            if event.response is not None:
                if as_json:
                    click.echo(msgspec.json.format(msgspec.json.encode(event.response).decode(), indent=2))
                else:
                    click.echo("\n\n" + describe_sources(event.response))
                return event.response
            if not as_json:
                click.echo(event.text, nl=False)
    raise RuntimeError("the answer stream ended without a response")
