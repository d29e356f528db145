"""What handlers depend on, opened once per app in the lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from indexer.embed.base import Embedder
from server.live_index import LiveIndex
from server.metrics import Metrics
from server.model_registry import ModelRegistry
from server.settings import ServerSettings


@dataclass
class Services:
    settings: ServerSettings
    embedder: Embedder
    index: LiveIndex
    models: ModelRegistry = field(default_factory=ModelRegistry)  # lazily loaded extra models
    started: float = field(default_factory=time.monotonic)
    extras: dict[str, Any] = field(default_factory=dict)  # per-feature state (models, batchers)
    metrics: Metrics = field(default_factory=Metrics)  # what /metrics reports
