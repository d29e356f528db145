"""Similarity and classification quality of the served embedding model, beside MTEB's figures.
  # noqa: E402
    python benchmarks/tasks.py [--model all-minilm-l6-v2] [--sets sts,jsts,amazon,sst2] [--data DIR]
                               [--quick] [--train-limit N] [--cache FILE.npz] [--json OUT.json]

Sets (read from ../shared/data, never copied into the repository):
- STS Benchmark test (1,379 pairs) and JSTS valid (1,457 pairs): Spearman of the
  cosine similarity of the two embeddings against the gold score (MTEB's STS
  convention), with raw text (as MTEB feeds it) and with the server's NFKC.
- Amazon counterfactual JP and EN test: MTEB's protocol (10 experiments, each a
  logistic regression with max_iter=100 on 32 training examples per label drawn
  by a seeded shuffle; mean accuracy), and the server's classifier trained on
  all training examples (`server.nlp.few_shot.train_linear`), beside the
  majority-class baseline.
- SST-2 dev: zero-shot sentiment with label descriptions (`server.nlp.zero_shot`),
  with bare label names, beside the majority-class baseline.

Every text is embedded once per run (an in-memory cache shared by the sets;
`--cache FILE` keeps it between runs). The full run embeds about 17,800 texts:
about 6.8 CPU-minutes, 15 minutes of wall time on this 2-vCPU machine while
other jobs kept its load near 9 (about 4 minutes idle). `--quick` (1,000
training examples for the all-examples rows, no raw-text rows for AmazonCF)
embeds about 10,800: 9 minutes under the same load, about 2 idle.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.embed.base import Embedder, embed_for  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402
from server.nlp.few_shot import LinearModel, TrainOptions, train_linear  # noqa: E402
from server.nlp.zero_shot import LabelSpec, ZeroShotOptions, zero_shot  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("sts", "jsts", "amazon", "sst2")
# MTEB's AmazonCounterfactualClassification: n_experiments=10, samples_per_label=32, logistic
# regression (lbfgs, max_iter=100, random_state=42), numpy's global RNG seeded with 42.
MTEB_EXPERIMENTS, MTEB_PER_LABEL, MTEB_SEED, MTEB_MAX_ITER = 10, 32, 42, 100
SST2_LABELS = {  # chosen once, before looking at the dev set's results
    "descriptions": [LabelSpec("negative", "a negative movie review: the film is bad, boring and disappointing"),
                     LabelSpec("positive", "a positive movie review: the film is good, enjoyable and moving")],
    "names only": [LabelSpec("negative"), LabelSpec("positive")],
}


@dataclass
class CachedEmbedder:
    """Embeds each distinct string once; `normalized=True` is the server's path (NFKC first)."""

    embedder: Embedder
    batch_size: int = 64
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    embedded: int = 0

    def load(self, path: Path) -> None:
        """Vectors saved by an earlier run with the same model revision (`--cache`)."""
        if not path.exists():
            return
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["revision"]) == str(self.embedder.describe()["revision"]):
                self.vectors.update(zip(saved["texts"].tolist(), saved["vectors"], strict=True))

    def save(self, path: Path) -> None:
        texts = list(self.vectors)
        np.savez(path, revision=str(self.embedder.describe()["revision"]), texts=np.array(texts, dtype=str),
                 vectors=np.stack([self.vectors[t] for t in texts]))

    def __call__(self, texts: Sequence[str], *, normalized: bool = True) -> np.ndarray:
        keys = [normalize_query(t) if normalized else t for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        if missing:
            # similarity and classification are symmetric: E5 reads both sides as queries (its card, MTEB)
            vectors = embed_for(self.embedder, missing, "symmetric", batch_size=self.batch_size)
            for key, vector in zip(missing, vectors, strict=True):
                self.vectors[key] = vector
            self.embedded += len(missing)
        return np.stack([self.vectors[k] for k in keys])

    # enough of the Embedder protocol for the server's task code, which normalizes before calling
    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        return self(texts, normalized=False)

    def describe(self) -> dict[str, object]:
        return self.embedder.describe()


@dataclass(frozen=True)
class Row:
    task: str
    setting: str
    metric: str
    value: float
    published: float | None = None
    note: str = ""


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def read_stsb(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Tab separated, no quoting; the first 7 fields (some rows carry 2 licence columns)."""
    rows = [line.rstrip("\n").split("\t")[:7] for line in path.read_text(encoding="utf-8").splitlines()]
    return [r[5] for r in rows], [r[6] for r in rows], np.array([float(r[4]) for r in rows])


def read_jsts(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], np.array([float(r["label"]) for r in rows])


def read_tsv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], [r[1] for r in rows]


def sts(embed: CachedEmbedder, name: str, pairs: tuple[list[str], list[str], np.ndarray],
        published: float) -> list[Row]:
    left, right, gold = pairs
    rows = []
    for normalized, setting in ((False, "raw text (MTEB)"), (True, "NFKC (server)")):  # STS: always both
        cosine = np.einsum("ij,ij->i", embed(left, normalized=normalized), embed(right, normalized=normalized))
        rows.append(Row(name, setting, "spearman", spearman(cosine, gold), published, f"{len(gold)} pairs"))
    return rows


def accuracy(model: LinearModel, vectors: np.ndarray, labels: Sequence[str]) -> float:
    predicted = [p.label for p in model.predict(vectors)]
    return float(np.mean([p == g for p, g in zip(predicted, labels, strict=True)]))


def mteb_protocol(embed: CachedEmbedder, train: tuple[list[str], list[str]], test: tuple[list[str], list[str]],
                  *, normalized: bool, seed: int = MTEB_SEED) -> tuple[float, float]:
    """Mean and standard deviation of accuracy over MTEB's 10 undersampled experiments (the shuffling of
    MTEB's AbsTaskClassification; MTEB's global RNG is also consumed by the tasks run before, so the
    exact draws differ)."""
    rng = np.random.RandomState(seed)
    texts, labels = train
    idxs = np.arange(len(labels))
    test_vectors = embed(test[0], normalized=normalized)
    scores = []
    for _ in range(MTEB_EXPERIMENTS):
        rng.shuffle(idxs)  # shuffled in place, so each experiment continues from the previous order
        counts: Counter[str] = Counter()
        chosen = []
        for i in idxs:
            if counts[labels[i]] < MTEB_PER_LABEL:
                chosen.append(i)
                counts[labels[i]] += 1
        model = train_linear(embed([texts[i] for i in chosen], normalized=normalized), [labels[i] for i in chosen],
                             TrainOptions(c=1.0, max_iter=MTEB_MAX_ITER, seed=seed))
        scores.append(accuracy(model, test_vectors, test[1]))
    return float(np.mean(scores)), float(np.std(scores))


def amazon(embed: CachedEmbedder, data: Path, language: str, published: float, *, train_limit: int | None,
           raw: bool) -> list[Row]:
    train = read_tsv(data / "amazon-counterfactual" / f"{language}_train.tsv")
    test = read_tsv(data / "amazon-counterfactual" / f"{language}_test.tsv")
    task = f"AmazonCF {language} test"
    majority = Counter(test[1]).most_common(1)[0][1] / len(test[1])
    rows = [Row(task, "majority class (baseline)", "accuracy", majority, note=f"{len(test[1])} sentences")]
    for normalized, setting in ((False, "raw text"), (True, "NFKC (server)"))[0 if raw else 1:]:
        mean, std = mteb_protocol(embed, train, test, normalized=normalized)
        rows.append(Row(task, f"MTEB protocol, {setting}", "accuracy", mean, published,
                        f"10 x 32 per label, LR max_iter=100; sd {std:.3f}, s.e. {std / MTEB_EXPERIMENTS ** 0.5:.3f}"))
    texts, labels = train
    if train_limit is not None and train_limit < len(labels):  # a seeded stratified subsample
        from sklearn.model_selection import train_test_split

        texts, _, labels, _ = train_test_split(texts, labels, train_size=train_limit, stratify=labels,
                                               random_state=MTEB_SEED)
    model = train_linear(embed(texts), labels)
    setting = "all training examples" if len(labels) == len(train[1]) else f"{len(labels)} training examples"
    rows.append(Row(task, f"{setting}, NFKC (server)", "accuracy", accuracy(model, embed(test[0]), test[1]),
                    None, f"{len(labels)} examples; server's LR, C={model.c:g} by 3-fold CV"))
    return rows


def sst2(embed: CachedEmbedder, data: Path) -> list[Row]:
    texts, gold = read_tsv(data / "sst2" / "dev.tsv")
    names = {"0": "negative", "1": "positive"}
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    rows = [Row("SST-2 dev zero-shot", "majority class (baseline)", "accuracy", majority,
                note=f"{len(gold)} sentences")]
    for setting, labels in SST2_LABELS.items():
        predictions = zero_shot(embed, texts, labels, ZeroShotOptions())  # type: ignore[arg-type]
        correct = [p.label == names[g] for p, g in zip(predictions, gold, strict=True)]
        rows.append(Row("SST-2 dev zero-shot", f"labels with {setting}", "accuracy", float(np.mean(correct))))
    return rows


def print_rows(rows: Sequence[Row]) -> None:
    print(f"{'task':<22} {'setting':<40} {'metric':<9} {'yomitoki':>9} {'MTEB':>7} {'diff':>8}  note")
    for r in rows:
        published = f"{r.published:.4f}" if r.published is not None else ""
        diff = f"{r.value - r.published:+.4f}" if r.published is not None else ""
        print(f"{r.task:<22} {r.setting:<40} {r.metric:<9} {r.value:>9.4f} {published:>7} {diff:>8}  {r.note}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--model", default="all-minilm-l6-v2", help="embedding model (MTEB figures are for "
                                                                     "all-minilm-l6-v2)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="AmazonCF: train the all-examples row on a stratified sample of N examples")
    parser.add_argument("--quick", action="store_true",
                        help="for a busy machine: --train-limit 1000 and no raw-text MTEB rows for AmazonCF")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep embeddings in this .npz between runs (reused only for the same model revision)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here as JSON")
    args = parser.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    train_limit = args.train_limit if args.train_limit is not None else (1000 if args.quick else None)
    started = time.perf_counter()
    embedder = load_embedder(args.model)
    embed = CachedEmbedder(embedder)
    if args.cache:
        embed.load(args.cache)
    rows: list[Row] = []
    for name in sets:
        began, before = time.perf_counter(), embed.embedded
        if name == "sts":
            rows += sts(embed, "STSb test", read_stsb(args.data / "stsb" / "sts-test.csv"), 0.8203)
        elif name == "jsts":
            rows += sts(embed, "JSTS valid", read_jsts(args.data / "jsts" / "valid-v1.3.jsonl"), 0.6265)
        elif name == "amazon":
            rows += amazon(embed, args.data, "JP", 0.6090, train_limit=train_limit, raw=not args.quick)
            rows += amazon(embed, args.data, "EN", 0.6364, train_limit=train_limit, raw=not args.quick)
        elif name == "sst2":
            rows += sst2(embed, args.data)
        else:
            parser.error(f"unknown set {name!r}")
        took = time.perf_counter() - began
        print(f"[{name}: {embed.embedded - before} texts embedded in {took:.0f}s]", file=sys.stderr)
        if args.cache:
            embed.save(args.cache)
    print(f"model {embedder.describe()['name']} (revision {embedder.describe()['revision']}); "
          f"MTEB figures from {args.data / 'README.md'}")
    print_rows(rows)
    print(f"{embed.embedded} distinct texts embedded; {time.perf_counter() - started:.0f}s in all")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))


if __name__ == "__main__":
    main()
