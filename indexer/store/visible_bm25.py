"""BM25 with the statistics of the chunks a filter lets through, scored from the matching rows' own tokens.

What an API key restricted to some documents observes must not depend on the
others (`server.access`), but a store's own BM25 counts every row: Milvus's
BM25 functions, and FTS5 for an index past the in-memory keyword budget
(`indexer.store.bm25`). There, a restricted search scores here instead: the store
gives the visible rows' count and total length per column (once per filter and
generation), each query term's document frequency among them, and the visible
rows that hold any query term with their tokens; the scores are those the
store would give an index holding only those rows.

Two formulas, each the one its store uses for everything else:

- FTS5 (`fts5_aux.c`, k1 = 1.2, b = 0.75): idf = max(log((N - n + ½) / (n + ½)), 1e-6);
  a column's weight w scales the term frequency; |row| counts all columns.
- Milvus (its BM25 function; k1 = 1.5, b = 0.75, measured on Milvus Lite 3.2):
  idf = log(1 + (N - n + ½) / (n + ½)); each column has its own length and
  average, and its weight scales the column's score (`WeightedRanker`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Formula:
    k1: float
    b: float
    columns_apart: bool  # Milvus: per-column lengths and IDF log(1 + …); FTS5: the row's length in all columns

    def idf(self, rows: int, frequency: int) -> float:
        ratio = (rows - frequency + 0.5) / (frequency + 0.5)
        return math.log(1 + ratio) if self.columns_apart else max(math.log(ratio), 1e-6)


FTS5 = Formula(k1=1.2, b=0.75, columns_apart=False)
MILVUS = Formula(k1=1.5, b=0.75, columns_apart=True)


@dataclass(frozen=True)
class Statistics:
    """Of the visible rows: how many, and their tokens per column in all."""

    rows: int
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class ColumnTerms:
    """A query's unique tokens in one column, the column's weight, and each token's visible document frequency."""

    tokens: tuple[str, ...]
    weight: float
    frequencies: dict[str, int]


def score(candidates: Iterable[tuple[int, Sequence[Sequence[str]]]], columns: Sequence[ColumnTerms],
          statistics: Statistics, formula: Formula, depth: int) -> list[tuple[int, float]]:
    """(row id, BM25) of the `depth` best candidates, best first, ties by id.

    `candidates` are (id, tokens of each column) of the visible rows that hold
    at least one query token; rows holding none would score 0 and are not listed.
    """
    if not statistics.rows:
        return []
    idf = [{t: formula.idf(statistics.rows, c.frequencies.get(t, 0)) for t in c.tokens} for c in columns]
    averages = [total / statistics.rows or 1.0 for total in statistics.tokens]
    average_row = sum(statistics.tokens) / statistics.rows or 1.0
    found = []
    for row_id, row in candidates:
        counts = [Counter(tokens) for tokens in row]
        total = 0.0
        for index, column in enumerate(columns):
            column_score = 0.0
            if formula.columns_apart:
                norm = formula.k1 * (1 - formula.b + formula.b * len(row[index]) / averages[index])
            else:
                norm = formula.k1 * (1 - formula.b + formula.b * sum(map(len, row)) / average_row)
            for token in column.tokens:
                tf = counts[index].get(token, 0)
                if not tf:
                    continue
                if formula.columns_apart:
                    column_score += idf[index][token] * tf * (formula.k1 + 1) / (tf + norm)
                else:
                    weighted = column.weight * tf
                    column_score += idf[index][token] * weighted * (formula.k1 + 1) / (weighted + norm)
            total += column.weight * column_score if formula.columns_apart else column_score
        if total > 0:
            found.append((row_id, total))
    found.sort(key=lambda item: (-item[1], item[0]))
    return found[:depth]
