"""Documents by key, their original files, and writes: `PUT` and `DELETE /documents/{key}`.

A write is a JSON body (`text`, `title`, `metadata`) or a multipart upload (`file`, with
optional `title` and `metadata` fields) of any supported format but JSON lines. It goes
through the incremental build (indexer.build.writes) and answers once the new generation is
published and served, naming it. Writes need the admin scope when API keys are on.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import anyio.to_thread
import msgspec
from litestar import Request, Router, delete, get, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.response import File
from msgspec import Meta

from indexer.build.builder import BuildReport, NoIndexError, document_id
from indexer.build.writes import MAX_TEXT_CHARS, WriteError, check_key, original_path, uploaded_document
from indexer.errors import InputError
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexStateError, IndexWriteError
from indexer.store.sqlite import StoredDocument
from indexer.store.where import Where
from indexer.text.image_text import MEDIA_TYPES as IMAGE_MEDIA_TYPES
from indexer.text.loaders import TITLE_MAX_CHARS, LoadError, SourceDocument, text_document
from indexer.text.pages import page_bounds, page_starts
from server.access import access_filter, visible
from server.errors import ConflictError, NotFoundError, UnavailableError
from server.schemas import DocumentOut, PageOut
from server.services import Services

MAX_UPLOAD_BYTES = 20_000_000
ORIGINAL_TYPES = {"pdf": "application/pdf",
                  "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                  "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                  "doc": "application/msword", "ppt": "application/vnd.ms-powerpoint", **IMAGE_MEDIA_TYPES}


class DocumentWrite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A document given as text."""

    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS,
                              description=f"The document's text, 1-{MAX_TEXT_CHARS:,} characters.")]
    title: Annotated[str, Meta(max_length=TITLE_MAX_CHARS)] | None = None
    metadata: dict[str, Any] = {}


class WriteResult(msgspec.Struct, frozen=True):
    key: str
    id: str
    action: str            # "put" or "delete"
    generation: str        # the generation that holds the write (served by the time this answers)
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks_embedded: int
    documents: int


# ---------------------------------------------------------------- reading


def document_out(searcher: Searcher, doc: StoredDocument) -> DocumentOut:
    starts = page_starts(doc.metadata)
    pages = [PageOut(page=n, start=s, end=e) for n, (s, e) in enumerate(page_bounds(starts, len(doc.text)), 1)]
    metadata = {name: value for name, value in doc.metadata.items() if name != "page_starts"}
    has_file = doc.metadata.get("format") in ORIGINAL_TYPES
    return DocumentOut(id=doc.id, source=doc.source, title=doc.title, language=doc.language, text=doc.text,
                       metadata=metadata, generation=searcher.generation.name, key=doc.key, pages=pages,
                       file=f"/documents/{doc.id}/file" if has_file else None)


def find_document(searcher: Searcher, id_or_key: str, where: Where | None = None) -> StoredDocument:
    """A document by its id, else by its key; NotFoundError when neither names one that the access filter
    `where` admits (a document hidden from the caller's key is exactly a missing one)."""
    doc = next((doc for doc in searcher.documents_named(id_or_key) if visible(doc, where)), None)
    if doc is None:
        raise NotFoundError(f"no document with id or key {id_or_key!r}")
    return doc


async def read_document(services: Services, id_or_key: str, where: Where | None = None) -> DocumentOut:
    def work() -> DocumentOut:
        with services.index.lease() as searcher:
            return document_out(searcher, find_document(searcher, id_or_key, where))

    return await anyio.to_thread.run_sync(work)


# `key` is the path's one name for GET, PUT and DELETE (OpenAPI allows no two names at one place in a path, and
# Litestar no two routers on one path); GET takes a document's id there too.
def utf8_address(request: Request[Any, Any, Any]) -> None:
    """Refuse a path or query string whose percent-encoded bytes are not UTF-8. They arrive decoded with U+FFFD
    for each bad byte, so %ff and %fe would name one document: a write to one would replace the other's."""
    for part in (request.scope.get("raw_path") or b"", request.scope.get("query_string") or b""):
        try:
            unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"the address is not UTF-8 (byte {exc.object[exc.start]:#04x}): percent-encode the "
                             "UTF-8 bytes of the key", field="key") from None


@get("/documents/{key:str}", summary="A document's original text, metadata and pages, by id or key")
async def get_document(key: FromPath[str], services: NamedDependency[Services],
                       request: Request[Any, Any, Any]) -> DocumentOut:
    utf8_address(request)
    return await read_document(services, key, access_filter(request))  # hidden from this key: as missing


@get("/documents", summary="A document by its key (a JSON-lines id, a file's path, an uploaded key)")
async def get_document_by_key(
    services: NamedDependency[Services], key: Annotated[str, QueryParameter(min_length=1, max_length=1000)],
    request: Request[Any, Any, Any],
) -> DocumentOut:
    utf8_address(request)
    return await read_document(services, key, access_filter(request))


def _original(services: Services, searcher: Searcher, doc: StoredDocument) -> Path | None:
    """The original file of an uploaded or indexed PDF, Word or PowerPoint document, if it is still there."""
    folder = services.writer.originals
    if folder is not None and (uploaded := original_path(folder, doc.id, doc.metadata.get("format"))).is_file():
        return uploaded
    corpus = searcher.generation.manifest.corpus
    if not corpus:
        return None
    root = Path(corpus).resolve()
    path = (root / doc.source).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


@get("/documents/{key:str}/file", summary="The original PDF, Word, PowerPoint or image file of a document (id or key)")
async def get_document_file(key: FromPath[str], services: NamedDependency[Services],
                            request: Request[Any, Any, Any]) -> File:
    utf8_address(request)
    where = access_filter(request)

    def work() -> File:
        with services.index.lease() as searcher:
            doc = find_document(searcher, key, where)
            kind = str(doc.metadata.get("format"))
            if kind not in ORIGINAL_TYPES:
                raise NotFoundError(f"document {doc.key!r} is {kind}, not a PDF, Word, PowerPoint or image file: "
                                    "read its text instead")
            path = _original(services, searcher, doc)
        if path is None and services.writer.originals is None and "filename" in doc.metadata:
            raise NotFoundError(f"the file of {doc.key!r} was not kept: an index on a Milvus server keeps no "
                                "uploaded files (its servers share no disk); read its text instead")
        if path is None:
            raise NotFoundError(f"the original file of {doc.key!r} is no longer where it was indexed from")
        name = Path(doc.source).name if Path(doc.source).suffix else f"{doc.source}.{kind}"
        return File(path=path, media_type=ORIGINAL_TYPES[kind], filename=name, content_disposition_type="inline")

    return await anyio.to_thread.run_sync(work)


# ---------------------------------------------------------------- writing


def _metadata_field(value: object) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    try:
        metadata = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ValidationException("metadata: not valid JSON", extra=[{"key": "metadata", "message": exc.msg}]) from exc
    if not isinstance(metadata, dict):
        raise ValidationException("metadata: must be a JSON object", extra=[{"key": "metadata"}])
    return metadata


async def _read_write(request: Request[Any, Any, Any], key: str) -> tuple[SourceDocument, bytes | None]:
    """The document a PUT gives, as text (JSON) or as a file (multipart), and the file's bytes."""
    if request.content_type[0] == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValidationException("file: a multipart write needs a 'file' field", extra=[{"key": "file"}])
        content = await upload.read()
        title, metadata = form.get("title"), _metadata_field(form.get("metadata"))
        doc = await anyio.to_thread.run_sync(
            lambda: uploaded_document(key, upload.filename or "upload", content, str(title or "") or None, metadata))
        return doc, content if doc.metadata.get("format") in ORIGINAL_TYPES else None
    try:
        body = msgspec.json.decode(await request.body(), type=DocumentWrite)
    except msgspec.ValidationError as exc:
        raise ValidationException(f"invalid document: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ValidationException(f"body is not valid JSON ({exc}); send JSON or multipart/form-data") from exc
    try:
        return text_document(key, body.text, body.title, body.metadata), None
    except LoadError as exc:
        raise WriteError(f"text: {exc.reason}") from exc


async def _published(services: Services, key: str, action: str, future: Any) -> WriteResult:
    try:
        report: BuildReport = await asyncio.wrap_future(future)
    except IndexWriteError as exc:  # a full disk or a read-only folder: not the request's fault, nor a conflict
        raise UnavailableError(f"the write was not made: {exc}") from exc
    except (NoIndexError, IndexStateError) as exc:  # a build by the CLI holds the lock, or no index to change
        raise ConflictError(f"the write was not made: {exc}") from exc
    await anyio.to_thread.run_sync(services.index.refresh)  # serve it before answering
    return WriteResult(key=key, id=document_id(key), action=action, generation=report.generation,
                       added=report.added, changed=report.changed, removed=report.removed,
                       unchanged=report.unchanged, chunks_embedded=report.chunks_embedded,
                       documents=report.documents)


@put("/documents/{key:str}", summary="Add or replace a document (JSON text or a file upload)", status_code=200,
     request_max_body_size=MAX_UPLOAD_BYTES, opt={"uploads": True})
async def put_document(key: FromPath[str], request: Request[Any, Any, Any],
                       services: NamedDependency[Services]) -> WriteResult:
    utf8_address(request)
    check_key(key)
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_UPLOAD_BYTES:
        raise HTTPException(status_code=413, detail=f"body of {int(size):,} bytes is larger than the "
                                                    f"{MAX_UPLOAD_BYTES:,}-byte limit of a document write")
    doc, original = await _read_write(request, key)
    return await _published(services, key, "put", services.writer.put(doc, original))


@delete("/documents/{key:str}", summary="Remove a document", status_code=200)
async def delete_document(key: FromPath[str], services: NamedDependency[Services],
                          request: Request[Any, Any, Any]) -> WriteResult:
    utf8_address(request)
    check_key(key)

    def exists() -> bool:
        with services.index.lease() as searcher:
            return searcher.document(document_id(key)) is not None

    if not await anyio.to_thread.run_sync(exists):
        raise NotFoundError(f"no document with key {key!r}")
    return await _published(services, key, "delete", services.writer.delete(key))


router = Router(path="/", route_handlers=[get_document, get_document_by_key, get_document_file, put_document,
                                          delete_document])
