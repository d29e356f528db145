"""`PUT` and `DELETE /documents/{key}`: writes through the incremental build, served at once.

Each test gets its own small index; the end-to-end test writes into a real server process
while other clients search it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from indexer.build.builder import document_id
from indexer.embed.base import Embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.pages import page_starts
from server.app import create_app
from server.auth import plain_keys
from server.routes.documents import MAX_UPLOAD_BYTES
from server.settings import ServerSettings
from tests.conftest import build, start_server

needs_producers = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("chromium", "soffice", "tesseract")),
    reason="needs Debian's chromium, libreoffice-writer-nogui and tesseract-ocr(-jpn) (see .ci/run)")

GUIDE = "# Backups\n\nBackups run every night at three. They are kept for thirty days.\n"
FAQ = "# よくある質問\n\nサーバーの再起動は管理画面から行う。\n"


@pytest.fixture
def small_index(tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text(GUIDE)
    (corpus / "faq.md").write_text(FAQ)
    index = tmp_path / "index"
    build(corpus, index, embedder, keywords)
    return index


@pytest.fixture
def client(small_index: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(ServerSettings(index_dir=small_index, generator=None))) as test_client:
        yield test_client


def _generation(client: TestClient) -> str:  # type: ignore[type-arg]
    return str(client.get("/health").json()["generation"])


def test_put_text_is_searchable_at_once_and_names_its_generation(client: TestClient) -> None:  # type: ignore[type-arg]
    before = _generation(client)
    body = {"text": "The coffee machine on floor two is descaled every Friday.", "title": "Kitchen",
            "metadata": {"tags": ["office"], "team": "facilities"}}
    put = client.put("/documents/kitchen-7", json=body)
    assert put.status_code == 200, put.text
    result = put.json()
    assert (result["key"], result["action"], result["added"]) == ("kitchen-7", "put", 1)
    assert result["generation"] > before and _generation(client) == result["generation"]
    hits = client.post("/search", json={"query": "coffee machine descaled", "k": 1}).json()
    assert hits["generation"] == result["generation"]
    top = hits["hits"][0]
    assert (top["key"], top["title"], top["metadata"]["team"], top["metadata"]["tags"]) == (
        "kitchen-7", "Kitchen", "facilities", ["office"])
    document = client.get("/documents/kitchen-7").json()
    assert (document["id"], document["text"]) == (document_id("kitchen-7"), body["text"])
    assert client.get("/documents", params={"key": "guide.md"}).status_code == 200  # the others stay


def test_put_again_is_unchanged_or_changed_and_delete_removes(client: TestClient) -> None:  # type: ignore[type-arg]
    first = client.put("/documents/note", json={"text": "Parking permits renew in April."}).json()
    same = client.put("/documents/note", json={"text": "Parking permits renew in April."}).json()
    assert (same["unchanged"], same["added"], same["changed"]) == (1, 0, 0)
    changed = client.put("/documents/note", json={"text": "Parking permits renew in May."}).json()
    assert (changed["changed"], changed["documents"]) == (1, first["documents"])
    assert client.get("/documents/note").json()["text"] == "Parking permits renew in May."
    deleted = client.delete("/documents/note")
    assert deleted.status_code == 200, deleted.text
    assert (deleted.json()["removed"], deleted.json()["documents"]) == (1, first["documents"] - 1)
    assert client.get("/documents/note").status_code == 404
    again = client.delete("/documents/note")
    assert again.status_code == 404 and "note" in again.json()["detail"]


@needs_producers
def test_upload_pdf_and_word_files(client: TestClient, document_files: Path) -> None:  # type: ignore[type-arg]
    report = (document_files / "good" / "report.pdf").read_bytes()
    put = client.put("/documents/report-2026", files={"file": ("report.pdf", report, "application/pdf")},
                     data={"title": "年次報告", "metadata": json.dumps({"year": 2026})})
    assert put.status_code == 200, put.text
    document = client.get("/documents/report-2026").json()
    assert (document["title"], document["metadata"]["year"], len(document["pages"])) == ("年次報告", 2026, 5)
    original = client.get(document["file"])
    assert original.status_code == 200 and original.content == report
    hit = client.post("/search", json={"query": "奈良 東大寺", "mode": "keyword", "k": 1}).json()["hits"][0]
    assert (hit["key"], hit["page"]) == ("report-2026", 3)
    word = (document_files / "good" / "guide.docx").read_bytes()
    assert client.put("/documents/ops-guide", files={"file": ("guide.docx", word)}).status_code == 200
    assert client.get("/documents/ops-guide").json()["metadata"]["format"] == "docx"
    assert client.delete("/documents/report-2026").status_code == 200
    assert client.get(document["file"]).status_code == 404


def test_an_uploads_tags_are_read_as_a_files_so_tag_filters_and_scoped_keys_see_them(
        client: TestClient, document_files: Path) -> None:  # type: ignore[type-arg]
    """Tags sent beside a file are lower-cased and split like front matter's: `not tags eq secret` hides it."""
    word = (document_files / "good" / "guide.docx").read_bytes()
    for key, tags in (("listed", ["Secret", " HR "]), ("joined", "Secret, Legal")):
        put = client.put(f"/documents/{key}", files={"file": ("guide.docx", word)},
                         data={"metadata": json.dumps({"tags": tags, "language": "fr"})})
        assert put.status_code == 200, put.text
    listed, joined = (client.get(f"/documents/{key}").json()["metadata"] for key in ("listed", "joined"))
    assert (listed["tags"], joined["tags"]) == (["secret", "hr"], ["secret", "legal"])
    assert listed["language"] in ("ja", "en")  # a language the index does not read is detected instead
    query = {"query": "on-call engineer", "mode": "keyword", "k": 10,
             "filters": {"where": {"field": "tags", "eq": "secret"}}}
    assert {h["key"] for h in client.post("/search", json=query).json()["hits"]} == {"listed", "joined"}
    query["filters"] = {"where": {"not": {"field": "tags", "eq": "secret"}}}
    assert not {h["key"] for h in client.post("/search", json=query).json()["hits"]} & {"listed", "joined"}


@needs_producers
def test_upload_a_legacy_word_file(client: TestClient, document_files: Path,  # type: ignore[type-arg]
                                   tmp_path: Path) -> None:
    from benchmarks.document_files import legacy_copies

    word = legacy_copies([document_files / "good" / "guide.docx"], tmp_path, "doc")[0].read_bytes()
    assert client.put("/documents/old-guide", files={"file": ("guide.doc", word)}).status_code == 200
    document = client.get("/documents/old-guide").json()
    assert (document["title"], document["metadata"]["format"]) == ("運用ガイド", "doc")
    original = client.get(document["file"])
    assert original.headers["content-type"] == "application/msword" and original.content == word
    assert client.delete("/documents/old-guide").status_code == 200


@needs_producers
def test_upload_a_scanned_page_as_an_image(client: TestClient, document_files: Path) -> None:  # type: ignore[type-arg]
    import io

    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(document_files / "good" / "report.pdf"))
    page = io.BytesIO()
    document[0].render(scale=200 / 72, grayscale=True).to_pil().save(page, "PNG")
    document.close()
    put = client.put("/documents/scanned-letter", files={"file": ("letter.png", page.getvalue(), "image/png")})
    assert put.status_code == 200, put.text
    document_json = client.get("/documents/scanned-letter").json()
    assert (document_json["metadata"]["format"], document_json["metadata"]["ocr_pages"]) == ("png", [1])
    original = client.get(document_json["file"])
    assert original.headers["content-type"] == "image/png" and original.content == page.getvalue()
    hit = client.post("/search", json={"query": "江戸時代 将軍", "mode": "keyword", "k": 1}).json()["hits"][0]
    assert (hit["key"], hit["page"]) == ("scanned-letter", 1)
    assert client.delete("/documents/scanned-letter").status_code == 200


@pytest.mark.parametrize(("request_args", "status", "says"), [
    ({"json": {"title": "no text"}}, 400, "text"),
    ({"json": {"text": ""}}, 400, "text"),
    ({"json": {"text": "   \n  "}}, 400, "empty document"),
    ({"json": {"text": "ok", "colour": "red"}}, 400, "colour"),
    ({"json": {"text": "ok", "metadata": ["a"]}}, 400, "metadata"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"files": {"other": ("a.txt", b"hello")}}, 400, "'file' field"),
    ({"files": {"file": ("tool.exe", b"MZ\x90\x00")}}, 400, "unsupported file type '.exe'"),
    ({"files": {"file": ("x.jsonl", b'{"id": "1", "text": "a"}\n')}}, 400, "unsupported file type '.jsonl'"),
    ({"files": {"file": ("rows.csv", b"name,price\napple,120\n")}}, 400, "unsupported file type '.csv'"),
    ({"files": {"file": ("x.json", b'[{"id": "1", "text": "a"}]')}}, 400, "unsupported file type '.json'"),
    ({"files": {"file": ("book.xlsx", b"PK\x03\x04")}}, 400, "unsupported file type '.xlsx'"),
    ({"files": {"file": ("book.xls", b"\xd0\xcf\x11\xe0")}}, 400, "unsupported file type '.xls'"),
    ({"files": {"file": ("x.txt", b"hello")}, "data": {"metadata": "{nope"}}, 400, "metadata"),
    ({"files": {"file": ("broken.pdf", b"%PDF-1.7 truncated")}}, 400, "broken.pdf: damaged or not a PDF"),
    ({"files": {"file": ("empty.docx", b"")}}, 400,  # the parser names the server's scratch copy: not shown
     "empty.docx: damaged or not a Word file (PackageNotFoundError: Package not found at 'empty.docx')"),
    # an upload keeps the limits a JSON write has: its text and its title (which leads every chunk)
    ({"files": {"file": ("big.txt", b"start " + b" " * 1_000_000 + b"end")}}, 400,
     "big.txt: its text holds 1,000,009 characters; a document written over HTTP holds at most 1,000,000"),
    ({"files": {"file": ("u.md", b"# U\n\nText.\n")}, "data": {"title": "長" * 5000}}, 400,
     "title: 5,000 characters, at most 200"),
    ({"content": b"x" * 3_000_000, "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"x" * (MAX_UPLOAD_BYTES + 1), "headers": {"content-type": "application/json"}}, 413,
     f"{MAX_UPLOAD_BYTES:,}"),
])
def test_bad_writes_are_refused_and_change_nothing(client: TestClient, request_args: dict,  # type: ignore[type-arg]
                                                   status: int, says: str) -> None:
    before = _generation(client)
    response = client.put("/documents/bad-one", **request_args)
    assert response.status_code == status, response.text
    body = response.json()
    assert says in json.dumps(body, ensure_ascii=False), body
    assert _generation(client) == before
    assert client.get("/documents/bad-one").status_code == 404


@pytest.mark.parametrize("starts", [[None], ["a"], [0, 999999], [5, 1], [0, 3, 3]])
def test_page_offsets_given_as_metadata_are_left_out_and_never_break_reading(
    client: TestClient, starts: list, tmp_path: Path  # type: ignore[type-arg]
) -> None:
    """page_starts is the loaders' own record of a paged file's pages: given with a write it once made every
    search, answer and read of the document a 500."""
    body = {"text": "Tapirsalt is stored in the cellar.", "metadata": {"page_starts": starts, "page_count": 9}}
    assert client.put("/documents/paged", json=body).status_code == 200
    document = client.get("/documents/paged").json()
    assert "page_starts" not in document["metadata"] and "page_count" not in document["metadata"]
    found = client.get("/search", params={"q": "tapirsalt", "mode": "keyword"})
    assert found.status_code == 200 and found.json()["hits"][0]["key"] == "paged"
    assert "page" not in found.json()["hits"][0]
    assert page_starts({"page_starts": starts}) == ([0, 999999] if starts == [0, 999999] else [])


@needs_producers
@pytest.mark.parametrize(("name", "says"), [("scan.pdf", "OCR found no text on its 2 scanned pages"),
                                            ("secret.pdf", "encrypted PDF"),
                                            ("truncated.pdf", "damaged or not a PDF"),
                                            ("broken.docx", "damaged or not a Word file")])
def test_bad_uploads_say_what_is_wrong(client: TestClient, document_files: Path,  # type: ignore[type-arg]
                                       name: str, says: str) -> None:
    response = client.put("/documents/bad-file", files={"file": (name, (document_files / "bad" / name).read_bytes())})
    assert response.status_code == 400 and says in response.json()["detail"], response.text


def test_bad_key_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.put("/documents/%20padded", json={"text": "x"})
    assert response.status_code == 400 and "key" in response.json()["detail"]


def test_an_index_folder_that_cannot_be_written_is_a_503_naming_the_file(
    client: TestClient, small_index: Path  # type: ignore[type-arg]
) -> None:
    before = _generation(client)
    lock = small_index / ".build.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()  # opening it to write fails, as on a read-only folder or a full disk
    try:
        response = client.put("/documents/visitors", json={"text": "Visitors sign in at the front desk."})
    finally:
        lock.rmdir()
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == (f"the write was not made: cannot update the index in {small_index}: "
                                         f"Is a directory ({lock}); the live generation is unchanged")
    assert _generation(client) == before
    assert client.put("/documents/visitors", json={"text": "Visitors sign in."}).status_code == 200


def test_writes_need_the_admin_scope(small_index: Path) -> None:
    keys = tuple(plain_keys(["read:reader-key", "admin-key"], "test"))
    settings = ServerSettings(index_dir=small_index, generator=None, api_keys=keys)
    with TestClient(create_app(settings)) as client:
        body = {"text": "Visitors sign in at the front desk."}
        assert client.put("/documents/visitors", json=body).status_code == 401
        reader = {"Authorization": "Bearer reader-key"}
        assert client.put("/documents/visitors", json=body, headers=reader).status_code == 403
        admin = {"Authorization": "Bearer admin-key"}
        assert client.put("/documents/visitors", json=body, headers=admin).status_code == 200
        assert client.get("/documents/visitors", headers=reader).status_code == 200
        assert client.delete("/documents/visitors", headers=reader).status_code == 403


def test_writes_under_concurrent_search_on_a_real_server(small_index: Path, tmp_path: Path) -> None:
    server = start_server(small_index, tmp_path / "server.log")
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(3)]
    problems: list[str] = []

    def search(slot: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/search", json={"query": "backups every night", "k": 3})
                if response.status_code != 200:
                    problems.append(f"{response.status_code} {response.text}")
                    continue
                seen[slot].append(response.json()["generation"])

    def write(number: int, results: dict[int, dict]) -> None:  # type: ignore[type-arg]
        with httpx.Client(base_url=server.url, timeout=120) as http:
            response = http.put(f"/documents/memo-{number}", json={"text": f"Memo {number}: the lift is serviced."})
            results[number] = response.json() if response.status_code == 200 else {"error": response.text}

    try:
        searchers = [threading.Thread(target=search, args=(slot,)) for slot in range(3)]
        for thread in searchers:
            thread.start()
        results: dict[int, dict] = {}  # type: ignore[type-arg]
        for round_ in range(3):  # three rounds of three writers at once
            writers = [threading.Thread(target=write, args=(3 * round_ + i, results)) for i in range(3)]
            for thread in writers:
                thread.start()
            for thread in writers:
                thread.join(120)
                assert not thread.is_alive(), "a write did not answer within 120 s"
        stop.set()
        for thread in searchers:
            thread.join(60)
            assert not thread.is_alive(), "a search did not answer within 60 s"
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for number, result in results.items():
                document = http.get(f"/documents/memo-{number}")
                assert document.status_code == 200, document.text
                assert document.json()["generation"] >= result.get("generation", "")
    finally:
        stop.set()
        server.stop()
    assert not problems, problems[:3]
    assert all("generation" in result for result in results.values()), results
    published = {result["generation"] for result in results.values()}
    assert len(published) <= 9  # writes waiting together share a generation
    for generations in seen:
        assert generations, "a searcher got no answer"
        assert generations == sorted(generations), "a client saw the index go back to an older generation"
    assert IndexDirectory(small_index).current_name() == max(published)


def test_a_folder_build_that_removes_an_uploaded_document_removes_its_file(
    client: TestClient, small_index: Path, tmp_path: Path, embedder: Embedder,  # type: ignore[type-arg]
    keywords: KeywordTokenizer,
) -> None:
    from tests.office_files import save_deck

    deck = save_deck(tmp_path / "deck.pptx").read_bytes()
    put = client.put("/documents/quarterly-deck", files={"file": ("deck.pptx", deck, "application/vnd.openxmlformats-"
                                                                  "officedocument.presentationml.presentation")})
    assert put.status_code == 200, put.text
    kept = list((small_index / "originals").iterdir())
    assert [p.name for p in kept] == [f"{document_id('quarterly-deck')}.pptx"]
    assert client.get(f"/documents/{document_id('quarterly-deck')}/file").content == deck

    report = build(tmp_path / "corpus", small_index, embedder, keywords)  # the folder does not hold the deck

    assert report.removed == 1 and list((small_index / "originals").iterdir()) == []
    deadline = time.monotonic() + 30
    while _generation(client) != report.generation and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _generation(client) == report.generation, "the server did not swap to the folder build's generation"
    assert client.get(f"/documents/{document_id('quarterly-deck')}/file").status_code == 404
    # built anew (--rebuild, or other chunk sizes): nothing is planned as removed, the uploads go all the same
    assert client.put("/documents/deck-2", files={"file": ("deck.pptx", deck, "application/octet-stream")}).is_success
    assert len(list((small_index / "originals").iterdir())) == 1
    build(tmp_path / "corpus", small_index, embedder, keywords, rebuild=True)
    assert list((small_index / "originals").iterdir()) == []
