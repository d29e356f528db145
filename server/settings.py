"""Server settings: one typed object, built at the entry point and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServerSettings:
    index_dir: Path
    model: str | None = None              # None: the model named in the index's manifest
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 2                      # torch / BLAS threads for model inference
    reload_interval: float = 1.0          # seconds between checks for a newly published generation
    qa_model: str | None = None           # transformers question-answering model (path or hub id)
    generator: str | None = "smollm2-135m-instruct"
    sts_model: str | None = None          # sentence-transformers CrossEncoder for /similarity
    classifier_model: str | None = None   # transformers sequence-classification model
    max_body_bytes: int = 2_000_000
    cors_origins: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Settings from YOMITOKI_* variables; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"index_dir": Path(env.get("YOMITOKI_INDEX", "index"))}
        for key, name in (("model", "YOMITOKI_MODEL"), ("qa_model", "YOMITOKI_QA_MODEL"),
                          ("generator", "YOMITOKI_GENERATOR"), ("sts_model", "YOMITOKI_STS_MODEL"),
                          ("classifier_model", "YOMITOKI_CLASSIFIER_MODEL")):
            if env.get(name):
                values[key] = env[name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
