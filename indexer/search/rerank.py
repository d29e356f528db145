"""Re-ranking a search's first candidates with a cross-encoder.

Dense and keyword search each score a passage without reading it beside the
query; a cross-encoder reads the two together, and on retrieval sets it
usually puts the right passage first more often than either list or their
fusion. It is also far slower (one model pass per passage), so it reads only
the first `depth` candidates of the ranking it is given, whatever the mode,
and leaves the rest in their order after them.

Each candidate is read as it was embedded: its document's title, then its
text (`embedding_text`). No cross-encoder ships offline; any
sentence-transformers CrossEncoder with one output is loaded by path or hub id
(`indexer.embed.cross_encoder`), e.g. a Japanese reranker for Japanese
documents or a multilingual one for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.embed.cross_encoder import PairScorer, load_cross_encoder
from indexer.store.base import SearchStore
from indexer.text.chunking import embedding_text

DEFAULT_DEPTH = 10   # candidates read per query: a first page; each costs 40-80 ms on 2 cores (README)
MAX_DEPTH = 100


@dataclass(frozen=True)
class Reranking:
    """A cross-encoder and how many candidates it reads per query."""

    scorer: PairScorer
    depth: int = DEFAULT_DEPTH

    @property
    def name(self) -> str:
        return self.scorer.location.name


def load_reranker(name: str, runtime: str = "torch", threads: int | None = None) -> PairScorer:
    """A cross-encoder as a reranker, on `runtime` (torch, onnx or onnx-int8)."""
    return load_cross_encoder(name, "a reranker needs one relevance score per (query, passage) pair",
                              runtime=runtime, threads=threads)


def rerank(query: str, ranked: Sequence[tuple[int, float]], reranking: Reranking,
           store: SearchStore) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """`ranked` with its first `depth` chunks in the cross-encoder's order, and each of their scores.

    Chunks keep their own (fusion) score; ties in the cross-encoder's score keep
    the order they came in.
    """
    head = list(ranked[: reranking.depth])
    if not head:
        return list(ranked), {}
    chunks = store.chunks([cid for cid, _ in head])
    briefs = store.documents_brief(sorted({c.doc_id for c in chunks.values()}))
    titles = {doc: brief[0] for doc, brief in briefs.items()}
    readable = [(cid, score) for cid, score in head if cid in chunks]
    scores = reranking.scorer.score([(query, embedding_text(titles.get(chunks[cid].doc_id, ""), chunks[cid].text))
                                     for cid, _ in readable])
    by_chunk = {cid: score for (cid, _), score in zip(readable, scores, strict=True)}
    order = sorted(range(len(readable)), key=lambda i: (-scores[i], i))
    return [readable[i] for i in order] + list(ranked[reranking.depth:]), by_chunk
