"""Models loaded lazily, once, on first use, with their state for /health and /models.

A model that fails to load is remembered with its name and reason; requests
that need it get a 503 saying so, and everything else keeps working.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.errors import UnavailableError

log = logging.getLogger("yomitoki.models")


@dataclass
class LazyModel:
    role: str                      # e.g. "generator", "qa", "sts", "classifier"
    name: str                      # what the user configured: bundled name, path or hub id
    loader: Callable[[], Any]
    facts: dict[str, Any] = field(default_factory=dict)  # what is known without loading it
    _value: Any = None
    _error: str | None = None
    _load_seconds: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> Any:
        """The model, loading it on first call; raises UnavailableError if it cannot load."""
        if self._value is not None:
            return self._value
        with self._lock:
            if self._value is None and self._error is None:
                started = time.perf_counter()
                try:
                    self._value = self.loader()
                    self._load_seconds = round(time.perf_counter() - started, 2)
                    log.info("loaded %s model %s in %.1fs", self.role, self.name, self._load_seconds)
                except Exception as exc:
                    self._error = f"{type(exc).__name__}: {exc}"
                    log.error("cannot load %s model %s: %s", self.role, self.name, self._error)
        if self._error is not None:
            raise UnavailableError(f"{self.role} model {self.name!r} failed to load: {self._error}")
        return self._value

    def state(self) -> dict[str, object]:
        return {"name": self.name, "loaded": self.loaded, "error": self._error,
                "load_seconds": self._load_seconds}


class ModelRegistry:
    """The configured models by role; nothing is loaded until first asked for."""

    def __init__(self) -> None:
        self._models: dict[str, LazyModel] = {}

    def register(self, role: str, name: str, loader: Callable[[], Any], facts: dict[str, Any] | None = None) -> None:
        self._models[role] = LazyModel(role=role, name=name, loader=loader, facts=dict(facts or {}))

    def has(self, role: str) -> bool:
        return role in self._models

    def get(self, role: str) -> Any:
        if role not in self._models:
            raise UnavailableError(f"no {role} model is configured")
        return self._models[role].get()

    def entry(self, role: str) -> LazyModel | None:
        return self._models.get(role)

    def states(self) -> dict[str, dict[str, object]]:
        return {role: model.state() for role, model in self._models.items()}
