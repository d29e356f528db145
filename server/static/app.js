// yomitoki's web page: search, ask (streamed) and the document view.
// Hand-written, no build step and no dependency: it talks only to the server that served it.
// Loaded as a module (scoped, strict, deferred).

// ---------------------------------------------------------------------------------------------
// Interface text
// ---------------------------------------------------------------------------------------------

const MESSAGES = {
  en: {
    skip: "Skip to main content",
    language: "Interface language",
    title: "Search and ask your documents",
    task: "What to do",
    "task.search": "Search",
    "task.ask": "Ask a question",
    "q.search": "Search words",
    "q.ask": "Your question",
    "submit.search": "Search",
    "submit.ask": "Ask",
    "hint.search": "Japanese or English. Enter searches.",
    "hint.ask": "Ask in Japanese or English. The answer cites the passages it comes from.",
    mode: "Search mode",
    "mode.hybrid": "Hybrid: meaning and keywords",
    "mode.dense": "Dense: meaning (embeddings)",
    "mode.keyword": "Keyword: words (BM25)",
    "modeName.hybrid": "hybrid",
    "modeName.dense": "dense",
    "modeName.keyword": "keyword",
    answerMode: "Answer mode",
    "answerMode.auto": "Automatic",
    "answerMode.extractive": "Extractive: quote the documents",
    "answerMode.generative": "Generative: written by a language model",
    maxTokens: "Longest answer, in tokens (optional)",
    results: "Results",
    answer: "Answer",
    citations: "Sources",
    uncited: "Also retrieved, not cited",
    back: "Back to search",
    related: "Related documents",
    "related.ja": "In Japanese",
    "related.en": "In English",
    score: "score",
    morePassages: "+{count} more matching passages in this document",
    section: "section",
    empty: "Type something first.",
    searching: "Searching…",
    found: "{count} results for “{query}” ({mode}, {ms} ms).",
    noHits: "Nothing found for “{query}” ({mode}).",
    foundReadAs: "{count} results for “{query}”, read as “{readAs}” ({mode}, {ms} ms).",
    askedAs: "Read as “{readAs}”",
    noHitsReadAs: "Nothing found for “{query}”, read as “{readAs}” ({mode}).",
    asking: "Looking for the answer…",
    streaming: "Writing the answer…",
    answered: "{reader} · {ms} ms",
    "reader.sentence": "The best-supported sentence of the documents",
    "reader.qa": "Extracted by {model}",
    "reader.generator": "Written by {model}",
    showSpan: "Show the answer in its document",
    notFound: "The documents do not seem to answer this question.",
    noCitations: "No passage was cited.",
    askAgain: "Press Ask to answer this question.",
    loadingDoc: "Loading the document…",
    docMeta: "{source} · {language} · {chars} characters",
    page: "page {page}",
    pages: "pages {first}–{last}",
    slide: "slide {page}",
    slides: "slides {first}–{last}",
    span: "Highlighted: characters {start}–{end}.",
    badSpan: "The requested passage ({start}–{end}) is not inside this document.",
    "error.server": "The server answered {status}: {detail}",
    "error.network": "Could not reach the server: {detail}",
    "error.stream": "The server stopped before the answer was complete.",
    "error.badId": "This address does not name a document.",
    apiKey: "API key",
    "apiKey.use": "Use this key",
    "apiKey.hint": "This server asks for an API key. It is kept in this tab only and sent with each request.",
  },
  ja: {
    skip: "本文へ移動",
    language: "表示言語",
    title: "文書を検索・質問する",
    task: "操作",
    "task.search": "検索",
    "task.ask": "質問",
    "q.search": "検索語",
    "q.ask": "質問文",
    "submit.search": "検索",
    "submit.ask": "質問する",
    "hint.search": "日本語でも英語でも検索できます。Enter キーで検索します。",
    "hint.ask": "日本語でも英語でも質問できます。回答には根拠の文書が番号付きで示されます。",
    mode: "検索方式",
    "mode.hybrid": "ハイブリッド：意味とキーワード",
    "mode.dense": "ベクトル：意味（埋め込み）",
    "mode.keyword": "キーワード：語（BM25）",
    "modeName.hybrid": "ハイブリッド",
    "modeName.dense": "ベクトル",
    "modeName.keyword": "キーワード",
    answerMode: "回答方式",
    "answerMode.auto": "自動",
    "answerMode.extractive": "抽出型：文書から引用",
    "answerMode.generative": "生成型：言語モデルが作文",
    maxTokens: "回答の最大トークン数（任意）",
    results: "検索結果",
    answer: "回答",
    citations: "出典",
    uncited: "検索されたが引用されなかった文書",
    back: "検索に戻る",
    related: "関連する文書",
    "related.ja": "日本語の文書",
    "related.en": "英語の文書",
    score: "スコア",
    morePassages: "この文書でほかに {count} か所が一致",
    section: "節",
    empty: "まず何か入力してください。",
    searching: "検索しています…",
    found: "「{query}」の検索結果 {count} 件（{mode}、{ms} ミリ秒）。",
    noHits: "「{query}」に一致する文書はありません（{mode}）。",
    foundReadAs: "「{query}」を「{readAs}」と読んだ検索結果 {count} 件（{mode}、{ms} ミリ秒）。",
    askedAs: "「{readAs}」と読みました",
    noHitsReadAs: "「{query}」を「{readAs}」と読みましたが、一致する文書はありません（{mode}）。",
    asking: "回答を探しています…",
    streaming: "回答を書いています…",
    answered: "{reader}・{ms} ミリ秒",
    "reader.sentence": "文書中で最も裏付けのある文",
    "reader.qa": "{model} が抽出",
    "reader.generator": "{model} が生成",
    showSpan: "回答を文書の中で見る",
    notFound: "文書の中にこの質問の答えは見つかりませんでした。",
    noCitations: "引用された文書はありません。",
    askAgain: "「質問する」を押すと回答します。",
    loadingDoc: "文書を読み込んでいます…",
    docMeta: "{source}・{language}・{chars} 文字",
    page: "{page} ページ",
    pages: "{first}–{last} ページ",
    slide: "スライド {page}",
    slides: "スライド {first}–{last}",
    span: "強調表示：{start}〜{end} 文字目。",
    badSpan: "指定された範囲（{start}〜{end}）はこの文書の中にありません。",
    "error.server": "サーバーのエラー（{status}）：{detail}",
    "error.network": "サーバーに接続できませんでした：{detail}",
    "error.stream": "回答の途中でサーバーからの応答が止まりました。",
    "error.badId": "このアドレスは文書を指していません。",
    apiKey: "API キー",
    "apiKey.use": "このキーを使う",
    "apiKey.hint": "このサーバーは API キーを求めています。キーはこのタブの中だけに保存され、要求のたびに送られます。",
  },
};

const state = { lang: "en", status: null, error: null, search: null, ask: null, doc: null, related: null, controller: null };

function chooseLanguage() {
  const saved = safeStorage(() => localStorage.getItem("yomitoki.lang"));
  if (saved === "ja" || saved === "en") return saved;
  const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return preferred.toLowerCase().startsWith("ja") ? "ja" : "en";
}

function t(key, vars) {
  const text = MESSAGES[state.lang][key] ?? MESSAGES.en[key] ?? key;
  const value = (name) => (typeof vars[name] === "function" ? vars[name]() : vars[name]);
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars && name in vars ? String(value(name)) : ""));
}

function safeStorage(action) {
  try {
    return action();
  } catch {
    return null; // storage disabled: the page still works, it just forgets
  }
}

function setLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  updateTask();
  renderStatus();
  renderError();
  if (state.search) renderHits(state.search);
  if (state.ask && state.ask.done) renderAnswer(state.ask.done);
  if (state.doc) renderDocumentNotes(state.doc);
  if (state.related) renderRelated(state.related);
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers
// ---------------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function setStatus(key, vars) {
  state.status = key ? { key, vars } : null;
  renderStatus();
}

function renderStatus() {
  $("status").textContent = state.status ? t(state.status.key, state.status.vars) : "";
}

function showError(error) {
  state.error = error;
  renderError();
}

function renderError() {
  const box = $("error");
  box.hidden = !state.error;
  box.textContent = state.error ? describeError(state.error) : "";
}

// An error is {status, detail, extra} from the server, {network: message}, or {key}.
function describeError(error) {
  if (error.key) return t(error.key);
  if (error.network) return t("error.network", { detail: error.network });
  const fields = (Array.isArray(error.extra) ? error.extra : [])
    .map((item) => [item.key, item.message].filter(Boolean).join(": "))
    .filter(Boolean);
  const detail = [error.detail || "", ...fields].filter(Boolean).join(" — ");
  return t("error.server", { status: error.status, detail });
}

// A response that is not 2xx, carrying the server's {status_code, detail, extra}.
class ServerError extends Error {
  constructor(info) {
    super(info.detail);
    this.info = info;
  }
}

// A server started with API keys answers 401 without one: the key the user gives is kept for this tab only
// (sessionStorage) and sent with every request the page makes.
const KEY_STORE = "yomitoki.apiKey";

function withKey(init) {
  const key = safeStorage(() => sessionStorage.getItem(KEY_STORE));
  if (!key) return init;
  return { ...(init || {}), headers: { ...((init && init.headers) || {}), authorization: `Bearer ${key}` } };
}

function askForKey() {
  $("key-form").hidden = false;
  $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return $("api-key").focus();
  safeStorage(() => sessionStorage.setItem(KEY_STORE, key));
  $("api-key").value = "";
  $("key-form").hidden = true;
  showError(null);
  if (/^\/view\//.test(location.pathname)) location.reload();
  else if ($("q").value.trim()) $("query-form").requestSubmit();
}

async function fetchOk(url, init) {
  const response = await fetch(url, withKey(init));
  if (response.ok) return response;
  if (response.status === 401) askForKey();
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // not JSON: fall back to the status text
  }
  throw new ServerError({
    status: response.status,
    detail: (body && body.detail) || response.statusText || "",
    extra: body && body.extra,
  });
}

// ---------------------------------------------------------------------------------------------
// Highlighting: server offsets are code-point offsets into the original document
// ---------------------------------------------------------------------------------------------

// Merge, sort and clip highlight ranges [s, e) given in document offsets to a passage that
// starts at document offset `start` and has `length` code points; return passage offsets.
function passageRanges(ranges, start, length) {
  const clipped = (ranges || [])
    .map(([s, e]) => [Math.max(0, s - start), Math.min(length, e - start)])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const range of clipped) {
    const last = merged[merged.length - 1];
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([...range]);
  }
  return merged;
}

// Split `text` (which begins at document offset `start`) into [{text, mark}] pieces, keeping at
// most `limit` code points around the highlights (0: the whole text) with "…" where cut.
function segments(text, start, ranges, limit) {
  const chars = Array.from(text);
  let marks = passageRanges(ranges, start, chars.length);
  let from = 0;
  let to = chars.length;
  if (limit && chars.length > limit) {
    const first = marks.length ? marks[0][0] : 0;
    from = Math.max(0, Math.min(first - Math.floor(limit / 4), chars.length - limit));
    to = Math.min(chars.length, from + limit);
    marks = passageRanges(marks, from, to - from).map(([s, e]) => [s + from, e + from]);
  }
  const pieces = [];
  let at = from;
  for (const [s, e] of marks) {
    if (s > at) pieces.push({ text: chars.slice(at, s).join(""), mark: false });
    pieces.push({ text: chars.slice(s, e).join(""), mark: true });
    at = e;
  }
  if (to > at) pieces.push({ text: chars.slice(at, to).join(""), mark: false });
  if (from > 0) pieces.unshift({ text: "…", mark: false });
  if (to < chars.length) pieces.push({ text: "…", mark: false });
  return pieces;
}

function highlighted(pieces) {
  return pieces.map((piece) => (piece.mark ? el("mark", {}, piece.text) : document.createTextNode(piece.text)));
}

function viewHref(docId, start, end) {
  return `/view/${encodeURIComponent(docId)}#${start}-${end}`;
}

// A PDF passage's page, linked to the original file opened at that page (the browser's PDF viewer);
// a PowerPoint passage's slide (.pptx or .ppt), linked to the file (browsers download it, with no page to open at);
// a scanned image's page, linked to the image
function pageLink(hit) {
  const pages = hit.pages || [];
  if (!pages.length) return null;
  const first = pages[0], last = pages[pages.length - 1];
  const format = (hit.metadata || {}).format;
  const [one, many] = format === "pptx" || format === "ppt" ? ["slide", "slides"] : ["page", "pages"];
  const text = first === last ? t(one, { page: first }) : t(many, { first, last });
  const file = `/documents/${encodeURIComponent(hit.doc_id)}/file`;
  const fragment = format === "pdf" ? `#page=${first}` : "";
  const link = el("a", { class: "page", href: file + fragment }, text);
  link.addEventListener("click", (event) => openWithKey(event, file, fragment));
  return link;
}

// A link cannot send the API key a keyed server asks for. With a key kept, the file is fetched with it
// and opened from a blob: URL (a PDF in the browser's viewer, at its page), or saved under its own name.
async function openWithKey(event, file, fragment) {
  if (!safeStorage(() => sessionStorage.getItem(KEY_STORE))) return; // no key: the plain link
  event.preventDefault();
  try {
    const response = await fetchOk(file);
    const url = URL.createObjectURL(await response.blob());
    const named = /filename\*=UTF-8''([^;]+)|filename="([^"]+)"/i.exec(response.headers.get("content-disposition") || "");
    if (response.headers.get("content-type") === "application/pdf" || !named) {
      location.assign(url + fragment);
      return;
    }
    const save = el("a", { href: url, download: named[1] ? decodeURIComponent(named[1]) : named[2] });
    document.body.append(save);
    save.click();
    save.remove();
  } catch (error) {
    showError(error);
  }
}

function score(value) {
  return typeof value === "number" ? value.toFixed(4) : "";
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

async function runSearch(query, mode) {
  const controller = restartRequest();
  state.search = null;
  state.ask = null;  // one task's results at a time: a later redraw (the language) shows only these
  $("results").hidden = true;
  $("answer").hidden = true;
  setStatus("searching");
  let body;
  try {
    const response = await fetchOk("/search", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ query, mode, k: 10, collapse: "document" }),  // each document once
      signal: controller.signal,
    });
    body = await response.json();
  } catch (error) {
    return failed(error);
  }
  state.search = body;
  // kana the server read as the index's words (けいたいそかいせき → 形態素解析) is shown as searched
  const key = (body.hits.length ? "found" : "noHits") + (body.read_as ? "ReadAs" : "");
  setStatus(key, {
    count: body.hits.length, query: body.query, readAs: body.read_as, mode: () => t(`modeName.${body.mode}`),
    ms: Math.round(body.took_ms),
  });
  renderHits(body);
}

function renderHits(body) {
  const list = $("hits");
  list.replaceChildren(...body.hits.map((hit) => hitItem(hit, null)));
  $("results").hidden = false;
}

// One result or citation: title linked to the document view, source, score, highlighted passage
// (a search hit's matched words, or in a citation the answer when it was taken from there).
function hitItem(hit, number, answerSpan) {
  const inHit = answerSpan && answerSpan.doc_id === hit.doc_id ? [[answerSpan.start, answerSpan.end]] : [];
  const ranges = number === null ? hit.highlights : inHit;
  const passage = segments(hit.text, hit.start, ranges, number === null ? 280 : 0);
  const section = (hit.section || []).slice(1).join(" › ");
  const label = number === null ? null : el("span", { class: "cite-number", "aria-hidden": "true" }, `[${number}]`);
  return el("li", { class: "hit", id: number === null ? null : `cite-${number}` },
    el("h3", { class: "hit-title" }, label, " ",
      el("a", { href: viewHref(hit.doc_id, hit.start, hit.end), lang: hit.language,
                "data-doc": hit.doc_id, "data-start": hit.start, "data-end": hit.end }, hit.title || hit.source)),
    el("p", { class: "meta" },
      el("span", { class: "source" }, hit.source),
      section ? el("span", { class: "section", lang: hit.language }, `${t("section")}: ${section}`) : null,
      pageLink(hit),
      el("span", { class: "score" }, `${t("score")} ${score(hit.score)}`),
      hit.more ? el("span", { class: "more" }, t("morePassages", { count: hit.more })) : null),
    el(number === null ? "p" : "blockquote", { class: "snippet", lang: hit.language }, highlighted(passage)));
}

// ---------------------------------------------------------------------------------------------
// Ask: POST /ask with "stream": true, read as server-sent events through fetch
// ---------------------------------------------------------------------------------------------

async function runAsk(question, mode, maxTokens) {
  const controller = restartRequest();
  state.search = null;
  state.ask = { question, mode, done: null };
  $("results").hidden = true;
  startAnswer();
  setStatus("asking");
  const payload = { question, mode, stream: true };
  if (maxTokens) payload.max_tokens = maxTokens;
  const ask = state.ask;
  try {
    const response = await fetchOk("/ask", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(payload),
      signal: controller.signal,
    });
    const type = response.headers.get("content-type") || "";
    if (!type.includes("text/event-stream")) return finishAnswer(await response.json());
    await readEvents(response.body, onAskEvent);
  } catch (error) {
    return failed(error);
  }
  if (state.ask === ask && !ask.done && !state.error) failed({ key: "error.stream" });
}

function onAskEvent(name, data) {
  if (name === "token") {
    const box = $("answer-text");
    if (box.dataset.state !== "streaming") {
      box.dataset.state = "streaming";
      setStatus("streaming");
    }
    box.append(document.createTextNode(data.text || ""));
    box.dataset.tokens = String(Number(box.dataset.tokens) + 1);
  } else if (name === "done") {
    finishAnswer(data);
  } else if (name === "error") {
    failed(new ServerError({ status: data.status_code, detail: data.detail, extra: data.extra }));
  }
}

// Parse a text/event-stream body: blocks separated by a blank line, "event:" and "data:" fields.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      dispatchBlock(buffer.slice(0, cut), onEvent);
      buffer = buffer.slice(cut + 2);
    }
    if (done) break;
  }
  if (buffer.trim()) dispatchBlock(buffer, onEvent);
}

function dispatchBlock(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(name, JSON.parse(data.join("\n")));
}

function startAnswer() {
  const box = $("answer-text");
  box.replaceChildren();
  box.dataset.state = "waiting";
  box.dataset.tokens = "0";
  box.setAttribute("aria-busy", "true");
  $("answer-meta").textContent = "";
  $("citations").replaceChildren();
  $("answer").hidden = false;
}

function finishAnswer(body) {
  state.ask.done = body;
  safeStorage(() => sessionStorage.setItem("yomitoki.answer", JSON.stringify(body)));
  setStatus(null);
  renderAnswer(body);
}

function renderAnswer(body) {
  const box = $("answer-text");
  const numbers = new Set((body.citations || []).map((c) => c.n));
  box.replaceChildren(...answerWithLinks(body.answer || "", numbers));
  box.dataset.state = "done";
  box.setAttribute("aria-busy", "false");
  // The server words a refusal itself, in the question's language; the page's line is for an empty answer.
  if (!body.answer_found && !body.answer) box.prepend(el("p", { class: "not-found" }, t("notFound")));
  const span = body.answer_span;
  $("answer-meta").replaceChildren(t("answered", { reader: readerName(body.reader || body.mode), ms: Math.round(body.took_ms || 0) }),
    span ? " · " : "", span ? el("a", { href: viewHref(span.doc_id, span.start, span.end), id: "answer-span" }, t("showSpan")) : "",
    body.read_as ? " · " : "", body.read_as ? el("span", { id: "read-as" }, t("askedAs", { readAs: body.read_as })) : "");
  const cited = (body.citations || []).map((c) => hitItem(c, c.n, span));
  $("citations").replaceChildren(...(cited.length ? cited : [el("li", { class: "hint" }, t("noCitations"))]));
  const uncited = body.uncited || [];
  document.getElementById("uncited")?.remove();
  if (uncited.length) {
    $("citations").after(el("details", { class: "uncited", id: "uncited" },
      el("summary", {}, t("uncited")),
      el("ol", { class: "hits" }, uncited.map((hit) => hitItem(hit, null)))));
  }
  $("answer").hidden = false;
}

// "sentence", "extractive-qa:<model>" or "generator:<model>" in words.
function readerName(reader) {
  const [kind, ...rest] = reader.split(":");
  const model = rest.join(":");
  if (kind === "sentence") return t("reader.sentence");
  if (kind === "extractive-qa") return t("reader.qa", { model });
  if (kind === "generator") return t("reader.generator", { model });
  return reader;
}

// "… [1] …" in a generated answer becomes a link to citation 1's passage in its document.
function answerWithLinks(answer, numbers) {
  const nodes = [];
  let at = 0;
  for (const match of answer.matchAll(/\[(\d+)\]/g)) {
    const n = Number(match[1]);
    if (!numbers.has(n)) continue;
    nodes.push(document.createTextNode(answer.slice(at, match.index)));
    nodes.push(el("a", { href: `#cite-${n}`, class: "cite-ref" }, match[0]));
    at = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(answer.slice(at)));
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Requests, the form and the address bar
// ---------------------------------------------------------------------------------------------

function restartRequest() {
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  showError(null);
  document.getElementById("uncited")?.remove();
  return state.controller;
}

function failed(error) {
  if (error && error.name === "AbortError") return; // replaced by a newer request
  setStatus(null);
  const box = $("answer-text");
  if (box.dataset.state === "waiting" || box.dataset.state === "streaming") {
    box.dataset.state = "error";
    box.setAttribute("aria-busy", "false");
  }
  if (error instanceof ServerError) showError(error.info);
  else if (error instanceof Error) showError({ network: error.message });
  else showError(error);
}

function currentTask() {
  return document.querySelector('input[name="task"]:checked').value;
}

function updateTask() {
  const task = currentTask();
  $("q-label").textContent = t(`q.${task}`);
  $("submit").textContent = t(`submit.${task}`);
  $("q-hint").textContent = t(`hint.${task}`);
  $("search-options").hidden = task !== "search";
  $("ask-options").hidden = task !== "ask";
}

function onSubmit(event) {
  event.preventDefault();
  const input = $("q");
  const text = input.value.trim();
  if (!text) {
    input.setAttribute("aria-invalid", "true");
    showError({ key: "empty" });
    input.focus();
    return;
  }
  input.removeAttribute("aria-invalid");
  const task = currentTask();
  const params = new URLSearchParams({ task, q: text });
  if (task === "search") params.set("mode", $("mode").value);
  else params.set("answer_mode", $("answer-mode").value);
  history.replaceState(null, "", `/?${params}`);
  rememberBack();
  if (task === "search") runSearch(text, $("mode").value);
  else runAsk(text, $("answer-mode").value, Number($("max-tokens").value) || null);
}

// Restore the form from the address: a search runs again, an answer is shown if it was saved.
function restoreQuery() {
  const params = new URLSearchParams(location.search);
  const q = params.get("q");
  if (!q) return;
  const task = params.get("task") === "ask" ? "ask" : "search";
  $(`task-${task}`).checked = true;
  $("q").value = q;
  setOption($("mode"), params.get("mode"));
  setOption($("answer-mode"), params.get("answer_mode"));
  updateTask();
  rememberBack();  // a search or answer opened from its address is where "Back to search" returns to
  if (task === "search") return runSearch(q, $("mode").value);
  const saved = safeStorage(() => JSON.parse(sessionStorage.getItem("yomitoki.answer") || "null"));
  if (saved && saved.question === q) {
    state.ask = { question: q, mode: saved.mode, done: saved };
    renderAnswer(saved);
  } else {
    setStatus("askAgain");
  }
}

// The page the document view's "Back to search" link returns to: the search or question now shown.
function rememberBack() {
  safeStorage(() => sessionStorage.setItem("yomitoki.back", `${location.pathname}${location.search}`));
}

function setOption(select, value) {
  if (value && [...select.options].some((option) => option.value === value)) select.value = value;
}

// ---------------------------------------------------------------------------------------------
// Document view: /view/{id}#start-end (or ?start=&end=) marks that span and scrolls to it
// ---------------------------------------------------------------------------------------------

function requestedSpan() {
  const params = new URLSearchParams(location.search);
  const hash = /^#(\d+)-(\d+)$/.exec(location.hash);
  const start = hash ? hash[1] : params.get("start");
  const end = hash ? hash[2] : params.get("end");
  if (start === null || end === null || !/^\d+$/.test(start) || !/^\d+$/.test(end)) return null;
  return { start: Number(start), end: Number(end) };
}

async function openDocument(docId) {
  for (const id of ["query-view", "results", "answer"]) $(id).hidden = true;
  $("doc-view").hidden = false;
  const back = safeStorage(() => sessionStorage.getItem("yomitoki.back"));
  if (back && back.startsWith("/?")) $("back-link").href = back;
  if (!docId) return showError({ key: "error.badId" });
  setStatus("loadingDoc");
  try {
    const response = await fetchOk(`/documents/${encodeURIComponent(docId)}`, { headers: { accept: "application/json" } });
    state.doc = await response.json();
  } catch (error) {
    return failed(error);
  }
  setStatus(null);
  renderDocument(state.doc);
  loadRelated(state.doc.id);
}

// Documents on the same subject (GET /documents/{id}/related), three in each language: the model finds
// documents in the document's own language closer, so one list would hide the other language's.
// A list that fails or is empty stays hidden: the document is what was asked for.
async function loadRelated(docId) {
  const lists = await Promise.all(["ja", "en"].map(async (language) => {
    try {
      const response = await fetchOk(`/documents/${encodeURIComponent(docId)}/related?k=3&language=${language}`,
                                     { headers: { accept: "application/json" } });
      return [language, (await response.json()).hits];
    } catch {
      return [language, []];
    }
  }));
  state.related = lists;
  renderRelated(lists);
}

function renderRelated(lists) {  // redrawn when the language changes
  for (const [language, hits] of lists) {
    const block = $(`related-${language}`);
    block.querySelector("ol").replaceChildren(...hits.map((hit) => hitItem(hit, null)));
    block.hidden = hits.length === 0;
  }
  $("related").hidden = lists.every(([, hits]) => hits.length === 0);
}

// The document's text with the requested span marked, scrolled to and focused.
function renderDocument(doc) {
  document.title = `${doc.title || doc.source} – yomitoki`;
  $("doc-title").textContent = doc.title || doc.source;
  $("doc-title").lang = doc.language;
  const span = documentSpan(doc);
  const text = $("doc-text");
  text.lang = doc.language;
  text.replaceChildren(...highlighted(segments(doc.text, 0, span && span.inside ? [[span.start, span.end]] : [], 0)));
  renderDocumentNotes(doc);
  const mark = text.querySelector("mark");
  if (mark) {
    mark.id = "cited";
    mark.tabIndex = -1;
    mark.scrollIntoView({ block: "center" });
    mark.focus({ preventScroll: true });
  }
}

// The lines about the document in the interface language (redrawn when the language changes).
function renderDocumentNotes(doc) {
  const span = documentSpan(doc);
  $("doc-meta").textContent = t("docMeta", { source: doc.source, language: doc.language, chars: doc.chars });
  $("doc-note").textContent = span ? t(span.inside ? "span" : "badSpan", span) : "";
}

function documentSpan(doc) {
  const span = requestedSpan();
  if (doc.chars === undefined) doc.chars = Array.from(doc.text).length;
  return span && { ...span, inside: span.start < span.end && span.end <= doc.chars };
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

function start() {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      safeStorage(() => localStorage.setItem("yomitoki.lang", button.dataset.lang));
      setLanguage(button.dataset.lang);
    });
  }
  for (const radio of document.querySelectorAll('input[name="task"]')) radio.addEventListener("change", updateTask);
  $("query-form").addEventListener("submit", onSubmit);
  $("key-form").addEventListener("submit", useKey);
  setLanguage(chooseLanguage());
  const view = /^\/view\/([^/]*)$/.exec(location.pathname);
  if (view) {
    window.addEventListener("hashchange", () => state.doc && renderDocument(state.doc));
    openDocument(decodeURIComponent(view[1]));
  } else {
    restoreQuery();
  }
}

// For the browser tests: the highlighting function, to check code-point offsets directly, and the page link.
window.yomitoki = { segments, pageLink };

start();
