"""Hostile and malformed input, and overload: clear 4xx errors, 413, 503 with Retry-After.

Every request field of every endpoint must be bounded (checked from the
schemas, so new endpoints are covered as they appear); Unicode edge cases in
queries and documents are handled; a flood against the real server process is
refused at once past the in-flight bound while memory stays bounded.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import psutil
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from indexer.build.builder import document_id
from indexer.embed.base import Embedder
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import build, start_server

T = TypeVar("T")

HOSTILE_DOCS: dict[str, str] = {
    "tokenizers.md": "# Tokenizers\n\nWordPiece and SentencePiece split text into subword tokens.\n",
    "cafe.md": "# Cafe\u0301\n\nThe cafe\u0301 na\u0131\u0308ve re\u0301sume\u0301 uses combining accents.\n",
    "rtl.md": "# שלום\n\nשלום עולם — مرحبا بالعالم — \u202eevil override\u202c text.\n",
    "nul.txt": "x" * 9000 + "\nafter nine thousand bytes a NUL \x00 hides here.\n",
    "big.txt": "a" * 1_000_000,
    "lines.jsonl": '{"id": "nul", "text": "nul \\u0000 inside JSON text"}\n'
                   '{"id": "bad", "text": "lone \\ud800 surrogate"}\n'
                   '{"id": "ok", "text": "a good line about joiners: zero\\u200bwidth and \\ufeff marks"}\n',
}


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                  keywords: KeywordTokenizer) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("hostile")
    for name, text in HOSTILE_DOCS.items():
        (root / "corpus" / name).parent.mkdir(exist_ok=True)
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    report = build(root / "corpus", root / "index", embedder, keywords)
    return root / "index", report


@pytest.fixture(scope="module")
def app(hostile_index: tuple[Path, Any]) -> Litestar:
    return create_app(ServerSettings(index_dir=hostile_index[0]))


@pytest.fixture(scope="module")
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


# ---------------------------------------------------------------- sizes and lengths


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = json.dumps({"query": "x" * 2_100_000}).encode()
    response = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["status_code"] == 413
    chunked = client.post("/search", content=iter([big[:1_000_000], big[1_000_000:]]),
                          headers={"content-type": "application/json"})  # no Content-Length
    assert chunked.status_code == 413
    for body in (response.json(), chunked.json()):  # the limit named, however the body came
        assert "2,000,000-byte limit of POST /search" in body["detail"], body


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "fusion", "k": 0}, "k"),
        ({"q": "fusion", "k": 101}, "k"),
        ({"q": "x" * 2001}, "q"),
        ({"q": ""}, "q"),
        ({"q": "fusion", "tag": ["t"] * 51}, "tag"),
        ({"q": "fusion", "tag": ["t" * 101]}, "tag"),
        ({"q": "fusion", "source": "s" * 1001}, "source"),
        ({"q": "fusion", "mode": "psychic"}, "mode"),
        ({"q": "fusion", "tags": "hr"}, "tags"),  # a typo of tag: refused, not searched unfiltered
        ({"q": "fusion", "where": '{"field": "language", "eq": "ja"}'}, "where"),
    ],
)
def test_get_search_limits_are_400_naming_the_field(client: TestClient, params: dict, field: str) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 400, response.text
    assert [e["key"] for e in response.json()["extra"]] == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "fusion", "filters": {"tags": ["t"] * 51}}, "tags"),
        ({"query": "fusion", "filters": {"source": "s" * 1001}}, "source"),
        ({"query": "a" * 1_000_000}, "query"),  # 1 MB of one character: under the body limit, over the query's
    ],
)
def test_post_search_limits_are_400_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 400, response.text[:300]
    assert field in response.text[:500]


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def unbounded(schema: dict | bool, where: str, components: dict) -> list[str]:
    """Strings without maxLength (or a pattern), integers without maximum, arrays without maxItems."""
    if not isinstance(schema, dict):
        return []
    schema = _resolve(schema, components)
    bounds = {k: v for k, v in schema.items() if k in ("maxLength", "pattern", "maximum", "maxItems")}
    out = [p for key in ("oneOf", "anyOf", "allOf") for sub in schema.get(key, [])
           for p in unbounded({**_resolve(sub, components), **bounds} if isinstance(sub, dict) else sub,
                              where, components)]
    types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    fixed = "enum" in schema or "const" in schema
    if "string" in types and not fixed and "maxLength" not in schema and "pattern" not in schema:
        out.append(f"{where}: string without maxLength")
    if "integer" in types and not fixed and "maximum" not in schema:
        out.append(f"{where}: integer without maximum")
    if "array" in types:
        out += [] if "maxItems" in schema else [f"{where}: array without maxItems"]
        out += unbounded(schema.get("items", {}), f"{where}[]", components)
    for name, sub in schema.get("properties", {}).items():
        out += unbounded(sub, f"{where}.{name}", components)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out += [] if "maxProperties" in schema else [f"{where}: object without maxProperties"]
    return out


def test_every_request_field_of_every_endpoint_is_bounded(app: Litestar, client: TestClient) -> None:
    """Query parameters from the OpenAPI schema; bodies from the msgspec types that validate them.

    Strings in the query are bounded by the server's request-line limit anyway; numbers and
    lists there are not (k=10**9 would be a valid int), so those must state their bounds.
    """
    openapi = client.get("/schema/openapi.json").json()
    problems = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                if param["in"] == "query":
                    where = f"{method.upper()} {path} ?{param['name']}"
                    problems += [p for p in unbounded(param["schema"], where, {}) if "string" not in p]
    bodies = 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                bodies += 1
                (schema,), components = msgspec.json.schema_components([data.annotation])
                problems += unbounded(schema, f"{sorted(handler.http_methods)} {route.path} body", components)
    assert bodies >= 1
    assert problems == []


# ---------------------------------------------------------------- Unicode


@pytest.mark.parametrize(
    ("raw", "statuses"),
    [
        (b'{"query": "\\ud800"}', {400}),                        # a lone surrogate
        (b'{"query": "\\udc00 and \\ud800\\ud800"}', {400}),
        (b'{"query": "a\\u0000b"}', {200}),                      # NUL
        (b'{"query": "\\u0000\\u0000"}', {400}),                 # only NULs: empty after normalization
        (b'{"query": "e\\u0301\\u0301\\u0301\\u0301"}', {200}),  # stacked combining marks
        ('{"query": "\u0301\u0301"}'.encode(), {200, 400}),      # combining marks with no base
        ('{"query": "שלום \u202e مرحبا"}'.encode(), {200}),      # RTL with a bidi override
        ('{"query": "%s"}' % ("あ" * 1_000_000), {413}),         # 1 MB of one character (3 MB of UTF-8)
        (b'{"query": "\xff\xfe"}', {400}),                       # not UTF-8 at all
    ],
)
def test_unicode_edge_cases_in_queries_are_4xx_or_answered(client: TestClient, raw: str | bytes,
                                                            statuses: set[int]) -> None:
    body = raw.encode() if isinstance(raw, str) else raw
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code in statuses, response.text[:300]
    if response.status_code == 400:
        assert response.json()["detail"]


@pytest.mark.parametrize(("path", "field"), [("/search", "extra"), ("/v1/embeddings", "input"),
                                           ("/similarity", "texts")])
def test_json_nested_past_the_decoders_depth_is_a_400(client: TestClient, path: str, field: str) -> None:
    depth = 5000  # the decoder recurses once a level: past Python's recursion limit
    body = f'{{"query": "x", "{field}": {"[" * depth}1{"]" * depth}}}'
    response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert "nested too deeply" in response.json()["detail"]
    assert client.post("/search", json={"query": "x"}).status_code == 200  # and it keeps serving


@pytest.mark.parametrize(("query_string", "field"), [
    ("q=%FF%FE", "q"),                     # not UTF-8: it would be searched as U+FFFD
    ("q=%E6%9D%B1%E4%BA%AC&source=", "source"),  # an empty prefix, a 400 in POST's filters too
])
def test_bad_get_search_parameters_are_400_naming_them(client: TestClient, query_string: str, field: str) -> None:
    response = client.get(f"/search?{query_string}")
    assert response.status_code == 400, response.text[:300]
    assert field in response.text, response.text[:300]
    assert client.get("/search?q=%E6%9D%B1%E4%BA%AC").status_code == 200  # 東京, percent-encoded UTF-8


def test_unicode_edge_cases_in_documents(client: TestClient, hostile_index: tuple[Path, Any]) -> None:
    _, report = hostile_index
    assert {f.path: f.reason for f in report.failures} == {
        "nul.txt": "binary file",  # a NUL anywhere, not only in the first bytes
        "lines.jsonl:line 1": "NUL character (\\u0000) in a string",
        "lines.jsonl:line 2": "lone surrogate \\ud800 is not valid Unicode"}
    # decomposed "cafe\u0301" in the file, precomposed "café" in the query: one normalization
    hits = client.post("/search", json={"query": "café résumé", "mode": "keyword"}).json()["hits"]
    assert hits and hits[0]["source"] == "cafe.md"
    assert "cafe\u0301" in hits[0]["text"]
    hits = client.post("/search", json={"query": "שלום", "mode": "keyword"}).json()["hits"]
    assert hits and hits[0]["source"] == "rtl.md"
    hits = client.post("/search", json={"query": "joiners", "mode": "keyword"}).json()["hits"]
    assert hits and hits[0]["source"] == "lines.jsonl" and "\u200b" in hits[0]["text"]
    big = client.get(f"/documents/{document_id('big.txt')}")
    assert big.status_code == 200 and big.json()["text"] == "a" * 1_000_000
    assert client.post("/search", json={"query": "a" * 2000, "mode": "hybrid"}).status_code == 200


# ---------------------------------------------------------------- overload


def test_a_flood_gets_503_with_retry_after_at_once_and_memory_stays_bounded(
    hostile_index: tuple[Path, Any], tmp_path: Path
) -> None:
    server = start_server(hostile_index[0], tmp_path / "server.log", "--threads", "1", "--max-in-flight", "4")
    process = psutil.Process(server.process.pid)
    baseline = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        status = get_status(server.url, "/search?q=" + "a" * 1_000_000)  # 1 MB of one character in the URL
        assert status is None or 400 <= status < 500, status  # refused (or the connection closed), no 5xx
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        small = in_own_loop(lambda: flood(server.url, workers=100, seconds=5, body_bytes=0))
        large = in_own_loop(lambda: flood(server.url, workers=100, seconds=2, body_bytes=1_500_000))
    finally:
        done.set()
        sampler.join()
        server.stop()
    growth = (peak - baseline) / 2**20
    refused, served = small.median(503), small.median(200)
    print(f"\nflood: {dict(small.statuses)} small, {dict(large.statuses)} with 1.5 MB bodies; median 503 in "
          f"{refused * 1000:.0f} ms, median 200 in {served * 1000:.0f} ms; RSS {baseline / 2**20:.0f} MiB before, "
          f"peak {peak / 2**20:.0f} MiB (+{growth:.0f} MiB)")
    for result in (small, large):
        assert result.errors == [], result.errors[:5]
        assert set(result.statuses) <= {200, 400, 503}, result.statuses
        assert result.statuses[503] > 0
        assert result.retry_after and all(v.isdigit() and 1 <= int(v) <= 60 for v in result.retry_after)
    assert small.statuses[200] >= 8
    # refused at once, not after waiting in a queue: timed by the server itself, since the client's
    # own 100 connections on the same 2 cores add hundreds of ms to what it sees of either answer
    timed = server_durations(tmp_path / "server.log", "/search")
    assert timed[503] and timed[200], timed.keys()
    assert statistics.median(timed[503]) < statistics.median(timed[200]) / 10, (
        statistics.median(timed[503]), statistics.median(timed[200]))
    assert growth < 300, f"RSS grew by {growth:.0f} MiB under the flood"


def server_durations(log: Path, path: str) -> dict[int, list[float]]:
    """Milliseconds the server's request log gives for each answer to `path`, by status."""
    found: dict[int, list[float]] = {}
    for status, ms in re.findall(rf"path={re.escape(path)} status=(\d+) duration_ms=([\d.]+)",
                                 log.read_text(errors="replace")):
        found.setdefault(int(status), []).append(float(ms))
    return found


def get_status(url: str, target: str) -> int | None:
    """The status of a GET sent as is (httpx refuses over-long URLs); None if the server hung up."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", target)
        return connection.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class FloodResult:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.seconds: dict[int, list[float]] = {}
        self.retry_after: set[str] = set()
        self.errors: list[str] = []

    def median(self, status: int) -> float:
        times = sorted(self.seconds.get(status, [0.0]))
        return times[len(times) // 2]


def in_own_loop(run: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run` on a thread of its own: a test run earlier (Playwright's sync API) may have left an
    event loop running on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


async def flood(url: str, workers: int, seconds: float, body_bytes: int) -> FloodResult:
    """`workers` clients sending searches back to back for `seconds`."""
    result = FloodResult()
    query = ("tokenizers and fusion " * 20)[:400]
    body = (json.dumps({"query": query, "mode": "hybrid", "k": 20}).encode() if not body_bytes
            else b'{"query": "' + b"a" * body_bytes + b'"}')
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    response = await http.post("/search", content=body, headers={"content-type": "application/json"})
                except httpx.HTTPError as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                result.statuses[response.status_code] += 1
                result.seconds.setdefault(response.status_code, []).append(time.monotonic() - started)
                if response.status_code == 503:
                    result.retry_after.add(response.headers.get("retry-after", "missing"))
                    assert "busy" in response.json()["detail"]
                    await asyncio.sleep(0.1)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return result
