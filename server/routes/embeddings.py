"""`POST /v1/embeddings` and `GET /v1/models`, compatible with OpenAI's API and client.

    openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x").embeddings.create(
        model="all-minilm-l6-v2", input=["東京の天気", "weather in Tokyo"])

Unknown request fields are ignored (as OpenAI's clients and the frameworks built
on them send extras); token-id inputs are refused with a clear 400. Errors keep
the server's one shape and add OpenAI's `error` object beside it, so OpenAI's
clients show the message, the parameter at fault and a code.
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from server.answering.chat import RAG_MODEL
from server.errors import EXCEPTION_HANDLERS, NotFoundError
from server.nlp.embedding_api import EmbeddedBatch, check_model_name, embed_inputs, encode_vector, served_names
from server.nlp.errors import TaskInputError
from server.services import Services

MAX_BATCH = 256
MAX_INPUT_CHARS = 20_000
Input = Annotated[str, Meta(min_length=1, max_length=MAX_INPUT_CHARS, description="Text, 1-20000 characters.")]
Inputs = Annotated[list[Input], Meta(min_length=1, max_length=MAX_BATCH, description="1-256 texts.")]


class EmbeddingsRequest(msgspec.Struct, frozen=True):
    input: Input | Inputs
    model: Annotated[str, Meta(min_length=1, max_length=500)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1, le=65_536)] | None = None
    user: Annotated[str, Meta(max_length=256)] | None = None
    truncate: bool = False  # an extension: embed the beginning of over-long inputs instead of refusing them
    # An extension for models with prefixes (E5): `query` (the default; also right for similarity and
    # classification, per E5's model card) or `passage` for documents to be searched. Others ignore it.
    input_type: Literal["query", "passage"] = "query"

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
        lambda: embed_inputs(services.embedder, data.texts, truncate=data.truncate,
                             kind=data.input_type))
    vectors = [EmbeddingOut(index=i, embedding=encode_vector(v, data.encoding_format))
               for i, v in enumerate(batch.vectors)]
    return EmbeddingsResponse(data=vectors, model=model,
                              usage=Usage(prompt_tokens=batch.tokens, total_tokens=batch.tokens))


@get("/v1/models", summary="The served models, OpenAI-style: the embedding model, the RAG chat model "
                           "(yomitoki-rag) and the generator")
async def list_models(services: NamedDependency[Services]) -> ModelList:
    generator = services.models.entry("generator")
    chat = [RAG_MODEL, *([generator.name] if generator is not None else [])]
    return ModelList(data=[ModelCard(id=name) for name in [served_names(services.embedder)[0], *chat]])


def openai_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    """The server's error response with OpenAI's `{"error": {message, type, param, code}}` added."""
    handler = next(EXCEPTION_HANDLERS[cls] for cls in type(exc).__mro__ if cls in EXCEPTION_HANDLERS)
    response: Response[dict[str, object]] = handler(request, exc)  # type: ignore[operator]
    body = response.content
    extra = body.get("extra")
    problems = [e for e in extra if isinstance(e, dict)] if isinstance(extra, list) else []
    message = "; ".join([str(body["detail"]), *(f"{e.get('key')}: {e.get('message')}" for e in problems)])
    param = getattr(exc, "field", None) or (problems[0].get("key") if problems else None)
    if isinstance(exc, NotFoundError):
        param = "model"
    status = response.status_code or 500
    body["error"] = {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                     "param": param, "code": "model_not_found" if status == 404 else None}
    return response


router = Router(path="/", route_handlers=[create_embeddings, list_models],
                exception_handlers=dict.fromkeys(EXCEPTION_HANDLERS, openai_error))  # each key: app's are by class
