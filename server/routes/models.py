"""`GET /models`: what each loaded or configured model is, without loading any."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Router, get
from litestar.di import NamedDependency

from server.nlp.model_info import ModelFacts, embedder_facts, registry_facts
from server.services import Services


class ModelsResponse(msgspec.Struct, frozen=True):
    models: list[ModelFacts]


@get("/models", summary="Each model's role, source, size, dimensions, window, tokenizer and special tokens")
async def models(services: NamedDependency[Services]) -> ModelsResponse:
    def work() -> list[ModelFacts]:
        return [embedder_facts(services.embedder), *registry_facts(services.models)]

    return ModelsResponse(models=await anyio.to_thread.run_sync(work))


router = Router(path="/", route_handlers=[models])
