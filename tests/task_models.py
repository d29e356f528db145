"""Tiny transformers models that tests build and save themselves (no hub): a cross-encoder and
sequence classifiers, with the tokenizer of the bundled all-MiniLM-L6-v2, and a tiny index."""

from __future__ import annotations

from pathlib import Path

from indexer.embed.base import Embedder
from indexer.embed.locations import locate_embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import build

TINY_DOCS = {
    "tea.md": "# Tea\n\nGreen tea is grown in Shizuoka. 静岡はお茶の産地です。\n",
    "trains.md": "# Trains\n\nThe shinkansen links Tokyo and Osaka. 新幹線は東京と大阪を結びます。\n",
}


def tiny_index(root: Path, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    """A two-document index: enough for the task endpoints, which do not search."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for name, text in TINY_DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    build(corpus, root / "index", embedder, keywords)
    return IndexDirectory(root / "index")


def save_tiny_classifier(folder: Path, labels: list[str], *, problem_type: str | None = None, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT sequence classifier with `labels` in its config."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(locate_embedder("all-minilm-l6-v2").path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
                        problem_type=problem_type)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_cross_encoder(folder: Path, outputs: int = 1) -> Path:
    """A CrossEncoder folder: a sequence classifier with one output (a similarity score)."""
    return save_tiny_classifier(folder, [f"LABEL_{i}" for i in range(outputs)])
