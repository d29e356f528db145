"""Micro-batching of query embeddings: concurrent queries share forward passes, results unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from server.app import create_app, open_services
from server.batching import QueryBatcher
from server.settings import ServerSettings

QUERIES = [f"how does {topic} work?" for topic in (
    "reciprocal rank fusion", "BM25", "byte pair encoding", "a FAISS index", "extractive QA", "NFKC",
    "fine-tuning", "the Hugging Face cache", "named entity recognition", "offset mapping", "reranking",
    "sentence splitting")]


class Recording:
    """The real embedder, noting the size of each call."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.calls: list[int] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.embedder.embed(texts, batch_size=len(texts))


async def embed_all(batcher: QueryBatcher, texts: list[str], stagger_ms: float = 0.0) -> list[np.ndarray]:
    async with batcher.running():
        async def one(i: int, text: str) -> np.ndarray:
            await asyncio.sleep(i * stagger_ms / 1000)
            return await batcher.embed(text)

        return await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))


def test_concurrent_queries_share_batches_and_get_their_own_vectors(embedder: Embedder) -> None:
    recording = Recording(embedder)
    batcher = QueryBatcher(recording, max_batch=8, max_wait_ms=5)
    texts = [query for query in QUERIES for _ in range(2)]  # each asked twice, at once
    vectors = asyncio.run(embed_all(batcher, texts))
    assert recording.calls == [4, 4, 4]  # batches of 8 queries; the same query is embedded once
    assert batcher.stats.queries == len(texts) and batcher.stats.largest == 8
    alone = embedder.embed(texts)
    assert (np.vstack(vectors) * alone).sum(axis=1).min() > 0.9999


def test_a_lone_query_is_embedded_at_once(embedder: Embedder) -> None:
    recording = Recording(embedder)
    batcher = QueryBatcher(recording, max_batch=32, max_wait_ms=1000)
    async def sequential() -> None:
        async with batcher.running():
            for text in QUERIES[:3]:
                await asyncio.wait_for(batcher.embed(text), timeout=30)  # never waits out the 1 s window
    asyncio.run(sequential())
    assert recording.calls == [1, 1, 1]


def test_queries_arriving_within_the_wait_join_one_batch(embedder: Embedder) -> None:
    recording = Recording(embedder)
    batcher = QueryBatcher(recording, max_batch=32, max_wait_ms=200)
    batcher._last_size = 2  # as after a busy moment: the collector waits for company
    asyncio.run(embed_all(batcher, QUERIES[:6], stagger_ms=5))
    assert recording.calls == [6]


def test_a_claimed_model_holds_later_queries_back_and_batches_them_after(embedder: Embedder) -> None:
    recording = Recording(embedder)
    batcher = QueryBatcher(recording, max_batch=32, max_wait_ms=0)

    async def scenario() -> tuple[bool, bool, list[np.ndarray]]:
        async with batcher.running():
            release = batcher.claim()
            assert release is not None
            second_claim = batcher.claim() is None  # held: nobody else may claim it
            waiting = [asyncio.ensure_future(batcher.embed(text)) for text in QUERIES[:3]]
            await asyncio.sleep(0.2)
            held_back = not any(w.done() for w in waiting)  # queued behind the claimed query
            release()
            release()  # a second call does nothing
            vectors = await asyncio.wait_for(asyncio.gather(*waiting), timeout=30)
            again = batcher.claim()
            assert again is not None
            again()
            return second_claim, held_back, vectors

    second_claim, held_back, vectors = asyncio.run(scenario())
    assert second_claim and held_back
    assert recording.calls == [3]  # the three that queued meanwhile formed one batch
    assert (np.vstack(vectors) * embedder.embed(QUERIES[:3])).sum(axis=1).min() > 0.9999
    assert batcher.stats.batches == 3 and batcher.stats.queries == 5  # claims count as batches of one


def test_a_failing_batch_fails_each_of_its_queries() -> None:
    def broken(texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")

    batcher = QueryBatcher(broken)
    with pytest.raises(RuntimeError, match="model exploded"):
        asyncio.run(embed_all(batcher, QUERIES[:4]))
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(broken, max_batch=0)


def test_http_search_through_the_batcher_matches_the_searcher(
    corpus_index: IndexDirectory, searcher: Searcher
) -> None:
    settings = ServerSettings(index_dir=corpus_index.path)
    with TestClient(create_app(settings, open_services(settings))) as client:
        for query in QUERIES[:4]:
            response = client.post("/search", json={"query": query, "mode": "hybrid", "k": 5})
            assert response.status_code == 200, response.text
            expected = searcher.search(query, mode="hybrid", k=5)
            assert [h["chunk_id"] for h in response.json()["hits"]] == [h.chunk_id for h in expected]
        response = client.get("/search", params={"q": "東京", "mode": "keyword"})
        assert response.status_code == 200


@pytest.mark.timeout(120)  # a model left claimed hangs the last search: fail here, not at the suite's limit
def test_a_failed_search_gives_the_claimed_model_back(corpus_index: IndexDirectory) -> None:
    settings = ServerSettings(index_dir=corpus_index.path)
    services = open_services(settings)
    with TestClient(create_app(settings, services)) as client:
        for _ in range(3):  # empty after normalization: refused after the model was claimed
            assert client.post("/search", json={"query": "\u0000\u0000", "k": 3}).status_code == 400
        # a model left claimed would hold this query in the queue for ever
        assert client.post("/search", json={"query": "BM25", "k": 3}, timeout=30).status_code == 200


def test_the_app_registers_its_batcher(corpus_index: IndexDirectory) -> None:
    settings = ServerSettings(index_dir=corpus_index.path)
    services = open_services(settings)
    with TestClient(create_app(settings, services)) as client:
        assert client.post("/search", json={"query": "BM25", "k": 3}).status_code == 200
        batcher = services.batcher
        assert isinstance(batcher, QueryBatcher) and batcher.stats.queries == 1
        assert 'yomitoki_batcher_batch_size_count{kind="query_batcher"} 1' in client.get("/metrics").text
    assert services.batcher is None  # the batcher lives as long as the app that ran it
