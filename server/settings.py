"""Server settings: one typed object, built at the entry point and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.answering.models import GeneratorOptions
from server.auth import ApiKey, env_keys


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
    sts_model: str | None = None          # sentence-transformers CrossEncoder for /similarity
    classifier_model: str | None = None   # transformers sequence-classification model
    max_body_bytes: int = 2_000_000
    cors_origins: tuple[str, ...] = ()
    api_keys: tuple[ApiKey, ...] = field(default=(), repr=False)  # hashes only (server/auth.py)
    max_in_flight: int = 32               # per endpoint; past it an immediate 503 with Retry-After
    max_connections: int = 1000           # open connections before uvicorn itself answers 503
    shutdown_grace_s: float = 10.0        # SIGTERM: seconds to let in-flight requests finish

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Settings from YOMITOKI_* variables; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"index_dir": Path(env.get("YOMITOKI_INDEX", "index"))}
        for key, name in (("model", "YOMITOKI_MODEL"), ("milvus_uri", "YOMITOKI_MILVUS_URI"),
                          ("milvus_collection", "YOMITOKI_MILVUS_COLLECTION"), ("qa_model", "YOMITOKI_QA_MODEL"),
                          ("generator", "YOMITOKI_GENERATOR"), ("sts_model", "YOMITOKI_STS_MODEL"),
                          ("generator_model", "YOMITOKI_GENERATOR_MODEL"),
                          ("generator_api_key", "YOMITOKI_GENERATOR_API_KEY"),
                          ("classifier_model", "YOMITOKI_CLASSIFIER_MODEL")):
            if env.get(name):
                values[key] = env[name]
        if env.get("YOMITOKI_GENERATOR_LANGUAGES"):
            values["generator_languages"] = parse_languages(env["YOMITOKI_GENERATOR_LANGUAGES"])
        if env.get("YOMITOKI_API_KEYS"):
            values["api_keys"] = tuple(env_keys(env["YOMITOKI_API_KEYS"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def generator_options(self) -> GeneratorOptions:
        return GeneratorOptions(model=self.generator_model, languages=self.generator_languages,
                                api_key=self.generator_api_key,
                                **({"threads": self.generator_threads} if self.generator_threads else {}))


def parse_languages(value: str) -> tuple[str, ...]:
    """`ja,en` → ("ja", "en")."""
    return tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
