"""`POST /similarity`: how alike texts are, as pairs or one text against many."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import anyio.to_thread
import msgspec
from litestar import Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from server.nlp.errors import TaskInputError
from server.nlp.similarity import PairScorer, Similarities, one_to_many, similarities
from server.services import Services

MAX_PAIRS = 256
Text = Annotated[str, Meta(min_length=1, max_length=10_000, description="A text, 1-10000 characters.")]


class SimilarityRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either `pairs`, or `source` with `targets`."""

    pairs: Annotated[list[tuple[Text, Text]], Meta(min_length=1, max_length=MAX_PAIRS)] | None = None
    source: Text | None = None
    targets: Annotated[list[Text], Meta(min_length=1, max_length=MAX_PAIRS)] | None = None
    method: Literal["auto", "cosine", "cross-encoder"] = "auto"

    def to_pairs(self) -> list[tuple[str, str]]:
        if self.pairs is not None:
            if self.source is not None or self.targets is not None:
                raise TaskInputError("pairs", "give either pairs or source with targets, not both")
            return [(a, b) for a, b in self.pairs]
        if self.source is None or self.targets is None:
            missing = "source" if self.source is None else "targets"
            raise TaskInputError(missing, "give pairs, or both source and targets")
        return one_to_many(self.source, self.targets)


class SimilarityResponse(msgspec.Struct, frozen=True):
    scores: list[float]   # one per pair, or per target, in request order
    method: Literal["cosine", "cross-encoder"]
    model: str
    took_ms: float


def _scorer(services: Services, method: str) -> PairScorer | None:
    """The configured cross-encoder (loaded on first use), unless cosine was asked for."""
    if method == "cosine" or not services.models.has("sts"):
        return None
    scorer: PairScorer = services.models.get("sts")
    return scorer


@post("/similarity", status_code=200, summary="Similarity of text pairs, or of one text against many")
async def similarity(data: JSONBody[SimilarityRequest], services: NamedDependency[Services]) -> SimilarityResponse:
    started = time.perf_counter()
    pairs = data.to_pairs()

    def work() -> Similarities:
        return similarities(services.embedder, pairs, method=data.method, scorer=_scorer(services, data.method))

    result = await anyio.to_thread.run_sync(work)
    return SimilarityResponse(scores=result.scores, method=result.method, model=result.model,
                              took_ms=round((time.perf_counter() - started) * 1000, 3))


router = Router(path="/", route_handlers=[similarity])
