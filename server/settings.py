"""Server settings: one typed object, built at the entry point and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from indexer.search.rerank import DEFAULT_DEPTH
from server.answering.loading import GeneratorOptions
from server.auth import ApiKey

WORKER_SETTINGS_ENV = "YOMITOKI_WORKER_SETTINGS"  # how `serve --workers N` hands its settings to each process


@dataclass(frozen=True)
class ServerSettings:
    index_dir: Path
    milvus_uri: str | None = None         # serve an index kept in Milvus (server URI or Milvus Lite file)
    milvus_collection: str | None = None  # its alias; None: derived from index_dir's name
    model: str | None = None              # None: the model named in the index's manifest
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 2                      # torch / BLAS threads for model inference
    reload_interval: float = 1.0          # seconds between checks for a newly published generation
    qa_model: str | None = None           # transformers question-answering model (path or hub id)
    generator: str | None = "smollm2-135m-instruct"
    generator_model: str | None = None    # the upstream's model name, for generator openai:BASE_URL
    generator_languages: tuple[str, ...] | None = None  # what the generator writes; None: its own default
    generator_api_key: str | None = field(default=None, repr=False)  # the upstream's key; never logged
    generator_threads: int | None = None  # llama.cpp threads; None: llamacpp.DEFAULT_THREADS (1)
    reranker: str | None = None           # sentence-transformers CrossEncoder re-ranking search's first hits
    reranker_backend: str = "torch"       # how it runs: torch, onnx or onnx-int8
    rerank_depth: int = DEFAULT_DEPTH     # how many of them it reads per query
    sts_model: str | None = None          # sentence-transformers CrossEncoder for /similarity
    classifier_model: str | None = None   # transformers sequence-classification model
    ner_models: tuple[tuple[str, str], ...] = ()  # (language, model) for /entities; ja has GiNZA anyway
    max_body_bytes: int = 2_000_000
    cors_origins: tuple[str, ...] = ()
    # Host names besides this machine's that a keyless server answers (server/cross_site.py); None: any
    # (`yomitoki serve` checks them when bound to loopback)
    allowed_hosts: tuple[str, ...] | None = None
    api_keys: tuple[ApiKey, ...] = field(default=(), repr=False)  # hashes only (server/auth.py)
    api_keys_file: Path | None = None     # more keys, read again whenever the file changes (server/auth.py)
    max_in_flight: int = 32               # per endpoint; past it an immediate 503 with Retry-After
    max_connections: int = 1000           # open connections before uvicorn itself answers 503
    shutdown_grace_s: float = 10.0        # SIGTERM: seconds to let in-flight requests finish

    def to_env(self) -> str:
        """These settings as the value of WORKER_SETTINGS_ENV, for the workers of `serve --workers N`."""
        return msgspec.json.encode(self, enc_hook=str).decode("ascii")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        """The settings a `serve --workers N` process handed its workers (`to_env`)."""
        if WORKER_SETTINGS_ENV not in env:
            raise RuntimeError(f"{WORKER_SETTINGS_ENV} is not set: start workers with `yomitoki serve --workers N`")
        return msgspec.json.decode(env[WORKER_SETTINGS_ENV], type=cls, dec_hook=_decoded)

    def generator_options(self) -> GeneratorOptions:
        return GeneratorOptions(model=self.generator_model, languages=self.generator_languages,
                                api_key=self.generator_api_key,
                                **({"threads": self.generator_threads} if self.generator_threads else {}))


def _decoded(kind: type, value: object) -> object:
    """A value msgspec cannot decode itself: a Path from its text; an `object` field (ApiKey.where) as it is."""
    return value if kind is object else kind(value)


DEFAULTS = ServerSettings(index_dir=Path("index"))  # the command line's defaults


def parse_languages(value: str) -> tuple[str, ...]:
    """`ja,en` → ("ja", "en")."""
    return tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
