"""Exporting a sentence-transformers model to ONNX once, cached by the model's fingerprint.

    model folder ─ torch.onnx.export (encoder + pooling + L2 norm) ─ model.onnx
                 ─ onnxruntime transformer fusions ─ quantize_dynamic (int8) ─ model-int8.onnx

A cross-encoder (`kind="cross-encoder"`) is exported the same way, its graph
ending in the model's one score per pair after the activation its
sentence-transformers `CrossEncoder.predict` applies (a sigmoid, usually).

The files live in `~/.cache/yomitoki/onnx/<fingerprint>/` (or a folder the
caller names). The fingerprint covers the model's file names, sizes and
configs, so a changed model gets a fresh export and an unchanged one is never
exported twice, even by processes racing to do it (a file lock serializes them).
`files.json` records each file's size, checked at every use, and sha256, read
only when loading the export failed (`export_again_if_damaged`): a damaged
file is exported again rather than used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexer.embed.locations import fingerprint
from indexer.errors import UnavailableError
from indexer.store.generations import file_digest

ONNX_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
FILES = "files.json"  # each exported file's size and sha256

log = logging.getLogger(__name__)
EXPORT_VERSION = 3  # bump when the export recipe changes, so caches are not reused


class OnnxExportError(UnavailableError):
    """The model cannot be exported to ONNX; the message says why."""


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "yomitoki" / "onnx"


def model_layout(path: Path) -> dict[str, Any]:
    """What the export needs to know of a sentence-transformers folder: pooling and window."""
    modules_file = path / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported:
        raise OnnxExportError(f"{path} has modules {unsupported} that the ONNX backends do not export")
    pooling = "mean"
    pool_dir = next((path / m["path"] for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pool_dir is not None and (pool_dir / "config.json").exists():
        config = json.loads((pool_dir / "config.json").read_text())
        modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v)
        if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
            raise OnnxExportError(f"{pool_dir}: only mean or CLS pooling can be exported, not {modes}")
        pooling = "cls" if modes == ["pooling_mode_cls_token"] else "mean"
    st_config = path / "sentence_bert_config.json"
    max_tokens = json.loads(st_config.read_text()).get("max_seq_length", 512) if st_config.exists() else 512
    return {"pooling": pooling, "max_tokens": int(max_tokens)}


def export_folder(path: Path, cache_dir: Path | None = None, kind: str = "embedding") -> Path:
    """The cache folder holding `model.onnx` and `model-int8.onnx` for this model, exporting if needed.

    `kind`: "embedding" (a sentence-transformers embedding model) or "cross-encoder".
    """
    digest = fingerprint(path)
    if digest is None:
        raise OnnxExportError(f"the ONNX backends need a local model folder; {path} does not exist")
    folder = _export_dir(digest, cache_dir, kind)
    if _complete(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".export.lock"):
        if not _complete(folder):
            _export_into(path, folder, kind)
    return folder


def export_again_if_damaged(path: Path, cache_dir: Path | None = None, kind: str = "embedding") -> list[str]:
    """Export `path` again when its cached files differ from the sha256 recorded at export (all are suspect
    when none was recorded); the names of the damaged files, [] when the export is sound or absent.

    Reads every byte, so it is asked only after loading the export failed.
    """
    digest = fingerprint(path)
    folder = _export_dir(digest, cache_dir, kind) if digest is not None else None
    if folder is None or not folder.is_dir():
        return []
    with file_lock(folder / ".export.lock"):
        damaged = damaged_files(folder)
        if damaged:
            log.warning("the ONNX export in %s is damaged (%s): exporting it again", folder, ", ".join(damaged))
            _export_into(path, folder, kind)
    return damaged


def damaged_files(folder: Path) -> list[str]:
    """The exported files whose sha256 differs from the one recorded at export."""
    try:
        recorded = {name: entry["sha256"] for name, entry in json.loads((folder / FILES).read_text()).items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return [FILES]  # exported before checksums were recorded, or the record is unreadable
    return sorted(name for name, digest in recorded.items()
                  if not (folder / name).is_file() or file_digest(folder / name) != digest)


def _export_dir(digest: str, cache_dir: Path | None, kind: str) -> Path:
    suffix = "" if kind == "embedding" else f"-{kind}"
    return (cache_dir or default_cache_dir()) / f"{digest}{suffix}-v{EXPORT_VERSION}"


def _complete(folder: Path) -> bool:
    """Whether both models are in place, at the sizes recorded when they were exported (when recorded)."""
    if not ((folder / INT8_FILE).is_file() and (folder / ONNX_FILE).is_file()):
        return False
    try:
        recorded = json.loads((folder / FILES).read_text())
    except FileNotFoundError:
        return True  # exported before sizes were recorded
    except (OSError, ValueError):
        return False
    try:
        return all((folder / name).stat().st_size == entry["bytes"] for name, entry in recorded.items())
    except (OSError, TypeError, KeyError, AttributeError):
        return False



@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (processes racing to build the same cache folder wait here)."""
    with lock_path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export_into(path: Path, folder: Path, kind: str = "embedding") -> None:
    """Export, fuse and quantize in a scratch folder, then move the files in atomically."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch, _quiet():
        raw = Path(scratch) / "raw.onnx"
        fused = Path(scratch) / ONNX_FILE
        if kind == "cross-encoder":
            layout = _torch_export_scorer(path, raw)
        else:
            layout = model_layout(path)
            _torch_export(path, raw, layout["pooling"])
        _fuse(raw, fused, path)
        _quantize(fused, Path(scratch) / INT8_FILE)
        (Path(scratch) / "layout.json").write_text(json.dumps(layout))
        files = ("layout.json", ONNX_FILE, INT8_FILE)
        records = {name: {"bytes": (Path(scratch) / name).stat().st_size, "sha256": file_digest(Path(scratch) / name)}
                   for name in files}
        (Path(scratch) / FILES).write_text(json.dumps(records, indent=2))
        (folder / INT8_FILE).unlink(missing_ok=True)  # while replacing a damaged export: incomplete until the end
        for name in (FILES, *files):  # int8 last: its presence means "complete"
            os.replace(Path(scratch) / name, folder / name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's and the quantizer's advice for the one-time export."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _torch_export(path: Path, target: Path, pooling: str) -> None:
    import torch
    from transformers import AutoModel

    try:
        encoder = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
    except Exception as exc:
        raise OnnxExportError(f"cannot load {path} with transformers for export: {exc}") from exc

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    sample = torch.ones(2, 16, dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    with torch.no_grad():
        torch.onnx.export(
            Pooled(), (sample, sample), str(target), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {v: k for k, v in axes.items()},
                          "attention_mask": {v: k for k, v in axes.items()}, "embedding": {0: "batch"}},
        )


def _torch_export_scorer(path: Path, target: Path) -> dict[str, Any]:
    """Export a CrossEncoder folder: token ids in, one score per pair out; its layout (inputs, window)."""
    import torch
    from sentence_transformers import CrossEncoder

    try:
        model = CrossEncoder(str(path), device="cpu")
        classifier = model[0].auto_model.eval()
        inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                  if n in model[0].tokenizer.model_input_names or n == "input_ids"]
    except Exception as exc:
        raise OnnxExportError(f"cannot load {path} as a sentence-transformers CrossEncoder for export: {exc}") from exc
    activation = model.activation_fn

    class Scored(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            logits = self.classifier(**dict(zip(inputs, tensors, strict=True))).logits
            return activation(logits).reshape(-1)

    sample = tuple(torch.ones(2, 16, dtype=torch.long) for _ in inputs)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(Scored(), sample, str(target), input_names=inputs, output_names=["score"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={**{name: axes for name in inputs}, "score": {0: "batch"}})
    return {"inputs": inputs, "max_tokens": int(model.max_seq_length or 512)}


def _fuse(source: Path, target: Path, model_dir: Path) -> None:
    """Fuse attention, LayerNorm and GELU with onnxruntime's BERT optimizer; fall back to a copy.

    The residual Adds stay apart from the LayerNorms after them (see `onnx.UNFUSED`).
    """
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        config = json.loads((model_dir / "config.json").read_text())
        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False
        options.enable_bias_skip_layer_norm = False
        optimized = optimize_model(str(source), model_type="bert", num_heads=int(config["num_attention_heads"]),
                                   hidden_size=int(config["hidden_size"]), opt_level=1,
                                   optimization_options=options)
        optimized.save_model_to_file(str(target))
    except Exception:  # fusion is an optimization only; the plain export is correct
        shutil.copyfile(source, target)


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weight scales keep the vectors within cosine ≈ 0.995 of torch (per-tensor: ≈ 0.95).
    # Fused nodes are in Microsoft's domain, which shape inference cannot type: say they are float.
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Attention", "Gemm"],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
