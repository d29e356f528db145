"""The web page at `/`, driven in real headless Chromium (Debian's package, through Playwright)
against the real server process over the default corpus. Screenshots go to artifacts/screenshots/.

Every page records its requests; a test fails if any went to a host other than the server.
Without /usr/bin/chromium the browser tests skip, except in CI (`CI` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from indexer.embed.base import Embedder
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import ROOT, RunningServer, build, start_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
README_SCREENSHOT = ROOT / "docs" / "screenshot.png"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ASK_TIMEOUT_MS = 240_000  # a cold generator loads first; the machine may be busy

# Test instrumentation, run before the page's own script: watch the answer box. `__answerRecords`
# keeps every change of its state and token count in order, `__answerLog` what the box held each
# time the browser reported changes (one entry per batch: several entries mean several arrivals).
WATCH_ANSWER = """
window.__answerRecords = [];
window.__answerLog = [];
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("answer-text");
  if (!box) return;
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") window.__answerRecords.push([r.attributeName, r.oldValue]);
    }
    window.__answerLog.push({state: box.dataset.state, length: box.textContent.length});
  }).observe(box, {childList: true, characterData: true, subtree: true, attributes: true,
                   attributeOldValue: true, attributeFilter: ["data-state", "data-tokens"]});
});
"""


@dataclass
class Browsing:
    """Browser contexts opened for one test, with every request and uncaught script error recorded."""

    browser: Browser
    server: RunningServer
    requests: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    def page(self, locale: str = "en-US", width: int = 1000, height: int = 800, scale: float = 1) -> Page:
        context = self.browser.new_context(locale=locale, viewport={"width": width, "height": height},
                                           device_scale_factor=scale)
        context.set_default_timeout(60_000)
        context.on("request", lambda request: self.requests.append(request.url))
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.add_init_script(script=WATCH_ANSWER)
        return page

    def foreign(self) -> list[str]:
        host = urlsplit(self.server.url).netloc
        return [url for url in self.requests if urlsplit(url).netloc != host]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # module, not session: Playwright's sync API runs an event loop on this thread while it is
    # open, and a later module's asyncio.run() (tests/test_batching.py) would find it running
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; in CI .ci/run installs it before the tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def web(browser: Browser, live_server: RunningServer) -> Iterator[Browsing]:
    browsing = Browsing(browser, live_server)
    yield browsing
    for context in browsing.contexts:
        context.close()
    assert browsing.foreign() == [], "the page made requests to other hosts"
    assert browsing.script_errors == [], "uncaught errors in the page's script"


def shot(page: Page, name: str, **options: object) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **options)  # type: ignore[arg-type]
    return path


def api_search(server: RunningServer, query: str, mode: str) -> dict:
    response = httpx.post(f"{server.url}/search", json={"query": query, "mode": mode, "k": 10, "collapse": "document"},
                          timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def shown_hits(page: Page) -> list[tuple[str, int, int]]:
    links = page.locator("#hits > li h3 a")
    return [(a.get_attribute("data-doc") or "", int(a.get_attribute("data-start") or -1),
             int(a.get_attribute("data-end") or -1)) for a in links.all()]


def search(page: Page, query: str, mode: str | None = None) -> None:
    page.locator("label[for=task-search]").click()
    if mode:
        page.select_option("#mode", mode)
    page.fill("#q", query)
    page.press("#q", "Enter")
    expect(page.locator("#results")).to_be_visible()


def document_text(server: RunningServer, doc_id: str) -> str:
    response = httpx.get(f"{server.url}/documents/{doc_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def assert_no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is wider than the screen: {widths}"


# --- served files --------------------------------------------------------------------------------


def test_page_and_static_files_are_served_with_no_outside_reference(live_server: RunningServer) -> None:
    page = httpx.get(f"{live_server.url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    view = httpx.get(f"{live_server.url}/view/some-document", timeout=30)
    assert view.status_code == 200 and view.text == page.text
    for name, kind in [("app.js", "javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        response = httpx.get(f"{live_server.url}/static/{name}", timeout=30)
        assert response.status_code == 200 and kind in response.headers["content-type"], name
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a request
        assert not re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}", text), f"{name} names another host"
        assert "@import" not in text and "@font-face" not in text, name
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)


# --- search ---------------------------------------------------------------------------------------


def test_search_in_japanese_highlights_the_matched_words(web: Browsing) -> None:
    page = web.page(locale="ja-JP")
    page.goto(web.server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("#q-label")).to_have_text("検索語")
    search(page, "銀座")
    expected = api_search(web.server, "銀座", "hybrid")
    assert shown_hits(page) == [(h["doc_id"], h["start"], h["end"]) for h in expected["hits"]]
    expect(page.locator("#status")).to_contain_text("「銀座」の検索結果")
    items = page.locator("#hits > li")
    for item, hit in zip(items.all(), expected["hits"], strict=True):
        expect(item.locator(".source")).to_have_text(hit["source"])
        expect(item.locator(".score")).to_contain_text(f"{hit['score']:.4f}")
        slices = {hit["text"][s - hit["start"] : e - hit["start"]] for s, e in hit["highlights"]}
        marks = item.locator("mark").all_text_contents()
        assert marks and set(marks) <= slices, (marks, slices)
    assert "銀座" in items.first.locator("mark").all_text_contents()
    shot(page, "search-ja")


def test_kana_read_as_the_index_words_is_shown_as_searched(web: Browsing) -> None:
    page = web.page(locale="ja-JP")
    page.goto(web.server.url + "/")
    search(page, "けいたいそかいせき")
    expect(page.locator("#status")).to_contain_text("「けいたいそかいせき」を「形態素解析」と読んだ検索結果")
    expect(page.locator("#hits > li").first.locator(".source")).to_have_text("ja-mecab-fugashi-unidic.md")
    search(page, "形態素解析")  # nothing to read: the plain line
    expect(page.locator("#status")).to_contain_text("「形態素解析」の検索結果")
    expect(page.locator("#status")).not_to_contain_text("と読んだ")


def test_a_document_lists_related_documents_in_each_language_that_open(web: Browsing) -> None:
    page = web.page(locale="ja-JP")
    url = f"{web.server.url}/documents/en-bm25.md/related"
    related = {language: httpx.get(url, params={"k": 3, "language": language}, timeout=60).json()
               for language in ("ja", "en")}
    page.goto(f"{web.server.url}/view/{related['en']['id']}")
    expect(page.locator("#related-title")).to_have_text("関連する文書")
    for language, heading in (("ja", "日本語の文書"), ("en", "英語の文書")):
        expect(page.locator(f"#related-{language} > h3")).to_have_text(heading)
        links = page.locator(f"#related-{language} li .hit-title a")
        expect(links).to_have_count(len(related[language]["hits"]))
        assert links.all_text_contents() == [hit["title"] for hit in related[language]["hits"]]
    sections = page.locator("#related li .section")
    assert sections.count() and all(s.startswith("節:") for s in sections.all_text_contents())
    page.locator("button[data-lang=en]").click()  # the related lists are redrawn in the new language too
    expect(page.locator("#related-title")).to_have_text("Related documents")
    assert all(s.startswith("section:") for s in sections.all_text_contents()), sections.all_text_contents()
    page.locator("#related-en li .hit-title a").first.click()
    first = related["en"]["hits"][0]
    expect(page.locator("#doc-title")).to_have_text(first["title"])
    expect(page).to_have_url(re.compile(f"/view/{first['doc_id']}#"))


def test_each_document_is_shown_once_with_the_count_of_its_other_passages(web: Browsing) -> None:
    page = web.page(locale="ja-JP")
    page.goto(web.server.url + "/")
    search(page, "形態素解析とは")
    shown = shown_hits(page)
    expected = api_search(web.server, "形態素解析とは", "hybrid")
    assert shown == [(h["doc_id"], h["start"], h["end"]) for h in expected["hits"]]
    assert len({doc for doc, _, _ in shown}) == len(shown) > 1
    more = [h["more"] for h in expected["hits"]]
    assert any(more), "no hit stood for several passages: the query no longer tests collapsing"
    for item, count in zip(page.locator("#hits > li").all(), more, strict=True):
        if count:
            expect(item.locator(".more")).to_contain_text(str(count))
        else:
            expect(item.locator(".more")).to_have_count(0)


def test_search_in_english_in_each_mode(web: Browsing) -> None:
    page = web.page(locale="en-US", width=800, height=720)
    page.goto(web.server.url + "/")
    expect(page.locator("#q-label")).to_have_text("Search words")
    query = "reciprocal rank fusion"
    shown = {}
    for mode in ("keyword", "dense", "hybrid"):
        search(page, query, mode)
        expect(page.locator("#status")).to_contain_text(f"({mode},")
        expected = api_search(web.server, query, mode)
        shown[mode] = shown_hits(page)
        assert shown[mode] == [(h["doc_id"], h["start"], h["end"]) for h in expected["hits"]], mode
        assert f"mode={mode}" in page.url
    assert len({tuple(hits) for hits in shown.values()}) > 1, "the modes gave identical lists"
    assert page.locator("#hits mark").count() > 0
    path = shot(page, "search-en")
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        save_small(path, README_SCREENSHOT)


def save_small(source: Path, target: Path) -> None:
    """The README's screenshot: the same picture in 64 colours, to keep the repository small."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=64).save(target, optimize=True)


def test_highlight_offsets_are_code_points_into_the_document(web: Browsing) -> None:
    page = web.page()
    page.goto(web.server.url + "/")
    # offsets from Python count code points; "😀" is two UTF-16 units in JavaScript
    pieces = page.evaluate("window.yomitoki.segments('😀 a 銀座 b', 100, [[104, 105], [105, 106]], 0)")
    assert pieces == [{"text": "😀 a ", "mark": False}, {"text": "銀座", "mark": True},
                      {"text": " b", "mark": False}]
    long = page.evaluate("window.yomitoki.segments('x'.repeat(500) + 'END' + 'y'.repeat(500), 0, [[500, 503]], 100)")
    assert [p["text"] for p in long if p["mark"]] == ["END"]
    assert long[0]["text"] == "…" and long[-1]["text"] == "…"
    assert sum(len(p["text"]) for p in long) == 102


def test_a_pdf_hit_links_its_page_and_a_powerpoint_hit_names_its_slide(web: Browsing) -> None:
    wording = {"en-US": ("page 3", "slide 3", "slides 2–3", "page 2", "slide 4"),
               "ja-JP": ("3 ページ", "スライド 3", "スライド 2–3", "2 ページ", "スライド 4")}
    for locale, words in wording.items():
        page = web.page(locale=locale)
        page.goto(web.server.url + "/")
        links = page.evaluate("""() => [
            {pages: [3], metadata: {format: "pdf"}, doc_id: "a b"},
            {pages: [3], metadata: {format: "pptx"}, doc_id: "deck"},
            {pages: [2, 3], metadata: {format: "pptx"}, doc_id: "deck"},
            {pages: [2], metadata: {format: "tiff"}, doc_id: "fax"},
            {pages: [4], metadata: {format: "ppt"}, doc_id: "old-deck"},
          ].map(hit => { const a = window.yomitoki.pageLink(hit); return [a.textContent, a.getAttribute("href")]; })""")
        # a browser opens a PDF at a page; a .pptx it downloads and an image it shows, with no page to open at
        assert links == [[words[0], "/documents/a%20b/file#page=3"], [words[1], "/documents/deck/file"],
                         [words[2], "/documents/deck/file"], [words[3], "/documents/fax/file"],
                         [words[4], "/documents/old-deck/file"]], links


# --- ask ------------------------------------------------------------------------------------------


def ask(page: Page, question: str, mode: str, max_tokens: int | None = None) -> None:
    page.locator("label[for=task-ask]").click()
    expect(page.locator("#q-label")).to_have_text("Your question")
    page.select_option("#answer-mode", mode)
    if max_tokens:
        page.fill("#max-tokens", str(max_tokens))
    page.fill("#q", question)
    page.click("#submit")


def answer_log(page: Page) -> list[dict]:
    return page.evaluate("window.__answerLog")


def streamed_before_done(page: Page) -> bool:
    """Whether a token was shown while the answer was streaming, before the final `done`."""
    records = page.evaluate("window.__answerRecords")
    first_token = next((i for i, (name, _) in enumerate(records) if name == "data-tokens"), None)
    finished = next((i for i, (name, old) in enumerate(records) if name == "data-state" and old == "streaming"), None)
    return first_token is not None and finished is not None and first_token < finished


def test_ask_streams_the_answer_and_a_citation_opens_the_cited_span(web: Browsing) -> None:
    question = "What is reciprocal rank fusion?"
    expected = httpx.post(f"{web.server.url}/ask", json={"question": question, "mode": "extractive"},
                          timeout=120).json()
    assert expected["answer_found"] and expected["citations"], expected
    page = web.page()
    page.goto(web.server.url + "/")
    ask(page, question, "extractive")
    box = page.locator("#answer-text")
    expect(box).to_have_attribute("data-state", "done", timeout=ASK_TIMEOUT_MS)
    assert streamed_before_done(page), page.evaluate("window.__answerRecords")  # a token event came first
    assert int(box.get_attribute("data-tokens") or 0) >= 1
    assert box.text_content() == expected["answer"]
    citations = page.locator("#citations > li")
    expect(citations).to_have_count(len(expected["citations"]))
    first = expected["citations"][0]
    expect(citations.first.locator(".cite-number")).to_have_text(f"[{first['n']}]")
    span = expected["answer_span"]
    assert span and span["doc_id"] == first["doc_id"] and first["start"] <= span["start"] < span["end"] <= first["end"]
    expect(citations.first.locator("blockquote mark")).to_have_text(expected["answer"])  # the answer, inside it
    shot(page, "ask-extractive", full_page=True)

    citations.first.locator("h3 a").click()
    page.wait_for_url(re.compile(rf"/view/{first['doc_id']}#{first['start']}-{first['end']}$"))
    mark = page.locator("#doc-text mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == first["text"]
    assert document_text(web.server, first["doc_id"])[first["start"] : first["end"]] == first["text"]
    expect(mark).to_be_in_viewport()
    shot(page, "document-view")
    page.locator("#back-link").click()  # back to the same answer, without asking again
    expect(page.locator("#answer-text")).to_have_text(expected["answer"])
    assert sum(urlsplit(url).path == "/ask" for url in web.requests) == 1


def test_an_answer_says_how_kana_in_the_question_was_read(web: Browsing) -> None:
    question = "けいたいそかいせきき の やくわり は なんですか"
    expected = httpx.post(f"{web.server.url}/ask", json={"question": question, "mode": "extractive"},
                          timeout=120).json()
    assert expected["read_as"], expected
    page = web.page()
    page.goto(web.server.url + "/")
    ask(page, question, "extractive")
    expect(page.locator("#answer-text")).to_have_attribute("data-state", "done", timeout=ASK_TIMEOUT_MS)
    expect(page.locator("#read-as")).to_have_text(f"Read as “{expected['read_as']}”")
    page.locator("[data-lang=ja]").click()  # the line follows the interface language
    expect(page.locator("#read-as")).to_have_text(f"「{expected['read_as']}」と読みました")


def test_a_refusal_is_shown_once(web: Browsing) -> None:
    question = "富士山の標高は何メートルですか"
    expected = httpx.post(f"{web.server.url}/ask", json={"question": question, "mode": "extractive"},
                          timeout=120).json()
    assert not expected["answer_found"] and expected["answer"], expected
    page = web.page()
    page.goto(web.server.url + "/")
    ask(page, question, "extractive")
    box = page.locator("#answer-text")
    expect(box).to_have_attribute("data-state", "done", timeout=ASK_TIMEOUT_MS)
    assert box.text_content() == expected["answer"]  # the server's words, not a second line of the page's own
    expect(page.locator("#citations > li.hint")).to_have_count(1)


@pytest.mark.slow
def test_generative_answer_arrives_token_by_token(web: Browsing) -> None:
    page = web.page()
    page.goto(web.server.url + "/")
    ask(page, "What value of k does reciprocal rank fusion conventionally use?", "generative", max_tokens=12)
    box = page.locator("#answer-text")
    expect(box).to_have_attribute("data-state", "done", timeout=ASK_TIMEOUT_MS)
    assert streamed_before_done(page)
    lengths = {entry["length"] for entry in answer_log(page) if entry["state"] == "streaming"}
    assert len(lengths) >= 3, answer_log(page)  # the text grew in several arrivals before it was done
    assert int(box.get_attribute("data-tokens") or 0) >= 3
    expect(page.locator("#answer-meta")).to_contain_text("Written by")
    shot(page, "ask-generative", full_page=True)


def test_a_span_far_down_a_document_is_scrolled_into_view(web: Browsing) -> None:
    hit = api_search(web.server, "reciprocal rank fusion", "keyword")["hits"][0]
    text = document_text(web.server, hit["doc_id"])
    start, end = len(text) - 80, len(text) - 20
    page = web.page(width=375, height=640)
    page.goto(f"{web.server.url}/view/{hit['doc_id']}?start={start}&end={end}")
    mark = page.locator("#doc-text mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == text[start:end]
    expect(mark).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 0


# --- keyboard, languages, small screens, errors, requests ------------------------------------------


def focused(page: Page) -> dict:
    return page.evaluate("""() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return {id: el.id, tag: el.tagName.toLowerCase(), cls: el.className, text: el.textContent.trim(),
              outline: style.outlineStyle, href: el.getAttribute("href") || ""};
    }""")


def test_keyboard_alone_searches_and_opens_a_result(web: Browsing) -> None:
    page = web.page()
    page.goto(web.server.url + "/")
    page.keyboard.press("Tab")
    assert focused(page)["cls"] == "skip-link"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "task-search"
    label = page.locator("label[for=task-search]")
    assert label.evaluate("el => getComputedStyle(el).outlineStyle") != "none"  # the focus is visible
    page.keyboard.press("ArrowRight")
    expect(page.locator("#q-label")).to_have_text("Your question")
    expect(page.locator("#ask-options")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#q-label")).to_have_text("Search words")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "mode"
    page.keyboard.type("k")  # type-ahead picks "Keyword"
    assert page.input_value("#mode") == "keyword"
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "q"
    page.keyboard.type("special tokens")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("(keyword,")
    first = page.locator("#hits > li h3 a").first
    page.keyboard.press("Tab")  # the search button, then the first result
    assert focused(page)["id"] == "submit"
    page.keyboard.press("Tab")
    now = focused(page)
    assert now["href"] == first.get_attribute("href") and now["outline"] != "none", now
    shot(page, "keyboard")
    page.keyboard.press("Enter")
    mark = page.locator("#doc-text mark")
    expect(mark).to_be_focused()
    expect(mark).to_be_in_viewport()
    page.keyboard.press("Shift+Tab")
    assert focused(page)["id"] == "back-link"
    page.keyboard.press("Enter")  # back to the same results
    expect(page.locator("#status")).to_contain_text("(keyword,")
    expect(page.locator("#q")).to_have_value("special tokens")


def test_interface_language_follows_the_browser_and_can_be_switched(web: Browsing) -> None:
    english = web.page(locale="en-US")
    english.goto(web.server.url + "/")
    expect(english.locator("html")).to_have_attribute("lang", "en")
    expect(english.locator("#submit")).to_have_text("Search")
    search(english, "東京")
    expect(english.locator("#status")).to_contain_text("results for “東京”")
    english.locator("button[data-lang=ja]").click()
    expect(english.locator("html")).to_have_attribute("lang", "ja")
    expect(english.locator("button[data-lang=ja]")).to_have_attribute("aria-pressed", "true")
    expect(english.locator("#submit")).to_have_text("検索")
    expect(english.locator("#status")).to_contain_text("「東京」の検索結果")
    expect(english.locator("#results-title")).to_have_text("検索結果")
    english.reload()  # the choice is remembered
    expect(english.locator("#q-label")).to_have_text("検索語")
    english.locator("button[data-lang=en]").click()
    expect(english.locator("#q-label")).to_have_text("Search words")

    japanese = web.page(locale="ja-JP")
    japanese.goto(web.server.url + "/")
    expect(japanese.locator("#page-title")).to_have_text("文書を検索・質問する")
    expect(japanese.locator("label[for=mode]")).to_have_text("検索方式")


def test_switching_the_language_shows_only_the_task_on_screen(web: Browsing) -> None:
    """A search then a question: the language switch redraws the answer, not the earlier search's hits."""
    page = web.page(locale="en-US")
    page.goto(web.server.url + "/")
    search(page, "BM25")
    ask(page, "What kind of function is BM25?", "extractive")
    expect(page.locator("#answer-text")).to_have_attribute("data-state", "done", timeout=ASK_TIMEOUT_MS)
    page.locator("button[data-lang=ja]").click()
    expect(page.locator("#submit")).to_have_text("質問する")
    expect(page.locator("#results")).to_be_hidden()
    search(page, "形態素")
    page.locator("button[data-lang=en]").click()
    expect(page.locator("#submit")).to_have_text("Search")
    expect(page.locator("#answer")).to_be_hidden()
    expect(page.locator("#results")).to_be_visible()


def test_back_to_search_returns_to_a_search_opened_from_its_address(web: Browsing) -> None:
    page = web.page(locale="en-US")
    page.goto(web.server.url + "/")
    search(page, "BM25")  # an earlier search in the same tab
    page.goto(web.server.url + "/?task=search&q=%E5%BD%A2%E6%85%8B%E7%B4%A0&mode=keyword")
    expect(page.locator("#hits > li").first).to_be_visible()
    page.locator("#hits > li .hit-title a").first.click()
    expect(page.locator("#doc-title")).not_to_be_empty()
    page.locator("#back-link").click()
    expect(page.locator("#q")).to_have_value("形態素")
    expect(page.locator("#mode")).to_have_value("keyword")


def test_readable_on_a_375px_screen_and_at_200_percent_zoom(web: Browsing) -> None:
    phone = web.page(locale="ja-JP", width=375, height=740, scale=2)
    phone.goto(web.server.url + "/")
    search(phone, "トークナイザ")
    assert_no_horizontal_scroll(phone)
    box = phone.locator("#submit").bounding_box()
    assert box and box["x"] + box["width"] <= 375 and box["height"] >= 40
    shot(phone, "mobile-375")
    for locale in ("en-US", "ja-JP"):  # the Ask tab's options: English's are the longest
        asking = web.page(locale=locale, width=375, height=740)
        asking.goto(web.server.url + "/")
        asking.click("label[for=task-ask]")
        expect(asking.locator("#answer-mode")).to_be_visible()
        assert_no_horizontal_scroll(asking)
    # a 1280px-wide window at 200% zoom lays out like a 640px-wide one with doubled pixels
    zoomed = web.page(width=640, height=400, scale=2)
    zoomed.goto(web.server.url + "/")
    search(zoomed, "byte pair encoding")
    assert_no_horizontal_scroll(zoomed)
    assert zoomed.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") >= 16
    shot(zoomed, "zoom-200")


def test_server_errors_are_shown_in_words(web: Browsing) -> None:
    page = web.page()
    page.goto(web.server.url + "/view/no-such-document")
    error = page.locator("#error")
    expect(error).to_contain_text("The server answered 404: no document with id or key 'no-such-document'")
    shot(page, "error-404")
    page.goto(web.server.url + "/")
    page.press("#q", "Enter")
    expect(error).to_have_text("Type something first.")
    expect(page.locator("#q")).to_have_attribute("aria-invalid", "true")
    ask(page, "What is BM25?", "extractive", max_tokens=100_000)
    expect(error).to_contain_text("The server answered 400")
    expect(error).to_contain_text("max_tokens")
    expect(page.locator("#answer-text")).to_have_attribute("data-state", "error")


def test_the_page_requests_nothing_but_the_server(web: Browsing) -> None:
    page = web.page()
    page.goto(web.server.url + "/")
    search(page, "sentence embeddings")
    page.locator("#hits > li h3 a").first.click()
    expect(page.locator("#doc-text mark")).to_have_count(1)
    paths = {urlsplit(url).path for url in web.requests}
    assert {"/", "/static/app.js", "/static/app.css", "/search"} <= paths, paths
    assert any(path.startswith("/documents/") for path in paths), paths
    assert web.foreign() == []


@contextlib.contextmanager
def keyed_server(browser: Browser, index: Path, logs: Path) -> Iterator[Browsing]:
    """A real server over `index` that wants the API key tab-key-7f3a, and a browser to use it with."""
    server = start_server(index, logs / "keyed.log", "--api-key", "tab-key-7f3a", "--generator", "none")
    browsing = Browsing(browser, server)
    try:
        yield browsing
        assert browsing.script_errors == [] and browsing.foreign() == []
    finally:
        for context in browsing.contexts:
            context.close()
        server.stop()


def test_a_server_with_api_keys_asks_for_one_and_the_page_sends_it(browser: Browser, corpus_index: IndexDirectory,
                                                                     tmp_path: Path) -> None:
    with keyed_server(browser, corpus_index.path, tmp_path) as browsing:
        page = browsing.page(locale="ja-JP")
        page.goto(browsing.server.url + "/")
        page.fill("#q", "トークナイザ")
        page.press("#q", "Enter")
        expect(page.locator("#key-form")).to_be_visible()  # the 401, and a place to give the key
        expect(page.locator("#error")).to_contain_text("401")
        page.fill("#api-key", "not-the-key")
        page.locator("#key-form button[type=submit]").click()
        expect(page.locator("#error")).to_contain_text("invalid API key")
        expect(page.locator("#key-form")).to_be_visible()  # asked again
        page.fill("#api-key", "tab-key-7f3a")
        page.locator("#key-form button[type=submit]").click()
        expect(page.locator("#results")).to_be_visible()  # the same search, sent again with the key
        expect(page.locator("#key-form")).to_be_hidden()
        shot(page, "api-key")


def test_on_a_keyed_server_a_slide_link_fetches_the_file_with_the_key(browser: Browser, tmp_path: Path,
                                                                       embedder: Embedder,
                                                                       keywords: KeywordTokenizer) -> None:
    """A plain link cannot carry the key: the page fetches the file with it and saves it under its own name."""
    from tests.office_files import save_deck

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    deck = save_deck(corpus / "deck.pptx").read_bytes()
    (corpus / "notes.md").write_text("# Notes\n\nNothing about slides here.\n", encoding="utf-8")
    build(corpus, tmp_path / "index", embedder, keywords)
    with keyed_server(browser, tmp_path / "index", tmp_path) as browsing:
        page = browsing.page(locale="ja-JP")
        page.goto(browsing.server.url + "/")
        page.fill("#q", "形態素解析")
        page.press("#q", "Enter")
        page.fill("#api-key", "tab-key-7f3a")
        page.locator("#key-form button[type=submit]").click()
        link = page.locator("#hits > li a.page").first
        expect(link).to_be_visible()
        with page.expect_download() as download:
            link.click()
        assert download.value.suggested_filename == "deck.pptx"
        assert Path(download.value.path()).read_bytes() == deck
