"""Each query's dense and keyword candidate lists, collected once from a real index and kept on disk.

    python benchmarks/fusion_runs.py --sets jsquad,scifact [--model multilingual-e5-small] [--backend torch]
                                     [--workdir ~/.cache/yomitoki/bench/fusion]

A set's documents are indexed with yomitoki's own builder (`IndexBuilder`, as
`yomitoki index` does) into `WORKDIR/<set>-<model>-<backend>/index`, once; every
query is then searched with `Searcher` in dense and in keyword mode
(`fusion.candidates` chunks deep, the compound boost on, as served), and the two
lists with their scores, the query's language and the model's coverage of it
are written to `runs.json` beside the index. Fusion rules can then be compared
offline in seconds (benchmarks/fusion_rules.py) on exactly the lists the server
would fuse. A second run reuses both files when the model's fingerprint matches.

Sets: JSQuAD v1.3 validation (1,145 paragraphs, 4,442 questions), SciFact
(5,183 abstracts; its 300 test and 809 train queries, so that a rule can be
tuned on train and reported on test), SQuAD v1.1 dev (2,067 paragraphs,
10,570 questions; `--questions N` searches a seeded sample of them). Runs kept
from an earlier collection are reused as they are, whatever `--questions` says.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, RetrievalSet, build_index, load_jsquad, load_scifact  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER, Embedder, embed_for  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.store.generations import IndexDirectory  # noqa: E402
from indexer.text.chunking import ChunkSettings  # noqa: E402
from indexer.text.language import detect_language  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402

SETS = ("jsquad", "scifact", "squad")
WORKDIR = Path.home() / ".cache" / "yomitoki" / "bench" / "fusion"


@dataclass(frozen=True)
class QueryRun:
    """One query's two candidate lists as the searcher ranked them, best first: (chunk id, score)."""

    qid: str
    group: str                              # a split key: the article (JSQuAD, SQuAD) or qrels file (SciFact)
    language: str
    coverage: float
    dense: list[tuple[int, float]]
    keyword: list[tuple[int, float]]


@dataclass(frozen=True)
class Runs:
    name: str
    model: dict[str, Any]
    fusion: dict[str, Any]                  # the index manifest's fusion settings
    queries: list[QueryRun]
    documents: dict[int, str]               # chunk id -> the document's own id
    relevant: dict[str, dict[str, int]]     # query id -> {document id: grade}


def load_squad(data: Path) -> RetrievalSet:
    """SQuAD v1.1 dev as passages: each paragraph a document (its article's title), each question a query."""
    raw = json.loads((data / "squad-v1.1" / "dev-v1.1.json").read_text(encoding="utf-8"))
    documents: list[dict[str, str]] = []
    queries: list[tuple[str, str]] = []
    relevant: dict[str, dict[str, int]] = {}
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            pid = f"p{len(documents)}"
            documents.append({"id": pid, "title": article["title"].replace("_", " "), "text": paragraph["context"]})
            for qa in paragraph["qas"]:
                queries.append((qa["id"], qa["question"]))
                relevant[qa["id"]] = {pid: 1}
    return RetrievalSet("squad", documents, queries, relevant)


def with_scifact_train(data: Path) -> tuple[RetrievalSet, dict[str, str]]:
    """SciFact with its train queries beside the test ones; each query's group is its qrels file."""
    retrieval = load_scifact(data)
    groups = {qid: "test" for qid, _ in retrieval.queries}
    relevant = dict(retrieval.relevant)
    for line in list((data / "scifact" / "qrels" / "train.tsv").open(encoding="utf-8"))[1:]:
        qid, did, score = line.strip().split("\t")
        relevant.setdefault(qid, {})[did] = int(score)
        groups[qid] = "train"
    texts = {q["_id"]: q["text"] for q in map(json.loads, (data / "scifact" / "queries.jsonl").open(encoding="utf-8"))}
    queries = [(qid, texts[qid]) for qid in groups]
    return RetrievalSet("scifact", retrieval.documents, queries, relevant), groups


def title_groups(retrieval: RetrievalSet) -> dict[str, str]:
    """Each query's group: the title of the article its relevant paragraph comes from."""
    titles = {d["id"]: d["title"] for d in retrieval.documents}
    return {qid: titles[next(iter(retrieval.relevant[qid]))] for qid, _ in retrieval.queries}


def load_set(name: str, data: Path, questions: int = 0) -> tuple[RetrievalSet, dict[str, str]]:
    """A set with each query's split group; `questions` > 0 samples that many (seeded) from a QA set."""
    if name == "scifact":
        return with_scifact_train(data)
    retrieval = load_jsquad(data) if name == "jsquad" else load_squad(data)
    if 0 < questions < len(retrieval.queries):
        sample = random.Random(0).sample(retrieval.queries, questions)
        retrieval = RetrievalSet(retrieval.name, retrieval.documents, sample, retrieval.relevant)
    return retrieval, title_groups(retrieval)


def open_index(retrieval: RetrievalSet, embedder: Embedder, folder: Path,
               chunking: ChunkSettings | None = None) -> IndexDirectory:
    """The set's index in `folder`, built once per model fingerprint and backend."""
    directory = IndexDirectory(folder / "index")
    if (folder / "index").exists():
        built = msgspec.to_builtins(directory.current().manifest.model)
        if all(built.get(k) == embedder.describe().get(k) for k in ("name", "revision", "backend")):
            return directory
    for stale in ("index", "corpus"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    directory, seconds = build_index(retrieval, embedder, folder, chunking)
    print(f"[{retrieval.name}: indexed {len(retrieval.documents)} documents in {seconds:.0f}s]", flush=True)
    return directory


def collect(retrieval: RetrievalSet, groups: dict[str, str], embedder: Embedder, folder: Path,
            chunking: ChunkSettings | None = None) -> Runs:
    """Search every query in dense and keyword mode on the set's index; the lists as the searcher ranks them."""
    directory = open_index(retrieval, embedder, folder, chunking)
    searcher = Searcher(directory.current(), embedder)
    depth = searcher.fusion.candidates
    texts = [normalize_query(q).strip() for _, q in retrieval.queries]
    started = time.perf_counter()
    vectors = embed_for(embedder, texts, "query")
    queries, documents = [], {}
    for (qid, _), text, vector in zip(retrieval.queries, texts, vectors, strict=True):
        dense = searcher.search(text, mode="dense", k=depth, query_vector=vector)
        keyword = searcher.search(text, mode="keyword", k=depth)
        documents.update({h.chunk_id: h.key for h in [*dense, *keyword]})
        queries.append(QueryRun(qid, groups[qid], detect_language(text), embedder.coverage(text),
                                [(h.chunk_id, h.score) for h in dense], [(h.chunk_id, h.score) for h in keyword]))
    print(f"[{retrieval.name}: {len(queries)} queries searched in {time.perf_counter() - started:.0f}s]", flush=True)
    runs = Runs(retrieval.name, embedder.describe(), msgspec.to_builtins(directory.current().manifest.fusion) or {},
                queries,
                documents, {qid: retrieval.relevant[qid] for qid, _ in retrieval.queries})
    searcher.close()
    return runs


def save(runs: Runs, path: Path) -> None:
    payload = {"name": runs.name, "model": runs.model, "fusion": runs.fusion, "relevant": runs.relevant,
               "documents": {str(k): v for k, v in runs.documents.items()},
               "queries": [q.__dict__ for q in runs.queries]}
    path.write_text(json.dumps(payload, ensure_ascii=False))


def load(path: Path) -> Runs:
    payload = json.loads(path.read_text())
    queries = [QueryRun(q["qid"], q["group"], q["language"], q["coverage"],
                        [(int(c), float(s)) for c, s in q["dense"]], [(int(c), float(s)) for c, s in q["keyword"]])
               for q in payload["queries"]]
    return Runs(payload["name"], payload["model"], payload["fusion"], queries,
                {int(k): v for k, v in payload["documents"].items()}, payload["relevant"])


def run_folder(name: str, described: dict[str, Any], workdir: Path = WORKDIR,
               chunking: ChunkSettings | None = None) -> Path:
    """Where a set's index and runs for a model (as `describe()` names it) and chunking are kept."""
    chunked = "" if chunking in (None, ChunkSettings()) else f"-chunks{chunking.max_tokens}-{chunking.overlap}"
    return workdir / f"{name}-{described['name']}-{described['backend']}{chunked}"


def runs_for(name: str, model: str, backend: str | None, data: Path = DATA, workdir: Path = WORKDIR,
             questions: int = 0, chunking: ChunkSettings | None = None) -> Runs:
    """The set's runs for a model, from `workdir` when collected before with the same model files.

    `chunking` other than the product's default (200 tokens, 40 overlapping) builds and keeps its
    own index, in a folder named for it.
    """
    embedder = load_embedder(model, runtime=backend)
    described = embedder.describe()
    folder = run_folder(name, described, workdir, chunking)
    path = folder / "runs.json"
    if path.exists():
        runs = load(path)
        if all(runs.model.get(k) == described.get(k) for k in ("name", "revision", "backend")):
            return runs
    retrieval, groups = load_set(name, data, questions)
    runs = collect(retrieval, groups, embedder, folder, chunking)
    save(runs, path)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", default="jsquad,scifact")
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None, help="how the model runs; default its own (torch)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--questions", type=int, default=0, help="QA sets: a seeded sample of questions (0: all)")
    args = parser.parse_args()
    for name in args.sets.split(","):
        runs = runs_for(name, args.model, args.backend, args.data, args.workdir, args.questions)
        print(f"{name}: {len(runs.queries)} queries, {len(runs.documents)} chunks seen", flush=True)


if __name__ == "__main__":
    main()
