"""`POST /v1/embeddings` and `GET /v1/models`, compatible with OpenAI's API and client.

    openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x").embeddings.create(
        model="all-minilm-l6-v2", input=["東京の天気", "weather in Tokyo"])

Unknown request fields are ignored (as OpenAI's clients and the frameworks built
on them send extras); token-id inputs are refused with a clear 400.
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from server.services import Services
from server.tasks.embedding_api import EmbeddedBatch, check_model_name, embed_inputs, encode_vector, served_names
from server.tasks.errors import TaskInputError

MAX_BATCH = 256
MAX_INPUT_CHARS = 20_000
Input = Annotated[str, Meta(min_length=1, max_length=MAX_INPUT_CHARS, description="Text, 1-20000 characters.")]
Inputs = Annotated[list[Input], Meta(min_length=1, max_length=MAX_BATCH, description="1-256 texts.")]


class EmbeddingsRequest(msgspec.Struct, frozen=True):
    input: Input | Inputs
    model: Annotated[str, Meta(min_length=1, max_length=500)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None
    truncate: bool = False  # an extension: embed the beginning of over-long inputs instead of refusing them

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingOut(msgspec.Struct, frozen=True):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(msgspec.Struct, frozen=True):
    data: list[EmbeddingOut]
    model: str
    usage: Usage
    object: str = "list"


class ModelCard(msgspec.Struct, frozen=True):
    id: str
    created: int = 0
    owned_by: str = "yomitoki"
    object: str = "model"


class ModelList(msgspec.Struct, frozen=True):
    data: list[ModelCard]
    object: str = "list"


@post("/v1/embeddings", status_code=200, summary="Embeddings, OpenAI-compatible (float or base64)")
async def create_embeddings(data: JSONBody[EmbeddingsRequest],
                            services: NamedDependency[Services]) -> EmbeddingsResponse:
    model = check_model_name(data.model, services.embedder)
    if data.dimensions is not None and data.dimensions != services.embedder.dimension:
        raise TaskInputError("dimensions", f"{model} returns {services.embedder.dimension}-dimensional vectors "
                                           "and cannot shorten them; leave dimensions out")
    batch: EmbeddedBatch = await anyio.to_thread.run_sync(
        lambda: embed_inputs(services.embedder, data.texts, truncate=data.truncate))
    vectors = [EmbeddingOut(index=i, embedding=encode_vector(v, data.encoding_format))
               for i, v in enumerate(batch.vectors)]
    return EmbeddingsResponse(data=vectors, model=model,
                              usage=Usage(prompt_tokens=batch.tokens, total_tokens=batch.tokens))


@get("/v1/models", summary="The served embedding model, OpenAI-style")
async def list_models(services: NamedDependency[Services]) -> ModelList:
    return ModelList(data=[ModelCard(id=served_names(services.embedder)[0])])


router = Router(path="/", route_handlers=[create_embeddings, list_models])
