"""How far other fusion rules get on the same candidate lists, each tuned on the tuning split only.

    python benchmarks/fusion_ceiling.py [--model multilingual-e5-small] [--backend torch] [--sets jsquad]
                                        [--sentences]

The same runs and splits as benchmarks/fusion_rules.py. Every rule below picks
its parameters on the tuning split (by recall@1, then MRR@10; SciFact by
nDCG@10) and is reported on the held-out split:

- rrf: weighted reciprocal rank fusion over k x dense weight;
- min-max: a·minmax(dense) + (1 − a)·minmax(keyword) per query;
- z-score: the product's rule (`indexer.search.fusion`), over its share;
- learned: a logistic regression over each candidate's z-scores, inverse ranks,
  and their products with how far each list's first hit leads its second (the
  per-query confidence of each retriever), trained on the tuning split;
- with `--sentences`, two signals the two lists do not carry, each added to the
  chosen z-score rule's fused score over its first 10 candidates with a weight
  tuned on the tuning split: *sentence words*, the share of the query's terms
  (IDF-weighted, words and grams as keyword search reads them) found in the
  candidate's best-matching sentence; *sentence vectors*, the cosine of the
  query to the candidate's closest sentence, embedded on their own by the run's
  model (z-scored over the candidates); and both together. These are what a
  reranker would look at without a cross-encoder: does one sentence answer the
  question. Embedding the sentences takes minutes on SciFact;
- bound: the share of queries whose relevant document is first in at least one
  of the two lists. A rule that puts one of the two first hits first cannot
  have a higher recall@1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_rules import CHOSEN_BY, LANGUAGE, SHARES, splits, zscore  # noqa: E402
from benchmarks.fusion_runs import WORKDIR, QueryRun, Runs, load_set, run_folder, runs_for  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, metrics  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402
from indexer.search.fusion import RRF, FusionSettings, fuse  # noqa: E402

Fuser = Callable[[QueryRun], list[tuple[int, float]]]
FEATURES = 8


def evaluate(runs: Runs, queries: Sequence[QueryRun], fuser: Fuser) -> dict[str, float]:
    rankings = [list(dict.fromkeys(runs.documents[c] for c, _ in fuser(q)))[:10] for q in queries]
    return metrics(rankings, RetrievalSet(runs.name, [], [(q.qid, "") for q in queries], runs.relevant))


def normalized(ranked: Sequence[tuple[int, float]], how: str) -> dict[int, float]:
    scores = np.array([s for _, s in ranked], dtype=np.float64)
    if scores.size == 0:
        return {}
    if how == "minmax":
        spread = scores.max() - scores.min()
        values = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    else:
        values = (scores - scores.mean()) / (scores.std() or 1.0)
    return {cid: float(v) for (cid, _), v in zip(ranked, values, strict=True)}


def settings_fuser(settings: FusionSettings) -> Fuser:
    """The product's fusion (`indexer.search.fusion.fuse`) with these settings, as `Searcher` applies it."""
    return lambda q: fuse(q.dense, q.keyword, settings.dense_weight(q.coverage, q.language), settings)


def minmax(share: float) -> Fuser:
    def fuse(q: QueryRun) -> list[tuple[int, float]]:
        if not q.keyword:
            return q.dense
        d, k = normalized(q.dense, "minmax"), normalized(q.keyword, "minmax")
        scores = {c: share * d.get(c, 0.0) + (1 - share) * k.get(c, 0.0) for c in {*d, *k}}
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return fuse


def features(q: QueryRun) -> tuple[list[int], np.ndarray]:
    """Each candidate (the first 10 of either list): z-scores, inverse ranks, and both × each list's lead."""
    d, k = normalized(q.dense, "z"), normalized(q.keyword, "z")
    d_floor, k_floor = min(d.values(), default=0.0), min(k.values(), default=0.0)
    lead_d = d[q.dense[0][0]] - d[q.dense[1][0]] if len(q.dense) > 1 else 0.0
    lead_k = k[q.keyword[0][0]] - k[q.keyword[1][0]] if len(q.keyword) > 1 else 0.0
    rank_d = {c: r for r, (c, _) in enumerate(q.dense, 1)}
    rank_k = {c: r for r, (c, _) in enumerate(q.keyword, 1)}
    candidates = list(dict.fromkeys([c for c, _ in q.keyword[:10]] + [c for c, _ in q.dense[:10]]))
    rows = []
    for c in candidates:
        zd, zk = d.get(c, d_floor), k.get(c, k_floor)
        rows.append([zd, zk, zd * lead_k, zk * lead_k, zd * lead_d, zk * lead_d,
                     1 / rank_d.get(c, 1000), 1 / rank_k.get(c, 1000)])
    return candidates, np.array(rows, dtype=np.float64).reshape(-1, FEATURES)


def learned(runs: Runs, tuning: Sequence[QueryRun]) -> Fuser:
    from sklearn.linear_model import LogisticRegression

    xs: list[np.ndarray] = []
    ys: list[bool] = []
    for q in tuning:
        candidates, rows = features(q)
        xs.append(rows)
        ys.extend(runs.documents[c] in runs.relevant[q.qid] for c in candidates)
    model = LogisticRegression(max_iter=2000).fit(np.vstack(xs), np.array(ys))

    def fuse(q: QueryRun) -> list[tuple[int, float]]:
        candidates, rows = features(q)
        return sorted(zip(candidates, model.decision_function(rows).tolist(), strict=True), key=lambda x: -x[1])
    return fuse


RERANKED = 10  # the fused candidates the sentence signals re-order


@dataclass(frozen=True)
class SentenceSignals:
    """Per query, the fused ranking's first candidates with their fused scores and both sentence signals."""

    candidates: dict[str, list[int]]
    fused: dict[str, np.ndarray]
    words: dict[str, np.ndarray]
    vectors: dict[str, np.ndarray]


def sentence_signals(runs: Runs, fuser: Fuser, index: Path, data: Path, model: str,
                     backend: str | None) -> SentenceSignals:
    """Both signals for every query's first `RERANKED` fused candidates, read from the set's own index."""
    from indexer.embed.base import embed_for
    from indexer.embed.loading import load_embedder
    from indexer.store.bm25 import KeywordMatrix
    from indexer.store.generations import IndexDirectory
    from indexer.store.sqlite import SqliteStore
    from indexer.text.keywords import load_keyword_tokenizer
    from indexer.text.normalize import normalize_query
    from indexer.text.sentences import split_sentences

    retrieval, _ = load_set(runs.name, data)
    texts = {qid: normalize_query(text).strip() for qid, text in retrieval.queries}
    generation = IndexDirectory(index).current()
    store = SqliteStore(generation.store_path, readonly=True)
    matrix = KeywordMatrix.from_store(store)
    assert matrix is not None, "the set's keyword postings do not fit in memory"
    keywords = load_keyword_tokenizer(generation.manifest.keywords)
    weights = float(keywords.settings["grams_weight"])

    @functools.cache
    def idf(column: str, term: str) -> float:
        found = matrix.document_frequency(column, term) or 0
        return float(np.log(1 + (matrix.size - found + 0.5) / (found + 0.5)))

    def terms(text: str) -> dict[tuple[str, str], float]:
        found = [("words", t.text.lower()) for t in keywords.words(text)] + [("grams", t.text)
                                                                             for t in keywords.grams(text)]
        return {term: idf(*term) * (weights if term[0] == "grams" else 1.0) for term in found}

    fused = {q.qid: fuser(q)[:RERANKED] for q in runs.queries}
    chunk_ids = sorted({c for ranked in fused.values() for c, _ in ranked})
    chunk_text = store.chunk_texts(chunk_ids)
    store.close()
    sentences: dict[int, list[str]] = {
        c: [chunk_text[c][a:b] for a, b in split_sentences(chunk_text[c])] or [chunk_text[c]] for c in chunk_ids}
    sentence_terms = {c: [set(terms(t)) for t in found] for c, found in sentences.items()}
    embedder = load_embedder(model, runtime=backend)
    flat = [t for c in chunk_ids for t in sentences[c]]
    vectors = embed_for(embedder, flat, "passage")
    starts = np.cumsum([0] + [len(sentences[c]) for c in chunk_ids])
    rows = {c: vectors[starts[i]:starts[i + 1]] for i, c in enumerate(chunk_ids)}
    queries = dict(zip(texts, embed_for(embedder, list(texts.values()), "query"), strict=True))
    words, closest = {}, {}
    for qid, ranked in fused.items():
        wanted = terms(texts[qid])
        total = sum(wanted.values()) or 1.0
        words[qid] = np.array([max(sum(wanted[t] for t in found & wanted.keys()) for found in sentence_terms[c])
                               / total for c, _ in ranked])
        cosines = np.array([float((rows[c] @ queries[qid]).max()) for c, _ in ranked])
        closest[qid] = (cosines - cosines.mean()) / (cosines.std() or 1.0)
    return SentenceSignals({qid: [c for c, _ in r] for qid, r in fused.items()},
                           {qid: np.array([v for _, v in r]) for qid, r in fused.items()}, words, closest)


def reranked(signals: SentenceSignals, word_weight: float, vector_weight: float) -> Fuser:
    def fuse(q: QueryRun) -> list[tuple[int, float]]:
        scores = (signals.fused[q.qid] + word_weight * signals.words[q.qid]
                  + vector_weight * signals.vectors[q.qid])
        return sorted(zip(signals.candidates[q.qid], scores.tolist(), strict=True), key=lambda x: -x[1])
    return fuse


def bound(runs: Runs, queries: Sequence[QueryRun]) -> float:
    hits = [any(lst and runs.documents[lst[0][0]] in runs.relevant[q.qid] for lst in (q.dense, q.keyword))
            for q in queries]
    return float(np.mean(hits))


def best(runs: Runs, tuning: Sequence[QueryRun], options: dict[str, Fuser], language: str) -> tuple[str, Fuser]:
    primary, secondary = CHOSEN_BY[language]
    scored = {name: evaluate(runs, tuning, fuser) for name, fuser in options.items()}
    name = max(scored, key=lambda n: (round(scored[n][primary], 6), round(scored[n][secondary], 6)))
    return name, options[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--sets", default="jsquad")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--sentences", action="store_true",
                        help="also re-order the z-score rule's candidates by their best sentence")
    args = parser.parse_args()
    for name in args.sets.split(","):
        runs = runs_for(name, args.model, args.backend, args.data, args.workdir)
        language = LANGUAGE[name]
        tuning, held_out = splits(runs)

        rrf = {f"rrf k {k} weight {w:g}": settings_fuser(FusionSettings(method=RRF, k=k,
                                                                         language_weights=((language, w),)))
               for k in (1, 5, 10, 20, 60) for w in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0)}
        rules = {
            "keyword": ("keyword alone", lambda q: q.keyword or q.dense),
            "rrf": best(runs, tuning, rrf, language),
            "min-max": best(runs, tuning, {f"min-max share {a:g}": minmax(a) for a in SHARES}, language),
            "z-score": best(runs, tuning, {f"z-score share {a:g}": settings_fuser(zscore(language, a))
                                           for a in SHARES}, language),
            "learned": ("logistic regression, 8 features", learned(runs, tuning)),
        }
        if args.sentences:
            folder = run_folder(name, runs.model, args.workdir)
            signals = sentence_signals(runs, rules["z-score"][1], folder / "index", args.data, args.model,
                                       args.backend)
            steps = (0.25, 0.5, 1.0, 2.0, 3.0)
            rules["+words"] = best(runs, tuning, {f"z-score + sentence words × {w:g}": reranked(signals, w, 0)
                                                  for w in (0.0, *steps)}, language)
            rules["+vectors"] = best(runs, tuning, {f"z-score + sentence vectors × {w:g}": reranked(signals, 0, w)
                                                    for w in (0.0, *steps)}, language)
            rules["+both"] = best(runs, tuning, {f"z-score + words × {w:g} + vectors × {v:g}": reranked(signals, w, v)
                                                 for w in (0.0, *steps) for v in (0.0, *steps)}, language)
        print(f"\n{name}: held out {len(held_out)} of {len(runs.queries)} queries; {runs.model['name']} "
              f"({runs.model['backend']}); each rule tuned on the other {len(tuning)}")
        columns = ("ndcg@10", "recall@1", "mrr@10")
        print(f"  {'rule':10}{'chosen on the tuning split':44}" + "".join(f"{c:>10}" for c in columns))
        for rule, (chosen, fuser) in rules.items():
            values = evaluate(runs, held_out, fuser)
            print(f"  {rule:10}{chosen:44}" + "".join(f"{values[c]:>10.4f}" for c in columns))
        print(f"  bound: recall@1 of a rule that puts one list's first hit first is at most "
              f"{bound(runs, held_out):.4f}")


if __name__ == "__main__":
    main()
