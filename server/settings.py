"""Server settings: one typed object, built at the entry point and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    sts_model: str | None = None          # sentence-transformers CrossEncoder for /similarity
    classifier_model: str | None = None   # transformers sequence-classification model
    ner_models: tuple[tuple[str, str], ...] = ()  # (language, model) for /entities; ja has GiNZA anyway
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
                          ("classifier_model", "YOMITOKI_CLASSIFIER_MODEL")):
            if env.get(name):
                values[key] = env[name]
        if env.get("YOMITOKI_API_KEYS"):
            values["api_keys"] = tuple(env_keys(env["YOMITOKI_API_KEYS"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
