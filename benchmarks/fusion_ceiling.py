"""How far other fusion rules get on the same candidate lists, each tuned on the tuning split only.

    python benchmarks/fusion_ceiling.py [--model multilingual-e5-small] [--backend torch] [--sets jsquad]

The same runs and splits as benchmarks/fusion_rules.py. Every rule below picks
its parameters on the tuning split (by recall@1, then MRR@10; SciFact by
nDCG@10) and is reported on the held-out split:

- rrf: weighted reciprocal rank fusion over k x dense weight;
- min-max: a·minmax(dense) + (1 − a)·minmax(keyword) per query;
- z-score: the product's rule (`indexer.search.fusion`), over its share;
- learned: a logistic regression over each candidate's z-scores, inverse ranks,
  and their products with how far each list's first hit leads its second (the
  per-query confidence of each retriever), trained on the tuning split;
- bound: the share of queries whose relevant document is first in at least one
  of the two lists. A rule that puts one of the two first hits first cannot
  have a higher recall@1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_rules import CHOSEN_BY, LANGUAGE, SHARES, splits, zscore  # noqa: E402
from benchmarks.fusion_runs import WORKDIR, QueryRun, Runs, runs_for  # noqa: E402
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
        print(f"\n{name}: held out {len(held_out)} of {len(runs.queries)} queries; {runs.model['name']} "
              f"({runs.model['backend']}); each rule tuned on the other {len(tuning)}")
        columns = ("ndcg@10", "recall@1", "mrr@10")
        print(f"  {'rule':10}{'chosen on the tuning split':40}" + "".join(f"{c:>10}" for c in columns))
        for rule, (chosen, fuser) in rules.items():
            values = evaluate(runs, held_out, fuser)
            print(f"  {rule:10}{chosen:40}" + "".join(f"{values[c]:>10.4f}" for c in columns))
        print(f"  bound: recall@1 of a rule that puts one list's first hit first is at most "
              f"{bound(runs, held_out):.4f}")


if __name__ == "__main__":
    main()
