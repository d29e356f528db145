"""API keys and scopes, CORS, keys kept out of logs, and a hostile corpus at ingestion."""

from __future__ import annotations

import hmac
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.errors import InputError
from indexer.text.keywords import KeywordTokenizer
from server import auth
from server.app import create_app
from server.auth import KeysFileError, collect_keys, file_keys, hash_line, match_key
from server.settings import ServerSettings
from tests.conftest import MODEL, build, start_server, yomitoki

ADMIN_KEY = "adm-9f1c2e-secret"          # on the command line
READ_KEY = "rd-77aa31-secret"            # only its hash, in the keys file
ENV_KEY = "env-5d0b44-secret"            # in YOMITOKI_API_KEYS, read scope
WRONG_KEY = "wrong-31337-secret"
ALL_KEYS = (ADMIN_KEY, READ_KEY, ENV_KEY, WRONG_KEY)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, keywords: KeywordTokenizer) -> Path:
    root = tmp_path_factory.mktemp("secured")
    (root / "corpus").mkdir()
    (root / "corpus" / "a.md").write_text("# Tokenizers\n\nWordPiece splits words into pieces.\n", encoding="utf-8")
    (root / "corpus" / "b.md").write_text("# 東京\n\n東京と銀座の話です。\n", encoding="utf-8")
    build(root / "corpus", root / "index", embedder, keywords)
    (root / "keys").write_text(f"# reader keys\n{hash_line(READ_KEY, 'read', 'alice')}\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def client(index: Path) -> Iterator[TestClient]:
    keys = collect_keys([ADMIN_KEY], {"YOMITOKI_API_KEYS": f"read:{ENV_KEY}"})
    settings = ServerSettings(index_dir=index / "index", api_keys=keys, api_keys_file=index / "keys")
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


SEARCH = {"query": "tokenizers", "k": 1}


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "detail"),
    [
        ("GET", "/health", None, {}, 200, None),
        ("GET", "/schema/openapi.json", None, {}, 200, None),
        ("GET", "/", None, {}, 200, None),
        ("POST", "/search", SEARCH, {}, 401, "missing API key"),
        ("POST", "/search", SEARCH, {"Authorization": f"Basic {ADMIN_KEY}"}, 401, "missing API key"),
        ("POST", "/search", SEARCH, bearer(WRONG_KEY), 401, "invalid API key"),
        ("POST", "/search", SEARCH, {"X-API-Key": WRONG_KEY}, 401, "invalid API key"),
        ("POST", "/search", SEARCH, {"X-API-Key": READ_KEY}, 200, None),
        ("POST", "/search", SEARCH, bearer(ENV_KEY), 200, None),
        ("POST", "/search", SEARCH, bearer(ADMIN_KEY), 200, None),
        ("GET", "/search?q=tokenizers", None, bearer(READ_KEY), 200, None),
        ("GET", "/metrics", None, {}, 401, "missing API key"),
        ("GET", "/metrics", None, bearer(READ_KEY), 200, None),
        ("GET", "/classifiers", None, bearer(READ_KEY), 200, None),
        ("POST", "/classifiers", {"name": "x"}, bearer(READ_KEY), 403, "needs 'admin'"),
        ("POST", "/classifiers", {"name": "x"}, bearer(ADMIN_KEY), 400, None),  # past auth, then validated
        ("DELETE", "/classifiers/nope", None, bearer(ENV_KEY), 403, "needs 'admin'"),
        ("DELETE", "/classifiers/nope", None, bearer(ADMIN_KEY), 404, None),
    ],
)
def test_scopes_401_and_403(client: TestClient, method: str, path: str, body: dict | None,
                            headers: dict[str, str], status: int, detail: str | None) -> None:
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text[:300]
    if detail is not None:
        error = response.json()
        assert error["status_code"] == status and detail in error["detail"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if status == 403:
        assert "'read' scope" in response.json()["detail"]


def test_without_keys_everything_is_open(index: Path) -> None:
    with TestClient(create_app(ServerSettings(index_dir=index / "index"))) as client:
        assert client.post("/search", json=SEARCH).status_code == 200
        assert client.delete("/classifiers/nope").status_code == 404


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_a_body_not_declared_json_is_refused_so_no_other_site_can_write(index: Path, content_type: str | None) -> None:
    """A page on any site may POST these types to a keyless server on localhost without a CORS preflight."""
    body = json.dumps({"name": "made-elsewhere", "examples": [{"text": "good", "label": "a"},
                                                              {"text": "bad", "label": "b"}]})
    headers = {"Origin": "https://evil.example"} | ({"content-type": content_type} if content_type else {})
    with TestClient(create_app(ServerSettings(index_dir=index / "index"))) as client:
        refused = client.post("/classifiers", content=body, headers=headers)
        assert refused.status_code == 415, refused.text
        assert refused.json()["detail"].startswith(f"content-type: {content_type or 'none'} is not accepted here")
        assert client.get("/classifiers/made-elsewhere").status_code == 404
        assert client.post("/search", content=json.dumps(SEARCH), headers=headers).status_code == 415
        declared = client.post("/search", content=json.dumps(SEARCH),
                               headers={"content-type": "application/json; charset=utf-8"})
        assert declared.status_code == 200


def test_a_key_with_letters_beyond_ascii_is_read_as_it_was_hashed(index: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(hash_line("pässwörd-日本語-0123456789", "read", "unicode") + "\n", encoding="utf-8")
    settings = ServerSettings(index_dir=index / "index", api_keys_file=keys_file)
    with TestClient(create_app(settings)) as client:
        for header in ("Authorization", "X-API-Key"):
            value = ("Bearer " if header == "Authorization" else "") + "pässwörd-日本語-0123456789"
            response = client.post("/search", json=SEARCH, headers={header: value.encode()})  # as curl sends it
            assert response.status_code == 200, (header, response.text)
        wrong = "pässwörd".encode("latin-1")  # not UTF-8: read as latin-1, and no key
        assert client.post("/search", json=SEARCH, headers={"X-API-Key": wrong}).status_code == 401


def test_keys_that_are_not_utf8_never_name_another_document_and_static_nul_is_404(index: Path) -> None:
    """%ff and %fe both arrived as U+FFFD, so a write to one replaced the other's document."""
    with TestClient(create_app(ServerSettings(index_dir=index / "index"))) as client:
        for method, path in (("PUT", "/documents/%ff"), ("DELETE", "/documents/%fe"), ("GET", "/documents/%ff"),
                             ("GET", "/documents/%ff/file"), ("GET", "/documents/%ed%a0%80/related"),
                             ("GET", "/documents?key=%ff")):
            response = client.request(method, path, json={"text": "x"} if method == "PUT" else None)
            assert response.status_code == 400, (method, path, response.text)
            assert "the address is not UTF-8 (byte 0x" in response.json()["detail"], response.text
        assert client.get("/documents/%E6%9D%B1").status_code == 404  # 東: UTF-8, merely missing
        for path in ("/static/app.js%00", "/static/%00"):
            assert client.get(path).status_code == 404, path


def test_a_keyless_loopback_server_answers_only_requests_addressed_to_this_machine(index: Path) -> None:
    """DNS rebinding: evil.example re-resolved to 127.0.0.1 would let its page read every answer."""
    settings = ServerSettings(index_dir=index / "index", allowed_hosts=("docs.example",))
    with TestClient(create_app(settings)) as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2", "DOCS.example:443",
                     "localhost.", "app.localhost:8000", "[::ffff:127.0.0.1]:8000"):
            assert client.post("/search", json=SEARCH, headers={"Host": host}).status_code == 200, host
        refused = client.get("/search", params={"q": "tokenizers"}, headers={"Host": "evil.example:8000"})
        assert refused.status_code == 403, refused.text
        assert "--allowed-host evil.example" in refused.json()["detail"]
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 403  # the page, too
    keyed = ServerSettings(index_dir=index / "index", allowed_hosts=(), api_keys=collect_keys([ADMIN_KEY]))
    with TestClient(create_app(keyed)) as client:  # with keys, another site's page has none to send
        headers = {"Host": "proxy.example", "Authorization": f"Bearer {ADMIN_KEY}"}
        assert client.post("/search", json=SEARCH, headers=headers).status_code == 200


def test_allowed_hosts_are_read_as_the_check_compares_them() -> None:
    from server.cli import allowed_host_names

    assert allowed_host_names(("Docs.Example.COM", "proxy.example:8443", "[fd00::1]", "fd00::2")) == (
        "docs.example.com", "proxy.example", "fd00::1", "fd00::2")
    with pytest.raises(click.BadParameter, match="'http://x/' is not a host name"):
        allowed_host_names(("http://x/",))


def test_keys_file_holds_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{hash_line(READ_KEY)}\n{READ_KEY} read\n", encoding="utf-8")
    with pytest.raises(KeysFileError, match=r"keys:2: .*hashes of keys, never keys"):
        file_keys(path)
    path.write_text(f"{hash_line(READ_KEY).split()[0]} owner\n", encoding="utf-8")
    with pytest.raises(KeysFileError, match="unknown scope 'owner'"):
        file_keys(path)
    path.write_text(f"  # comment\n\n{hash_line(ADMIN_KEY, 'admin', 'ops team')}  # trailing comment\n")
    [key] = file_keys(path)
    assert (key.scope, key.label) == ("admin", "ops team")


def test_serve_refuses_a_keys_file_with_a_plain_key(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text(f"{READ_KEY} read\n", encoding="utf-8")
    result = subprocess.run(yomitoki("serve", "--index", str(tmp_path), "--api-keys-file", str(tmp_path / "keys")),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "never keys" in result.stderr, result.stderr
    assert READ_KEY not in result.stderr


def test_a_scope_with_no_key_after_it_is_refused_never_an_admin_key(tmp_path: Path) -> None:
    """`read:$READER` with the variable unset once made "read:" an admin key anyone could guess."""
    for value in ("read:", "admin:", "read:  "):
        with pytest.raises(InputError, match=r"a scope with no key after it; write (read|admin):KEY"):
            collect_keys([], {"YOMITOKI_API_KEYS": f"{ADMIN_KEY},{value}"})
    with pytest.raises(InputError, match=r"--api-key #1 is 'read:'"):
        collect_keys(["read:"])
    result = subprocess.run(yomitoki("serve", "--index", str(tmp_path)), capture_output=True, text=True, timeout=120,
                            env={**os.environ, "YOMITOKI_API_KEYS": f"{ADMIN_KEY},read:"})
    assert result.returncode == 2 and "YOMITOKI_API_KEYS #2 is 'read:'" in result.stderr, result.stderr


def test_serve_refuses_a_keys_file_that_holds_no_keys(tmp_path: Path) -> None:
    """Otherwise a file whose last key was removed would serve nothing to anyone, with no word why."""
    (tmp_path / "keys").write_text("# every key was removed\n", encoding="utf-8")
    result = subprocess.run(yomitoki("serve", "--index", str(tmp_path), "--api-keys-file", str(tmp_path / "keys")),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "holds no keys" in result.stderr and "keys add" in result.stderr, result.stderr


def add_key(keys_file: Path, name: str) -> str:
    done = subprocess.run(yomitoki("keys", "add", name, "--file", str(keys_file)), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_keys_add_and_remove_through_a_symbolic_link_keep_the_link(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "keys.txt").symlink_to(tmp_path / "secrets" / "keys.txt")
    add_key(tmp_path / "keys.txt", "alice")
    add_key(tmp_path / "keys.txt", "bob")
    subprocess.run(yomitoki("keys", "remove", "alice", "--file", str(tmp_path / "keys.txt")), check=True, timeout=120)
    assert (tmp_path / "keys.txt").is_symlink()
    assert [key.label for key in file_keys(tmp_path / "secrets" / "keys.txt")] == ["bob"]
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == ["keys.txt"]  # no scratch file left


def test_the_running_server_reads_its_keys_file_again_when_keys_are_added_or_removed(index: Path,
                                                                                      tmp_path: Path) -> None:
    """`yomitoki keys remove` takes effect at the next request, not at the next restart."""
    keys_file = tmp_path / "keys.txt"
    alice = add_key(keys_file, "alice")
    assert keys_file.stat().st_mode & 0o777 == 0o600
    server = start_server(index / "index", tmp_path / "server.log", "--threads", "1", "--api-keys-file", str(keys_file))

    def status(key: str) -> int:
        return httpx.post(f"{server.url}/search", json=SEARCH, headers=bearer(key), timeout=30).status_code

    try:
        before = status(alice)
        bob = add_key(keys_file, "bob")
        added = (status(alice), status(bob))
        subprocess.run(yomitoki("keys", "remove", "alice", "--file", str(keys_file)), check=True, timeout=120)
        removed = (status(alice), status(bob))
        text = keys_file.read_text(encoding="utf-8")
        keys_file.write_text(text + "not a hash\n", encoding="utf-8")  # a bad hand edit: no key of the file passes
        broken = status(bob)
        keys_file.write_text(text, encoding="utf-8")
        fixed = status(bob)
    finally:
        server.stop()
    assert (before, added, removed, broken, fixed) == (200, (200, 200), (401, 200), 401, 200)
    assert keys_file.stat().st_mode & 0o777 == 0o600
    log = server.log.read_text()
    assert "none of its keys is accepted until it is fixed" in log and alice not in log and bob not in log


def test_keys_are_compared_in_constant_time_against_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = collect_keys([ADMIN_KEY, f"read:{READ_KEY}", f"read:{ENV_KEY}"])
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    assert match_key(keys, ADMIN_KEY) == keys[0]  # the first key matches, the others are still compared
    assert len(calls) == 3 and all(len(a) == len(b) == 32 for a, b in calls)
    assert match_key(keys, WRONG_KEY) is None and len(calls) == 6


def test_keys_do_not_appear_in_reprs() -> None:
    settings = ServerSettings(index_dir=Path("x"), api_keys=collect_keys([ADMIN_KEY]))
    assert ADMIN_KEY not in repr(settings)
    assert ADMIN_KEY not in repr(collect_keys([ADMIN_KEY]))


def test_cors_is_off_by_default_and_allows_only_configured_origins(index: Path) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with TestClient(create_app(ServerSettings(index_dir=index / "index"))) as client:
        response = client.post("/search", json=SEARCH, headers={"Origin": "https://evil.example"})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
        response = client.options("/search", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in response.headers
    settings = ServerSettings(index_dir=index / "index", cors_origins=("https://app.example",))
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/search", headers={"Origin": "https://app.example", **preflight})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = client.options("/search", headers={"Origin": "https://evil.example", **preflight})
        assert refused.headers.get("access-control-allow-origin") != "https://evil.example"
        answer = client.post("/search", json=SEARCH, headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"


def test_keys_never_reach_the_log_of_the_real_server(index: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOMITOKI_API_KEYS", f"read:{ENV_KEY}")
    server = start_server(index / "index", tmp_path / "server.log", "--threads", "1", "--log-level", "debug",
                          "--api-key", ADMIN_KEY, "--api-keys-file", str(index / "keys"),
                          "--cors-origin", "https://app.example")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            statuses = [
                http.post("/search", json=SEARCH, headers=bearer(ADMIN_KEY)).status_code,
                http.post("/search", json=SEARCH, headers={"X-API-Key": READ_KEY}).status_code,
                http.post("/search", json=SEARCH, headers=bearer(ENV_KEY)).status_code,
                http.post("/search", json=SEARCH, headers=bearer(WRONG_KEY)).status_code,
                http.get("/search", params={"q": WRONG_KEY, "api_key": WRONG_KEY},
                         headers=bearer(READ_KEY)).status_code,
                http.delete("/classifiers/x", headers=bearer(READ_KEY)).status_code,
                http.options("/search", headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST"}).status_code,
            ]
    finally:
        server.stop()
    assert statuses == [200, 200, 200, 401, 400, 403, 204]  # 400: GET /search takes no api_key parameter
    log = server.log.read_text()
    assert not [key for key in ALL_KEYS if key in log], log
    assert "authorization" not in log.lower() and "bearer" not in log.lower()
    assert 'key="--api-key #1"' in log and "key=alice" in log and 'key="YOMITOKI_API_KEYS #1"' in log
    assert log.count("method=POST path=/search status=401") == 1


# ---------------------------------------------------------------- ingestion


def test_index_skips_what_it_must_not_read_lists_it_and_exits_3(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.md").write_text("# Secret\n\nzqxsecret outside the corpus\n", encoding="utf-8")
    (corpus / "good.md").write_text("# Good\n\nA readable document.\n", encoding="utf-8")
    (corpus / "escape.md").symlink_to(tmp_path / "outside" / "secret.md")
    (corpus / "sub" / "loop").symlink_to(corpus, target_is_directory=True)
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "cyrillic.md").write_bytes("Привет, мир".encode("cp1251"))
    with (corpus / "huge.txt").open("wb") as handle:
        handle.truncate(10_000_001)
    (corpus / "lines.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "\\ud800"}\n',
                                        encoding="utf-8")
    result = subprocess.run(yomitoki("index", str(corpus), "--index", str(tmp_path / "index"), "--model", MODEL,
                                     "--json"), capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    reasons = {f["path"]: f["reason"] for f in report["failures"]}
    assert reasons == {
        "escape.md": "symlink outside the corpus root",
        "sub/loop": "symlink loop",
        "image.txt": "binary file",
        "cyrillic.md": "not valid UTF-8 (byte 0xcf at offset 0), Shift_JIS, EUC-JP or Windows-1252",
        "huge.txt": "larger than 10 MB limit (10,000,001 bytes)",
        "lines.jsonl:line 2": "lone surrogate \\ud800 is not valid Unicode",
    }
    assert report["documents"] == 2  # good.md and the good JSON line
    store = (tmp_path / "index" / report["generation"] / "store.sqlite").read_bytes()
    assert b"zqxsecret" not in store


def test_the_settings_handed_to_workers_carry_plain_keys_and_the_keys_file(tmp_path: Path) -> None:
    """`serve --workers N --api-key …`: every worker died decoding the keys (an ApiKey's `where` is typed object)."""
    from server.settings import WORKER_SETTINGS_ENV

    settings = ServerSettings(index_dir=tmp_path, api_keys=collect_keys([ADMIN_KEY, f"read:{READ_KEY}"]),
                              api_keys_file=tmp_path / "keys")
    handed = ServerSettings.from_env({WORKER_SETTINGS_ENV: settings.to_env()})
    assert [(k.digest, k.scope, k.label, k.where) for k in handed.api_keys] == \
        [(k.digest, k.scope, k.label, k.where) for k in settings.api_keys]
    assert handed.api_keys_file == tmp_path / "keys"


def test_a_worker_started_while_the_keys_file_is_bad_starts_and_admits_none_of_its_keys(index: Path) -> None:
    """Only `serve` refuses a bad file up front; a worker replacing a dead one must not die on it too."""
    broken = index / "broken-keys"
    broken.write_text(f"{hash_line(READ_KEY, 'read', 'alice')}\nnot a hash\n", encoding="utf-8")
    settings = ServerSettings(index_dir=index / "index", api_keys=collect_keys([ADMIN_KEY]), api_keys_file=broken)
    with TestClient(create_app(settings)) as client:
        assert client.post("/search", json=SEARCH, headers=bearer(READ_KEY)).status_code == 401
        assert client.post("/search", json=SEARCH, headers=bearer(ADMIN_KEY)).status_code == 200
        broken.write_text(f"{hash_line(READ_KEY, 'read', 'alice')}\n", encoding="utf-8")
        assert client.post("/search", json=SEARCH, headers=bearer(READ_KEY)).status_code == 200


def test_keys_remove_matches_the_whole_label_as_keys_list_shows_it(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{hash_line('a' * 40, 'read', 'alice smith')}\n{hash_line('b' * 40, 'read', 'alice')}\n",
                         encoding="utf-8")
    subprocess.run(yomitoki("keys", "remove", "alice", "--file", str(keys_file)), check=True, timeout=120)
    assert [key.label for key in file_keys(keys_file)] == ["alice smith"]
    subprocess.run(yomitoki("keys", "remove", "alice smith", "--file", str(keys_file)), check=True, timeout=120)
    assert file_keys(keys_file) == []
