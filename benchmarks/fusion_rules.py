"""Choosing a model's fusion shares on a tuning split and reporting them on held-out queries.

    python benchmarks/fusion_rules.py [--model multilingual-e5-small] [--backend torch]
                                      [--sets jsquad,scifact] [--shares 0,0.1,...,1]
                                      [--max-tokens 200 --overlap 40]

Reads each set's dense and keyword candidate lists as the searcher ranks them
(benchmarks/fusion_runs.py: collected once from a real index, then kept), and
fuses them with `indexer.search.fusion.fuse` exactly as `Searcher` does, for:

- keyword and dense search alone;
- weighted RRF at the weights indexes were built with before (English 1.0,
  Japanese 0.2; k 60);
- z-score fusion at each dense share `a` of `--shares`.

The share is *chosen on a tuning split only* and reported on the other split
and on all queries, so no figure comes from the data its weight was fitted on:

- JSQuAD (Japanese): the articles (titles) are shuffled with a fixed seed and
  dealt into two halves; questions about half A's paragraphs tune, half B's
  report. Chosen by recall@1, then MRR@10.
- SciFact (English): the 809 train queries (qrels/train.tsv) tune, the 300
  test queries report. Chosen by nDCG@10.
- SQuAD v1.1 dev (English, `--sets squad`): reported only, at the share
  SciFact chose (a second English check; its articles are not used for tuning).

Beside the figures, the spread that sampling alone gives them: the bootstrap
standard error (2,000 resamples of the reported queries, seeded) of the chosen
rule's main metric and of its paired difference to keyword search, so that a gap
to a target can be read against the noise of the set.

The chosen shares are what `indexer.search.fusion.MODEL_SHARES` records for the
model; the script says whether they agree. `--max-tokens N --overlap M` (as
`yomitoki index` takes them) builds the sets' indexes with other chunks than the
product's (kept in folders of their own), to see what the chunk size does to every
figure.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fusion_runs import WORKDIR, QueryRun, Runs, runs_for  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, metrics  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402
from indexer.search.fusion import LEGACY, MODEL_SHARES, ZSCORE, FusionSettings, fuse  # noqa: E402
from indexer.text.chunking import ChunkSettings  # noqa: E402

SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
LANGUAGE = {"jsquad": "ja", "scifact": "en", "squad": "en"}
CHOSEN_BY = {"ja": ("recall@1", "mrr@10"), "en": ("ndcg@10", "mrr@10")}


def ranking(runs: Runs, query: QueryRun, settings: FusionSettings | None) -> list[str]:
    """Distinct documents of the fused ranking (None: keyword alone; a share of 1 with rrf: dense alone)."""
    if settings is None:
        fused = query.keyword
    else:
        weight = settings.dense_weight(query.coverage, query.language)
        fused = fuse(query.dense, query.keyword, weight, settings)
    return list(dict.fromkeys(runs.documents[cid] for cid, _ in fused))[:10]


def score(runs: Runs, queries: Sequence[QueryRun], settings: FusionSettings | None,
          dense_only: bool = False) -> dict[str, float]:
    rankings = [list(dict.fromkeys(runs.documents[c] for c, _ in q.dense))[:10] if dense_only
                else ranking(runs, q, settings) for q in queries]
    retrieval = RetrievalSet(runs.name, [], [(q.qid, "") for q in queries], runs.relevant)
    return metrics(rankings, retrieval)


def per_query(runs: Runs, queries: Sequence[QueryRun], settings: FusionSettings | None, metric: str) -> np.ndarray:
    """Each query's own value of `metric` under the rule."""
    return np.array([metrics([ranking(runs, q, settings)], RetrievalSet(runs.name, [], [(q.qid, "")], runs.relevant))
                     [metric] for q in queries])


def standard_error(values: np.ndarray, resamples: int = 2000) -> float:
    """The bootstrap standard error of the mean of per-query values (seeded)."""
    draws = np.random.default_rng(0).integers(0, len(values), (resamples, len(values)))
    return float(values[draws].mean(axis=1).std())


def splits(runs: Runs) -> tuple[list[QueryRun], list[QueryRun]]:
    """(tuning, held-out) queries: SciFact by qrels file, the QA sets by article, dealt with a fixed seed."""
    if runs.name == "scifact":
        return ([q for q in runs.queries if q.group == "train"], [q for q in runs.queries if q.group == "test"])
    titles = sorted({q.group for q in runs.queries})
    random.Random(0).shuffle(titles)
    tuning = set(titles[::2])
    return ([q for q in runs.queries if q.group in tuning], [q for q in runs.queries if q.group not in tuning])


def zscore(language: str, share: float) -> FusionSettings:
    return FusionSettings(method=ZSCORE, language_weights=((language, share),))


Table = list[tuple[float, dict[str, float]]]


def choose(runs: Runs, tuning: Sequence[QueryRun], language: str, shares: Sequence[float]) -> tuple[float, Table]:
    """The share with the best tuning figures (first by the language's main metric, then MRR@10)."""
    primary, secondary = CHOSEN_BY[language]
    table = [(share, score(runs, tuning, zscore(language, share))) for share in shares]
    best = max(table, key=lambda row: (round(row[1][primary], 6), round(row[1][secondary], 6), -row[0]))
    return best[0], table


def report(runs: Runs, shares: Sequence[float], english_share: float | None) -> float:
    language = LANGUAGE[runs.name]
    tuning, held_out = splits(runs)
    table: Table = []
    if runs.name == "squad":
        recorded_english = dict(MODEL_SHARES.get(str(runs.model["name"]), ())).get("en", 0.5)
        chosen = english_share if english_share is not None else recorded_english
    else:
        chosen, table = choose(runs, tuning, language, shares)
    held = "test queries" if runs.name == "scifact" else "half B"
    tune = "train queries" if runs.name == "scifact" else "half A"
    print(f"\n{runs.name} ({language}): {len(runs.queries)} queries; tuning on {tune} ({len(tuning)}), "
          f"held out {held} ({len(held_out)}); model {runs.model['name']} ({runs.model['backend']})")
    primary = CHOSEN_BY[language][0]
    if table:
        print(f"  tuning {primary} by dense share: " + "  ".join(f"{s:g}: {m[primary]:.4f}" for s, m in table))
    rows: list[tuple[str, FusionSettings | None, bool]] = [
        ("keyword", None, False), ("dense", None, True),
        (f"rrf (before: {language} weight {dict(LEGACY.language_weights)[language]:g})", LEGACY, False),
        (f"z-score, share {chosen:g} (chosen)", zscore(language, chosen), False),
    ]
    columns = ("ndcg@10", "recall@1", "recall@5", "mrr@10")
    print(f"  {'':36}{'split':>10}" + "".join(f"{c:>10}" for c in columns))
    for label, settings, dense_only in rows:
        for split_name, queries in (("held out", held_out), ("all", runs.queries)):
            if runs.name == "squad" and split_name == "held out":
                continue
            values = score(runs, queries, settings, dense_only)
            print(f"  {label:36}{split_name:>10}" + "".join(f"{values[c]:>10.4f}" for c in columns))
    reported = runs.queries if runs.name == "squad" else held_out
    fused, keyword = (per_query(runs, reported, s, primary) for s in (zscore(language, chosen), None))
    print(f"  spread ({'all' if runs.name == 'squad' else 'held out'}, {len(reported)} queries): z-score {primary} "
          f"{fused.mean():.4f} ± {standard_error(fused):.4f}, minus keyword {(fused - keyword).mean():+.4f} "
          f"± {standard_error(fused - keyword):.4f} (bootstrap standard errors)")
    recorded = dict(MODEL_SHARES.get(str(runs.model["name"]), ())).get(language)
    if runs.name != "squad":
        agree = "agrees" if recorded == chosen else "DIFFERS: update indexer.search.fusion.MODEL_SHARES"
        print(f"  recorded share for {runs.model['name']} / {language}: {recorded} ({agree})")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None, help="how the model runs; default its own (torch)")
    parser.add_argument("--sets", default="jsquad,scifact", help="of jsquad, scifact, squad")
    parser.add_argument("--shares", default=",".join(f"{s:g}" for s in SHARES))
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--max-tokens", type=int, default=ChunkSettings().max_tokens,
                        help="chunk size of the index the runs come from (the product's default unless given)")
    parser.add_argument("--overlap", type=int, default=ChunkSettings().overlap)
    args = parser.parse_args()
    chunking = ChunkSettings(max_tokens=args.max_tokens, overlap=args.overlap)
    shares = [float(s) for s in args.shares.split(",")]
    names = args.sets.split(",")
    english: float | None = None
    for name in sorted(names, key=lambda n: n == "squad"):  # SQuAD last: it reports SciFact's choice
        runs = runs_for(name, args.model, args.backend, args.data, args.workdir, chunking=chunking)
        chosen = report(runs, shares, english)
        if name == "scifact":
            english = chosen


if __name__ == "__main__":
    main()
