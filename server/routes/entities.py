"""`POST /entities` and the named entity models (`/entity-models`; writes are admin operations)."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Request, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta

from indexer.ner.entities import Entity, Extraction, Token
from indexer.ner.named import NAME_PATTERN, EntityModelInfo
from indexer.ner.pipelines import DEFAULT_JA_MODEL, EntityModelLoadError
from indexer.ner.training import TrainOptions, fine_tune, parse_examples
from indexer.store.sqlite import Filters
from server.access import scoped
from server.nlp.entities import (
    EntityJob,
    named_model_errors,
    registry_model_for,
    resolve_mapping,
    run_entities,
)
from server.nlp.errors import TaskInputError
from server.services import Services

MAX_TEXTS = 64
MAX_TEXT_CHARS = 5000
MAX_TRAINING_EXAMPLES = 20_000
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS)]
ModelName = Annotated[str, Meta(pattern=NAME_PATTERN, description="1-64 letters, digits, '_', '.', '-'.")]
TypeName = Annotated[str, Meta(min_length=1, max_length=100)]


class EntitiesRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    texts: Annotated[list[Text], Meta(min_length=1, max_length=MAX_TEXTS)]
    format: Literal["spans", "iob2"] = "spans"
    model: ModelName | None = None
    language: Annotated[str, Meta(pattern=r"^[a-z]{2,3}$")] | None = None
    mapping: Annotated[str, Meta(min_length=1, max_length=200)] | Annotated[
        dict[TypeName, TypeName], Meta(min_length=1, max_length=1000)] | None = None


class EntityOut(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    text: str
    start: int
    end: int
    mapped_type: str | None = None

    @classmethod
    def of(cls, e: Entity) -> EntityOut:
        return cls(e.type, e.text, e.start, e.end, e.mapped_type)


class TokenOut(msgspec.Struct, frozen=True, omit_defaults=True):
    text: str
    start: int
    end: int
    tag: str
    mapped_tag: str | None = None

    @classmethod
    def of(cls, t: Token) -> TokenOut:
        return cls(t.text, t.start, t.end, t.tag, t.mapped_tag)


class ResultOut(msgspec.Struct, frozen=True, omit_defaults=True):
    model: str
    entities: list[EntityOut]
    tokens: list[TokenOut] | None = None

    @classmethod
    def of(cls, model: str, x: Extraction) -> ResultOut:
        tokens = None if x.tokens is None else [TokenOut.of(t) for t in x.tokens]
        return cls(model, [EntityOut.of(e) for e in x.entities], tokens)


class EntitiesResponse(msgspec.Struct, frozen=True):
    format: str
    mapping: str | None
    took_ms: float
    results: list[ResultOut]


class EntityModelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: ModelName
    examples: Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=MAX_TRAINING_EXAMPLES,
                                                   description="{text, entities: [{start, end, type}]} or "
                                                               "{tokens, tags} (IOB2)")]
    base: Annotated[str, Meta(min_length=1, max_length=200)] = DEFAULT_JA_MODEL
    epochs: Annotated[int, Meta(ge=1, le=100)] = 10
    holdout: Annotated[float, Meta(ge=0, le=0.5)] = 0.2
    description: Annotated[str, Meta(max_length=1000)] | None = None
    replace: bool = False


class EntityModelList(msgspec.Struct, frozen=True):
    models: list[EntityModelInfo]


class FacetOut(msgspec.Struct, frozen=True):
    type: str
    text: str
    chunks: int


class FacetsResponse(msgspec.Struct, frozen=True):
    generation: str
    facets: list[FacetOut]


@post("/entities", status_code=200, summary="Named entities: spans with offsets into each text, or IOB2 tokens")
async def find_entities(data: JSONBody[EntitiesRequest], services: NamedDependency[Services]) -> EntitiesResponse:
    started = time.perf_counter()
    job = EntityJob(texts=data.texts, iob2=data.format == "iob2", model=data.model, language=data.language,
                    mapping=resolve_mapping(data.mapping, files=False))  # no server files over HTTP
    result = await anyio.to_thread.run_sync(run_entities, job, registry_model_for(services.models),
                                            services.entity_models.get)
    return EntitiesResponse(format=data.format, mapping=result.mapping,
                            took_ms=round((time.perf_counter() - started) * 1000, 3),
                            results=[ResultOut.of(m, x) for m, x in zip(result.models, result.extractions,
                                                                        strict=True)])


@get("/entities/facets", summary="The index's entities (index --entities) with the chunks mentioning each")
async def entity_facets(services: NamedDependency[Services], request: Request,
                        type: Annotated[str | None, QueryParameter(min_length=1, max_length=100)] = None,
                        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50) -> FacetsResponse:
    access = scoped(Filters(), request)  # a restricted key counts only the chunks of its documents

    def work() -> FacetsResponse:
        with services.index.lease() as searcher:
            counts = searcher.entity_counts(type, limit, access)  # the query parameter `type`
            return FacetsResponse(searcher.generation.name, [FacetOut(t, x, n) for t, x, n in counts])

    return await anyio.to_thread.run_sync(work)


def _train(services: Services, data: EntityModelRequest) -> EntityModelInfo:
    named = services.entity_models
    with named_model_errors():
        named.store.check_free(data.name, replace=data.replace)  # before minutes of training
        examples = parse_examples(data.examples)
        try:
            trained = fine_tune(examples, TrainOptions(base=data.base, epochs=data.epochs, holdout=data.holdout))
        except EntityModelLoadError as exc:
            raise TaskInputError("base", str(exc)) from exc
        info = named.store.save(data.name, trained, description=data.description, replace=data.replace)
    named.forget(data.name)
    return info


@post("/entity-models", status_code=201, summary="Fine-tune and store a named entity model (admin)")
async def post_entity_model(data: JSONBody[EntityModelRequest],
                            services: NamedDependency[Services]) -> EntityModelInfo:
    return await anyio.to_thread.run_sync(_train, services, data)


@get("/entity-models", summary="The named entity models")
async def list_entity_models(services: NamedDependency[Services]) -> EntityModelList:
    return EntityModelList(models=await anyio.to_thread.run_sync(services.entity_models.store.entries))


@get("/entity-models/{name:str}", summary="One named entity model: types, training size, held-out F1")
async def get_entity_model(name: FromPath[str], services: NamedDependency[Services]) -> EntityModelInfo:
    with named_model_errors():
        return await anyio.to_thread.run_sync(services.entity_models.store.info, name)


@delete("/entity-models/{name:str}", status_code=204, summary="Delete a named entity model (admin)")
async def delete_entity_model(name: FromPath[str], services: NamedDependency[Services]) -> None:
    named = services.entity_models
    with named_model_errors():
        await anyio.to_thread.run_sync(partial(named.store.delete, name))
    named.forget(name)


router = Router(path="/", route_handlers=[find_entities, entity_facets, post_entity_model, list_entity_models,
                                          get_entity_model, delete_entity_model])
