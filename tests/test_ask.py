"""Question answering: `/ask` in every mode, its readers, packing, citations and the CLI.

The extractive QA path runs a BERT question-answering model the tests build
themselves: its weights are set by hand so that the word "zebra" is the answer
wherever it appears and the no-answer token ([CLS]) wins where it does not.
That makes windows, stride, span merging, offsets and no-answer decisions
checkable exactly. The real SmolLM2 generator runs once, in the real server.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx
import pytest
import torch
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.embed.locations import locate_embedder
from indexer.search.searcher import Hit, Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from indexer.text.normalize import normalize
from server.answering.followups import Turn
from server.answering.generators import TextGenerationLimits, TextGenerationOutcome, TransformersGenerator
from server.answering.packing import pack_passages
from server.answering.passages import Passage
from server.answering.pipeline import NOT_FOUND, Answerer, Question
from server.answering.prompting import CitationFilter, build_prompt, cited_numbers, resolve_citations
from server.answering.qa_reader import QASettings, load_qa_reader
from server.answering.repetition import loops
from server.answering.sentence_reader import code_blocks, sentence_candidates
from server.app import create_app
from server.model_registry import ModelRegistry
from server.nlp.label_baseline import REFERENCES
from server.routes.ask import answer_events
from server.settings import ServerSettings
from tests.conftest import RunningServer, build, yomitoki

MARKER = "zebra"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "iota", "kappa", "lambda"]


# ---- fixtures ------------------------------------------------------------------------------

def build_marker_qa_model(path: Path) -> Path:
    """A one-layer BERT QA model whose start/end logits peak on MARKER, then on [CLS]."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(locate_embedder("all-minilm-l6-v2").path))
    hidden = 64
    model = BertForQuestionAnswering(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64))
    with torch.no_grad():
        layer = model.bert.encoder.layer[0]
        for linear in (layer.attention.output.dense, layer.output.dense):  # the layer passes tokens through
            linear.weight.zero_()
            linear.bias.zero_()
        model.bert.embeddings.position_embeddings.weight.zero_()
        model.bert.embeddings.token_type_embeddings.weight.zero_()
        marker = torch.randn(hidden)
        marker -= marker.mean()
        marker /= marker.norm()
        other = torch.randn(hidden)
        other -= other.mean() + (other @ marker) * marker
        other /= other.norm()
        words = model.bert.embeddings.word_embeddings.weight
        words[tokenizer.convert_tokens_to_ids(MARKER)] = marker
        words[tokenizer.cls_token_id] = 0.6 * marker + 0.8 * other
        model.qa_outputs.weight.copy_(torch.stack([marker, marker]) * 4)
        model.qa_outputs.bias.zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def marker_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_marker_qa_model(tmp_path_factory.mktemp("marker-qa"))


@pytest.fixture(scope="module")
def client(corpus_index: IndexDirectory) -> Iterator[TestClient]:
    settings = ServerSettings(index_dir=corpus_index.path, generator=None)
    with TestClient(create_app(settings)) as client:
        yield client


ZOO = """# Animals of the savanna

The savanna is home to many grazing animals. ﾃﾞｨｰﾌﾟな草原 ㈱ lies far from here.

The striped animal of the savanna is the ｚｅｂｒａ, which lives in herds.
"""


@pytest.fixture(scope="module")
def zoo_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
              keywords: KeywordTokenizer) -> Path:
    corpus = tmp_path_factory.mktemp("zoo-corpus")
    (corpus / "savanna.md").write_text(ZOO, encoding="utf-8")
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is grown on hillsides in Shizuoka.\n", encoding="utf-8")
    index = tmp_path_factory.mktemp("zoo-index")
    build(corpus, index, embedder, keywords)
    return index


def passage_with_marker(*positions: int, length: int = 200, prefix: str = "ﾃﾞｨｰﾌﾟ ㈱ ") -> Passage:
    """A passage of `length` one-token words, MARKER (full-width) at each word position, after NFKC-changed text."""
    words = [WORDS[i % len(WORDS)] for i in range(length)]
    for position in positions:
        words[position] = "ｚｅｂｒａ"
    text = prefix + " ".join(words)
    hit = Hit(doc_id="doc", chunk_id=1, title="t", source="t.md", section=(), text=text,
              start=len(DOCUMENT_PREFIX), end=len(DOCUMENT_PREFIX) + len(text), score=1.0,
              highlights=(), language="en", metadata={})
    return Passage(n=1, hit=hit, tokens=length, relevance=1.0)


DOCUMENT_PREFIX = "Ｈｅａｄｅｒ ｶﾞ\n"  # the passage starts later in its document


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in re.split(r"\r?\n\r?\n", text.strip()):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def document_text(client: TestClient | None, doc_id: str, base_url: str | None = None) -> str:
    if client is not None:
        return client.get(f"/documents/{doc_id}").json()["text"]
    return httpx.get(f"{base_url}/documents/{doc_id}", timeout=30).json()["text"]


# ---- the sentence reader through /ask -------------------------------------------------------

def test_sentence_reader_answers_with_the_sentence_and_its_exact_offsets(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "What kind of function is BM25?", "mode": "extractive"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive" and body["reader"] == "sentence" and body["answer_found"]
    assert "ranking function" in body["answer"]
    span, cited = body["answer_span"], body["citations"][0]
    text = document_text(client, span["doc_id"])
    assert text[span["start"] : span["end"]] == body["answer"]
    assert cited["n"] == 1 and cited["doc_id"] == span["doc_id"] and cited["source"] == "en-bm25.md"
    assert text[cited["start"] : cited["end"]] == cited["text"]
    assert cited["start"] <= span["start"] < span["end"] <= cited["end"]
    assert [u["n"] for u in body["uncited"]] == list(range(2, 2 + len(body["uncited"])))
    assert body["generation"].startswith("gen-") and body["took_ms"] >= body["retrieval_ms"] > 0


def test_sentence_answer_slices_original_text_that_nfkc_changes(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "半角のｶﾞはNFKCを通すと何になる？", "mode": "extractive"}).json()
    assert body["answer_found"], body
    span = body["answer_span"]
    original = document_text(client, span["doc_id"])[span["start"] : span["end"]]
    assert original == body["answer"]
    assert "ｶﾞ" in body["answer"] and normalize(body["answer"]).text != body["answer"]


@pytest.mark.parametrize("question,language", [
    ("Who won the 2014 FIFA World Cup final in Rio de Janeiro?", "en"),
    ("富士山の標高は何メートルですか", "ja"),
])
def test_question_outside_the_documents_says_so(client: TestClient, question: str, language: str) -> None:
    body = client.post("/ask", json={"question": question, "mode": "extractive"}).json()
    assert body["answer_found"] is False and body["answer"] == NOT_FOUND[language]
    assert body["answer_span"] is None and body["citations"] == [] and body["uncited"]


def test_the_floor_is_embedded_before_the_server_says_it_is_healthy(corpus_index: IndexDirectory,
                                                                    embedder: Embedder) -> None:
    """The first question does not pay for the reference sentences (about 0.4 s under e5)."""
    REFERENCES.clear()
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path))) as client:
        assert REFERENCES.holds(embedder, kind="passage")
        assert client.get("/health").status_code == 200


def test_auto_mode_without_a_generator_is_extractive(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "What does reciprocal rank fusion combine?"}).json()
    assert body["mode"] == "extractive" and body["reader"] == "sentence"


def test_filters_and_k_limit_the_passages(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "トークナイザ", "k": 2, "mode": "extractive",
                                     "filters": {"language": "ja"}}).json()
    shown = body["citations"] + body["uncited"]
    assert 1 <= len(shown) <= 2 and all(not p["source"].startswith("en-") for p in shown)


def test_streamed_extractive_answer_is_one_token_then_done(client: TestClient) -> None:
    payload = {"question": "What kind of function is BM25?", "mode": "extractive"}
    response = client.post("/ask", json={**payload, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [kind for kind, _ in events] == ["token", "done"]
    done = events[1][1]
    assert events[0][1]["text"] == done["answer"]
    plain = client.post("/ask", json=payload).json()
    assert {k: v for k, v in done.items() if not k.endswith("_ms")} == \
        {k: v for k, v in plain.items() if not k.endswith("_ms")}


# ---- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("payload,field", [
    ({"question": ""}, "question"),
    ({"question": "x" * 2001}, "question"),
    ({"mode": "extractive"}, "question"),
    ({"question": "q", "k": 0}, "k"),
    ({"question": "q", "k": 21}, "k"),
    ({"question": "q", "max_tokens": 0}, "max_tokens"),
    ({"question": "q", "max_tokens": 513}, "max_tokens"),
    ({"question": "q", "mode": "abstractive"}, "mode"),
    ({"question": "q", "stream": "yes"}, "stream"),
    ({"question": "q", "filters": {"colour": "red"}}, "colour"),
    ({"question": "q", "temperature": 0.5}, "temperature"),
])
def test_bad_ask_requests_are_400_naming_the_field(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/ask", json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400 and field in response.text


@pytest.mark.parametrize("question", ["\u0000\u0001", "\u3000"])
def test_question_empty_after_normalization_is_400_naming_it(client: TestClient, question: str) -> None:
    response = client.post("/ask", json={"question": question, "mode": "extractive"})
    assert response.status_code == 400 and response.json()["detail"].startswith("question: is empty"), response.text


def test_generative_mode_without_a_generator_is_503(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "What is BM25?", "mode": "generative"})
    assert response.status_code == 503 and "generator" in response.json()["detail"]
    streamed = client.post("/ask", json={"question": "What is BM25?", "mode": "generative", "stream": True})
    assert sse_events(streamed.text) == [("error", {"status_code": 503,
                                                    "detail": "no generator model is configured"})]


# ---- the extractive QA model ----------------------------------------------------------------

@pytest.mark.parametrize("position", [3, 40, 120, 195])
def test_qa_reader_finds_the_answer_in_any_window_with_exact_offsets(marker_model: Path, position: int) -> None:
    reader = load_qa_reader(str(marker_model), QASettings(max_length=64, stride=24))
    passage = passage_with_marker(position)
    reading = reader.read_all("where?", [passage])
    assert reading.windows > 3  # 200 words do not fit one 64-token window
    best = reading.spans[0]
    assert best.text == "ｚｅｂｒａ" and best.score > 0.99
    document = DOCUMENT_PREFIX + passage.hit.text
    assert document[best.start : best.end] == "ｚｅｂｒａ"
    assert [s.text for s in reading.spans].count("ｚｅｂｒａ") == 1  # overlapping windows merged


def test_qa_reader_merges_the_span_seen_by_two_windows(marker_model: Path) -> None:
    reader = load_qa_reader(str(marker_model), QASettings(max_length=64, stride=24))
    assert reader.read_all("where?", [passage_with_marker(3)]).spans[0].windows == 1
    assert reader.read_all("where?", [passage_with_marker(40)]).spans[0].windows == 2  # in the overlap


@pytest.mark.parametrize("longest,joined", [(3, False), (4, True)])
def test_qa_reader_spans_are_valid_and_bounded(marker_model: Path, longest: int, joined: bool) -> None:
    reader = load_qa_reader(str(marker_model), QASettings(max_length=64, stride=24, max_answer_tokens=longest))
    passage = passage_with_marker(10, 13)  # "ｚｅｂｒａ beta gamma ｚｅｂｒａ": a 4-token span between two answers
    texts = [span.text for span in reader.read_all("where?", [passage]).spans]
    assert texts.count("ｚｅｂｒａ") == 2
    assert ("ｚｅｂｒａ beta gamma ｚｅｂｒａ" in texts) is joined
    assert all(text.startswith("ｚｅｂｒａ") and text.endswith("ｚｅｂｒａ") for text in texts)


def test_qa_reader_says_no_answer(marker_model: Path) -> None:
    reader = load_qa_reader(str(marker_model), QASettings(max_length=64, stride=24))
    without = passage_with_marker()
    reading = reader.read_all("where?", [without])
    assert reading.no_answer > 0.9 and all(span.score < reading.no_answer for span in reading.spans)
    profile = type("Profile", (), {"text": "where?"})()
    assert reader.read(profile, [without]) is None  # type: ignore[arg-type]
    strict = load_qa_reader(str(marker_model), QASettings(max_length=64, stride=24, no_answer_threshold=1.0))
    assert strict.read(profile, [passage_with_marker(10)]) is None  # type: ignore[arg-type]
    assert reader.read(profile, [passage_with_marker(10)]).text == "ｚｅｂｒａ"  # type: ignore[arg-type, union-attr]


def test_ask_with_a_qa_model_end_to_end(zoo_index: Path, marker_model: Path) -> None:
    settings = ServerSettings(index_dir=zoo_index, generator=None, qa_model=str(marker_model))
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["models"]["qa"]["loaded"] is False  # lazy
        body = client.post("/ask", json={"question": "Which striped animal lives in the savanna?"}).json()
        assert body["reader"] == f"extractive-qa:{marker_model}" and body["mode"] == "extractive"
        assert body["answer_found"] and body["answer"] == "ｚｅｂｒａ"
        span = body["answer_span"]
        assert document_text(client, span["doc_id"])[span["start"] : span["end"]] == "ｚｅｂｒａ"
        assert body["citations"][0]["source"] == "savanna.md"
        assert client.get("/health").json()["models"]["qa"]["loaded"] is True
        tea = {"question": "Where is green tea grown?", "mode": "extractive", "k": 1}  # no zebra in there
        none = client.post("/ask", json=tea).json()
        assert none["uncited"][0]["source"] == "tea.md" and none["reader"].startswith("extractive-qa:")
        assert none["answer_found"] is False and none["answer"] == NOT_FOUND["en"]


def test_a_qa_model_that_fails_to_load_is_reported_and_search_keeps_working(
        zoo_index: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-qa"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    settings = ServerSettings(index_dir=zoo_index, generator=None, qa_model=str(broken))
    with TestClient(create_app(settings)) as client:
        response = client.post("/ask", json={"question": "Which animal is striped?", "mode": "extractive"})
        assert response.status_code == 503 and str(broken) in response.json()["detail"]
        assert client.post("/search", json={"query": "zebra"}).status_code == 200
        state = client.get("/health").json()["models"]["qa"]
        assert state["loaded"] is False and state["error"]
        auto = client.post("/ask", json={"question": "Which animal is striped?"}).json()
        assert auto["reader"] == "sentence"  # auto falls back to what works


@pytest.mark.parametrize("name", ["corpus_questions.jsonl", "corpus_questions_heldout.jsonl"])
def test_the_corpus_questions_point_at_evidence_in_their_articles(name: str) -> None:
    """The benchmark's questions stay true to corpus/: every evidence phrase is in its article, and
    every article has two questions in its language and one in the other."""
    from benchmarks.corpus_questions import QUESTIONS, load_questions
    from tests.conftest import CORPUS

    questions = load_questions(QUESTIONS.with_name(name))
    articles = sorted(path.name for path in CORPUS.glob("*.md"))
    assert sorted({q.source for q in questions}) == articles
    for q in questions:
        assert q.evidence in (CORPUS / q.source).read_text(encoding="utf-8"), q
        assert q.language in ("ja", "en") and q.question.strip(), q
    for article in articles:
        languages = sorted(q.language == article[:2] for q in questions if q.source == article)
        assert languages == [False, True, True], article


def test_sentence_candidates_skip_headings_and_code() -> None:
    document = ("Intro\n\n```python\nvalue = compute(1)\nprint(value)\n```\n\n"
                "## Usage notes\n\nThe compute function returns one value.\n")
    start = document.index("value =")  # the chunk begins inside the code block
    text = document[start:]
    hit = Hit(doc_id="d", chunk_id=1, title="Intro", source="d.md", section=("Intro", "Usage notes"), text=text,
              start=start, end=len(document), score=1.0, highlights=(), language="en", metadata={})
    passage = Passage(n=1, hit=hit, tokens=30, relevance=1.0, code=code_blocks(document))
    found = [text[s:e] for _, s, e in sentence_candidates([passage])]
    assert found == ["The compute function returns one value."]


def test_a_sentence_under_a_heading_the_chunk_starts_with_is_an_answer_without_the_heading() -> None:
    document = "# 就業規則\n\n### 第4条（在宅勤務）\n従業員は、所属長の許可を得て、在宅勤務をすることができる。\n"
    start = document.index("第4条")  # the chunk begins after the heading's `###`, at its text
    text = document[start:]
    hit = Hit(doc_id="d", chunk_id=1, title="就業規則", source="d.md", section=("就業規則", "第4条（在宅勤務）"),
              text=text, start=start, end=len(document), score=1.0, highlights=(), language="ja", metadata={})
    passage = Passage(n=1, hit=hit, tokens=30, relevance=1.0, code=code_blocks(document))
    found = [text[s:e] for _, s, e in sentence_candidates([passage])]
    assert found == ["従業員は、所属長の許可を得て、在宅勤務をすることができる。"]


# ---- packing and citations -----------------------------------------------------------------

def test_packing_fills_the_budget_by_tokens_most_relevant_first(searcher: Searcher) -> None:
    hits = searcher.search("tokenization of Japanese text", k=8)
    counts = searcher.embedder.count_tokens([h.text for h in hits])
    budget = counts[0] + counts[1] + 40
    packed = pack_passages(hits, [0.5] * len(hits), searcher.embedder.count_tokens, budget)
    assert [p.n for p in packed] == list(range(1, len(packed) + 1))
    assert packed[0].hit == hits[0] and packed[1].hit == hits[1]
    assert sum(p.tokens for p in packed) <= budget
    assert all(p.tokens == searcher.embedder.count_tokens([p.hit.text])[0] for p in packed)
    everything = pack_passages(hits, [0.5] * len(hits), searcher.embedder.count_tokens, 10_000)
    assert len(everything) == len(hits)


def test_packing_cuts_a_long_passage_at_a_sentence_boundary(searcher: Searcher) -> None:
    hit = searcher.search("extractive question answering span", k=1)[0]
    total = searcher.embedder.count_tokens([hit.text])[0]
    packed = pack_passages([hit], [1.0], searcher.embedder.count_tokens, total - 1)
    assert len(packed) == 1 and packed[0].tokens <= total - 1
    cut = packed[0].hit
    assert hit.text.startswith(cut.text) and cut.end == cut.start + len(cut.text) < hit.end
    assert cut.text.rstrip()[-1] in ".。!?！？)」"


@pytest.mark.parametrize("pieces,count,expected", [
    (["Paris [1] and [Passage 2][7] x [1, 9]."], 2, "Paris [1] and [2] x [1]."),
    (list("Berlin [2] or [12] or [1,2]"), 3, "Berlin [2] or  or [1][2]"),
    (["a [", "3", "] b [x] c [2"], 2, "a  b [x] c "),  # an answer cut inside a citation drops what is open
    (["BM25 is a ranking function [Pas"], 2, "BM25 is a ranking function "),
])
def test_citation_filter_streams_only_citations_that_resolve(pieces: list[str], count: int, expected: str) -> None:
    citations = CitationFilter(count)
    streamed = "".join(citations.feed(p) for p in pieces) + citations.flush()
    assert streamed == expected and resolve_citations("".join(pieces), count).startswith(streamed)
    assert all(1 <= n <= count for n in cited_numbers(streamed))


def test_prompt_numbers_the_passages_and_asks_for_citations(searcher: Searcher) -> None:
    hits = searcher.search("reciprocal rank fusion", k=3)
    passages = pack_passages(hits, [0.5] * 3, searcher.embedder.count_tokens, 2000)
    messages = build_prompt("What does RRF combine?", passages)
    assert [m["role"] for m in messages] == ["user"]
    user = messages[0]["content"]
    assert all(f"[{p.n}] " in user for p in passages) and user.rstrip().endswith("What does RRF combine?")
    assert "only the passages" in user and "like [1]" in user


# ---- generation: limits and cancellation (a tiny generator the test builds) -----------------

@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    """A small random-weight causal LM that never ends on its own (no end-of-text token)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from server.answering.generators import load_generator

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(locate_embedder("all-minilm-l6-v2").path))
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=4096, eos_token_id=None, bos_token_id=None)
    path = tmp_path_factory.mktemp("tiny-generator")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_generator(str(path))


MESSAGES = [{"role": "user", "content": "alpha beta gamma"}]


def test_generation_stops_at_the_token_limit(tiny_generator: TransformersGenerator) -> None:
    outcome = TextGenerationOutcome()
    text = "".join(tiny_generator.stream(MESSAGES, TextGenerationLimits(12, 60), threading.Event(), outcome))
    assert outcome.stop == "max_tokens" and outcome.tokens == 12 and text


def test_generation_stops_at_the_time_limit(tiny_generator: TransformersGenerator) -> None:
    outcome = TextGenerationOutcome()
    list(tiny_generator.stream(MESSAGES, TextGenerationLimits(4000, 0.5), threading.Event(), outcome))
    assert outcome.stop == "time" and 0 < outcome.tokens < 4000


def test_closing_the_stream_stops_the_generation(tiny_generator: TransformersGenerator) -> None:
    outcome = TextGenerationOutcome()
    stream = tiny_generator.stream(MESSAGES, TextGenerationLimits(4000, 120), threading.Event(), outcome)
    assert next(stream)
    stream.close()  # what the server does when the client disconnects
    assert outcome.stop == "cancelled" and outcome.tokens < 4000


@pytest.mark.anyio
async def test_disconnect_from_the_event_stream_cancels_generation(
        tiny_generator: TransformersGenerator, corpus_index: IndexDirectory, embedder: Embedder) -> None:
    registry = ModelRegistry()
    registry.register("generator", "tiny", lambda: tiny_generator)
    searcher = Searcher(corpus_index.current(), embedder)
    answerer = Answerer(lambda: nullcontext(searcher), registry)
    cancel = threading.Event()
    events = answer_events(answerer, Question("What is BM25?", mode="generative", max_tokens=4000), cancel)
    first = await events.__anext__()
    assert first.event == "token"
    await events.aclose()  # Litestar cancels the stream like this when the client goes away
    assert cancel.is_set()
    assert tiny_generator._lock.acquire(blocking=False)  # the generation has ended, not run on
    tiny_generator._lock.release()
    searcher.close()


def test_a_follow_up_is_searched_rewritten_but_the_generator_reads_it_as_asked(
        tiny_generator: TransformersGenerator, corpus_index: IndexDirectory, embedder: Embedder) -> None:
    """The rewrite is for search; the model is given the user's own question, after the one it points back at."""
    prompts: list[str] = []

    class Reading(TransformersGenerator):  # the real model, noting each prompt it is given
        def stream(self, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
            prompts.append(messages[-1]["content"])
            return super().stream(messages, *args, **kwargs)

    reading = Reading(tiny_generator.model, tiny_generator.tokenizer, "tiny")
    reading.languages = ()  # the rule rewrites, not the model
    registry = ModelRegistry()
    registry.register("generator", "tiny", lambda: reading)
    searcher = Searcher(corpus_index.current(), embedder)
    history = (Turn("user", "What is reciprocal rank fusion?"), Turn("assistant", "A way to merge rankings."))
    asked = "Is it older than BM25? Answer yes or no."
    response = Answerer(lambda: nullcontext(searcher), registry).answer(
        Question(asked, mode="generative", max_tokens=4, history=history))
    assert response.question == asked and "reciprocal" in (response.search_query or ""), response
    assert prompts[-1].endswith(f"Earlier question: What is reciprocal rank fusion?\nQuestion: {asked}"), prompts
    japanese = Answerer(lambda: nullcontext(searcher), registry).answer(
        Question("それは？", mode="extractive", history=(Turn("user", "What is the capital of France?"),)))
    searcher.close()
    assert japanese.answer == NOT_FOUND["ja"], japanese  # "not found" in the language of the question asked


# ---- the real server: sentence reader and the bundled SmolLM2 generator ---------------------

@pytest.mark.slow
def test_real_server_streams_a_smollm2_answer_whose_citations_resolve(live_server: RunningServer) -> None:
    url = live_server.url
    quick = httpx.post(f"{url}/ask", json={"question": "What kind of function is BM25?", "mode": "extractive"},
                       timeout=60).json()
    assert quick["reader"] == "sentence" and quick["answer_found"]
    assert httpx.get(f"{url}/health", timeout=30).json()["models"]["generator"]["name"] == "smollm2-135m-instruct"

    events: list[tuple[str, dict]] = []
    payload = {"question": "What is BM25 used for?", "mode": "generative", "max_tokens": 48, "stream": True}
    with httpx.stream("POST", f"{url}/ask", json=payload, timeout=600) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            *blocks, buffer = re.split(r"\r?\n\r?\n", buffer)
            events += [e for block in blocks for e in sse_events(block)]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and kinds.count("token") >= 2, events
    done = events[-1][1]
    assert done["mode"] == "generative" and done["reader"] == "generator:smollm2-135m-instruct"
    assert done["answer"] and done["answer"] == "".join(e["text"] for k, e in events if k == "token").strip()
    usage = done["usage"]
    assert usage["prompt_tokens"] > 100 and 2 <= usage["completion_tokens"] <= 48, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert quick["usage"] is None  # an extracted answer: no model wrote it
    shown = {p["n"]: p for p in done["citations"] + done["uncited"]}
    assert shown and set(cited_numbers(done["answer"])) == {c["n"] for c in done["citations"]}
    assert set(cited_numbers(done["answer"])) <= set(shown)
    for passage in shown.values():
        text = document_text(None, passage["doc_id"], url)
        assert text[passage["start"] : passage["end"]] == passage["text"]
    assert httpx.get(f"{url}/health", timeout=30).json()["models"]["generator"]["loaded"] is True


# ---- the command line -----------------------------------------------------------------------

def test_cli_ask_prints_the_answer_and_its_source(corpus_index: IndexDirectory) -> None:
    result = subprocess.run(
        yomitoki("ask", "What kind of function is BM25?", "--index", str(corpus_index.path),
                 "--mode", "extractive", "--json"),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["answer_found"] and "ranking function" in body["answer"]
    assert body["citations"][0]["source"] == "en-bm25.md"
    plain = subprocess.run(
        yomitoki("ask", "What kind of function is BM25?", "--index", str(corpus_index.path),
                 "--mode", "extractive", "--generator", "none"),
        capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and "ranking function" in plain.stdout and "en-bm25.md" in plain.stdout


def test_cli_ask_refuses_generative_without_a_generator(corpus_index: IndexDirectory) -> None:
    result = subprocess.run(
        yomitoki("ask", "What is BM25?", "--index", str(corpus_index.path), "--mode", "generative",
                 "--generator", "none"),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--mode generative needs a generator" in result.stderr, result.stderr


@pytest.mark.parametrize("text,looping", [
    ("Extractive Question Answering: Extractive Question Answering: Extractive Question Answering:", True),
    ("半角のｶﾞは…！！！！！！！！！！！！", False),  # punctuation alone is formatting (|---|---|---|, ----)
    ("| a | b | c | d |\n|---|---|---|---|", False),
    ("ですですですですですですですですですですですです", True),
    ("NFC is a combination of Unicode Normalization Forms, which is a combination of Unicode "
     "Normalization Forms, which is a combination of Unicode Normalization Forms,", False),  # two whole copies
    ("no, no, no", False),
    ("ままま", False),
    ("The checklist includes checking the parameter count, checking the parameter count, and checking "
     "the parameter count.", False),  # repeated, not in a row
    ("固有表現の先頭トークンに B-種類、同じ表現の2番目以降のトークンに I-種類 を付けます。", False),
])
def test_a_loop_is_a_block_repeated_three_times_at_the_end(text: str, looping: bool) -> None:
    assert loops(text) is looping


def test_a_generator_that_falls_into_a_loop_is_stopped_after_three_copies(live_server: RunningServer) -> None:
    """SmolLM2 (greedy) repeats "which is a combination of Unicode Normalization Forms," to the token limit."""
    body = httpx.post(f"{live_server.url}/ask", json={"question": "What is NFKD?", "mode": "generative",
                                                      "max_tokens": 256}, timeout=600).json()
    answer = body["answer"]
    assert body["mode"] == "generative" and loops(answer), f"the premise: SmolLM2 loops here ({answer!r})"
    assert not loops(answer, repeats=4), answer

