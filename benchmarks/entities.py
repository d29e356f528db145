"""Named-entity quality on held-out Japanese Wikipedia sentences, fine-tuning time, and index-time throughput.

    python benchmarks/entities.py [--parts pretrained,finetuned,throughput] [--holdout 0.2] [--seed 0]
                                  [--max-train N] [--max-test N] [--epochs N] [--max-seconds S]
                                  [--corpus DIR] [--json OUT.json]

- Data: ../shared/data/ner-wikipedia-ja/train.json (never copied into the repository), split by a
  seeded shuffle into a held-out part (--holdout, 20%) and the rest. Texts are NFKC-normalized as the
  server does, gold spans moved along.
- pretrained: GiNZA (ja_ginza) with the bundled type mapping (ginza-ner-wikipedia-ja: Extended Named
  Entity types → the set's eight types); entity-level precision, recall and F1, exact span and type
  (seqeval's entity-level convention), beside a dictionary baseline measured in the same run: every
  entity name seen in the training part, with its most frequent type, matched longest-first.
- finetuned: GiNZA's NER fine-tuned on the training part (`indexer.ner.training.fine_tune`, as
  `yomitoki train-entities` does), scored on the same held-out part; the fine-tuning wall time.
- throughput: `yomitoki index --entities` over --corpus (the project's corpus by default) into a fresh
  index: entity extraction chunks/s (GiNZA, over the chunks of Japanese documents) beside embedding
  chunks/s (every chunk), both from the same build.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ner-wikipedia-ja" / "train.json"


def load_split(holdout: float, seed: int) -> tuple[list[Any], list[Any]]:
    from indexer.ner.training import parse_examples, to_normalized

    rows = json.loads(DATA.read_text(encoding="utf-8"))
    examples = [to_normalized(e) for e in parse_examples(rows, str(DATA))]
    random.Random(seed).shuffle(examples)
    cut = round(len(examples) * holdout)
    return examples[cut:], examples[:cut]


def dictionary_baseline(train: list[Any], test: list[Any]) -> Any:
    """Names seen in training, tagged with their most frequent type, matched longest-first, left to right."""
    from indexer.ner.scoring import score_spans

    types: dict[str, Counter[str]] = defaultdict(Counter)
    for example in train:
        for start, end, label in example.entities:
            types[example.text[start:end]][label] += 1
    names = sorted(types, key=len, reverse=True)
    predicted = []
    for example in test:
        taken = [False] * len(example.text)
        found = []
        for name in names:
            start = example.text.find(name)
            while start >= 0:
                if not any(taken[start : start + len(name)]):
                    found.append((start, start + len(name), types[name].most_common(1)[0][0]))
                    taken[start : start + len(name)] = [True] * len(name)
                start = example.text.find(name, start + 1)
        predicted.append(found)
    return score_spans([list(e.entities) for e in test], predicted)


def pretrained(train: list[Any], test: list[Any]) -> dict[str, Any]:
    from indexer.ner.mapping import load_mapping
    from indexer.ner.pipelines import DEFAULT_JA_MODEL, load_spacy_model
    from indexer.ner.training import evaluate

    model = load_spacy_model(DEFAULT_JA_MODEL)
    mapping = load_mapping("ginza-ner-wikipedia-ja")
    mapping.check_model(model.labels, model.name)
    started = time.perf_counter()
    scores = evaluate(model, test, mapping.types)
    seconds = time.perf_counter() - started
    baseline = dictionary_baseline(train, test)
    return {"model": f"{DEFAULT_JA_MODEL} + mapping {mapping.name}", "scores": scores.as_dict(),
            "texts_per_s": round(len(test) / seconds, 1),
            "baseline_dictionary": {k: v for k, v in baseline.as_dict().items() if k != "per_type"}}


def finetuned(train: list[Any], test: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    from indexer.ner.training import TrainOptions, evaluate, fine_tune

    train = train[: args.max_train] if args.max_train else train
    trained = fine_tune(train, TrainOptions(epochs=args.epochs, holdout=0, seed=args.seed,
                                            max_seconds=args.max_seconds))
    scores = evaluate(trained.model, test)
    return {"trained_on": trained.trained_on, "epochs": trained.epochs,
            "fine_tune_seconds": round(trained.seconds, 1), "scores": scores.as_dict()}


def throughput(corpus: Path) -> dict[str, Any]:
    from indexer.build.builder import BuildOptions, IndexBuilder
    from indexer.embed.loading import load_embedder
    from indexer.embed.selection import choose_embedder
    from indexer.ner.index_entities import ChunkEntities
    from indexer.store.generations import IndexDirectory
    from indexer.text.keywords import load_keyword_tokenizer

    with tempfile.TemporaryDirectory() as folder:
        directory = IndexDirectory(Path(folder) / "index")
        embedder = load_embedder(choose_embedder(directory, corpus, rebuild=True))
        entities = ChunkEntities.load()
        builder = IndexBuilder(directory, embedder, load_keyword_tokenizer(), BuildOptions(), entities=entities)
        report = builder.build(corpus)
    chunks = report.chunks_embedded
    return {"corpus": str(corpus), "embedding_model": embedder.describe()["name"], "chunks": chunks,
            "embedding_seconds": round(report.embed_seconds, 2),
            "embedding_chunks_per_s": round(chunks / report.embed_seconds, 1),
            "entity_chunks": report.entity_chunks, "entity_seconds": round(report.entity_seconds, 2),
            "entity_chunks_per_s": round(report.entity_chunks / report.entity_seconds, 1),
            "build_seconds": round(report.seconds, 2), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="pretrained,finetuned,throughput")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=None, help="Fine-tune on the first N training examples.")
    parser.add_argument("--max-test", type=int, default=None, help="Score the first N held-out examples only.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=None, help="Stop fine-tuning after this epoch.")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r"\[W030\]")  # spans between tokens: spaCy skips them in training
    parts = args.parts.split(",")
    train, test = load_split(args.holdout, args.seed)
    test = test[: args.max_test] if args.max_test else test
    results: dict[str, Any] = {"data": str(DATA), "train": len(train), "held_out": len(test), "seed": args.seed,
                               "load_average_start": os.getloadavg()}
    if "pretrained" in parts:
        results["pretrained"] = pretrained(train, test)
        print(json.dumps(results["pretrained"], ensure_ascii=False), flush=True)
    if "finetuned" in parts:
        results["finetuned"] = finetuned(train, test, args)
        print(json.dumps(results["finetuned"], ensure_ascii=False), flush=True)
    if "throughput" in parts:
        results["throughput"] = throughput(args.corpus)
        print(json.dumps(results["throughput"], ensure_ascii=False), flush=True)
    results["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
