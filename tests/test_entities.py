"""Named entities: offsets into the original text, IOB2, mappings, training data, fine-tuning, HTTP, the index."""

from __future__ import annotations

import json
import random
import subprocess
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from indexer.build.builder import BuildOptions, IndexBuilder
from indexer.embed.base import Embedder
from indexer.embed.locations import locate_embedder
from indexer.ner.entities import extract
from indexer.ner.index_entities import ChunkEntities
from indexer.ner.mapping import MappingError, load_mapping, mapping_from_table
from indexer.ner.named import EntityModelStore
from indexer.ner.pipelines import SpacyEntityModel, load_entity_model
from indexer.ner.training import TrainingDataError, TrainOptions, fine_tune, parse_example, parse_examples
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import EntityFilterError, Filters
from indexer.store.where import parse
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.auth import ApiKey, digest
from server.settings import ServerSettings
from tests.conftest import RunningServer, yomitoki
from tests.task_models import tiny_index

MAPPING_FILE = Path(__file__).parents[1] / "indexer" / "ner" / "mappings" / "ginza-ner-wikipedia-ja.json"
SENTENCES = [
    "2024年4月に山田太郎はトヨタ自動車株式会社の東京本社を訪れた。",
    "佐藤花子さんはソニーグループで働いており、大阪に住んでいる。",
    "ABC商事は2023年にニューヨークで新しいオフィスを開いた。",
    "鈴木一郎はカリフォルニア大学で学び、パナソニックに入社した。",
]


@pytest.fixture(scope="module")
def ginza() -> SpacyEntityModel:
    model = load_entity_model("ja_ginza")
    assert isinstance(model, SpacyEntityModel)
    return model


def _half_width_table() -> dict[str, str]:
    """Full-width katakana → half-width forms (voiced ones as two characters), from NFKC itself."""
    table: dict[str, str] = {}
    halves = [chr(cp) for cp in range(0xFF66, 0xFF9E)]
    for half in halves:
        table.setdefault(unicodedata.normalize("NFKC", half), half)
        for mark in "ﾞﾟ":
            composed = unicodedata.normalize("NFKC", half + mark)
            if len(composed) == 1:
                table.setdefault(composed, half + mark)
    return table


HALF_WIDTH = _half_width_table()


def variants(text: str, rng: random.Random) -> list[str]:
    """Forms NFKC maps back to `text` (or near it): half-width katakana, ㈱, full-width letters and digits."""
    half = "".join(HALF_WIDTH.get(ch, ch) for ch in text)
    kabu = text.replace("株式会社", "㈱").replace("グループ", "ｸﾞﾙｰﾌﾟ")
    wide = "".join(chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in text)
    mixed = "".join(rng.choice([ch, HALF_WIDTH.get(ch, ch), chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum()
                                else ch]) for ch in text)
    return [text, half, kabu, wide, mixed]


def test_every_span_slices_the_original_text_over_nfkc_variants(ginza: SpacyEntityModel) -> None:
    rng = random.Random(18)
    texts = [v for sentence in SENTENCES for v in variants(sentence, rng)]
    assert any(unicodedata.normalize("NFKC", t) != t for t in texts)
    results = extract(ginza, texts, iob2=True)
    found = 0
    for text, result in zip(texts, results, strict=True):
        for entity in result.entities:
            assert text[entity.start : entity.end] == entity.text, (text, entity)
            found += 1
        assert result.tokens is not None
        for token in result.tokens:
            assert text[token.start : token.end] == token.text, (text, token)
    assert found >= len(texts)  # GiNZA finds entities in every sentence; the check above is not vacuous
    half = results[1]  # 山田太郎 / ﾄﾖﾀ自動車 in half-width katakana still come back as they are written
    assert any(e.type == "Person" and e.text == "山田太郎" for e in half.entities)
    assert any(e.text.startswith("ﾄﾖﾀ") for e in half.entities), half.entities


def test_iob2_tags_start_with_b_and_continue_with_i(ginza: SpacyEntityModel) -> None:
    [result] = extract(ginza, ["山田太郎はトヨタ自動車に入った。"], iob2=True)
    assert result.tokens is not None
    tags = [(t.text, t.tag) for t in result.tokens]
    assert ("山田", "B-Person") in tags and ("太郎", "I-Person") in tags
    previous = "O"
    for _, tag in tags:
        if tag.startswith("I-"):
            assert previous[2:] == tag[2:] and previous != "O"
        previous = tag


def test_bundled_mapping_reports_the_callers_types(ginza: SpacyEntityModel) -> None:
    mapping = load_mapping("ginza-ner-wikipedia-ja")
    mapping.check_model(ginza.labels, ginza.name)
    assert set(mapping.labels) == {"人名", "法人名", "政治的組織名", "その他の組織名", "地名", "施設名", "製品名",
                                   "イベント名"}
    [result] = extract(ginza, [SENTENCES[0]], iob2=True, mapping=mapping)
    mapped = {e.text: e.mapped_type for e in result.entities}
    assert mapped["山田太郎"] == "人名" and mapped["2024年4月"] is None
    assert result.tokens is not None and ("山田", "B-人名") in [(t.text, t.mapped_tag) for t in result.tokens]


def test_mapping_with_unknown_types_or_labels_is_refused(ginza: SpacyEntityModel, tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="Persn"):
        mapping_from_table("typo", {"Persn": "人名"}).check_model(ginza.labels, ginza.name)
    with pytest.raises(MappingError, match="会社"):
        mapping_from_table("stray", {"Company": "会社"}, labels=["人名"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"types": ["Person"]}', encoding="utf-8")
    with pytest.raises(MappingError, match=r"bad\.json"):
        load_mapping(str(bad))
    with pytest.raises(MappingError, match="ginza-ner-wikipedia-ja"):
        load_mapping("no-such-mapping")


@pytest.mark.parametrize(("row", "message"), [
    ({"tokens": ["山田", "太郎"], "tags": ["O", "I-人名"]}, "I-人名 after O"),
    ({"tokens": ["山田", "太郎"], "tags": ["B-地名", "I-人名"]}, "I-人名 after B-地名"),
    ({"tokens": ["山田"], "tags": ["I-人名"]}, "after the start"),
    ({"tokens": ["山田"], "tags": ["PER"]}, "IOB2 tags are"),
    ({"tokens": ["山田", "太郎"], "tags": ["O"]}, "same, non-zero length"),
    ({"text": "山田太郎", "entities": [{"start": 0, "end": 4, "type": "人名"},
                                   {"start": 2, "end": 4, "type": "人名"}]}, "overlap"),
    ({"text": "山田", "entities": [{"start": 0, "end": 9, "type": "人名"}]}, "not inside the text"),
    ({"text": "山田", "entities": [{"start": 0, "type": "人名"}]}, "integer start and end"),
    ({"text": " ", "entities": []}, "expected"),
])
def test_bad_training_examples_say_what_is_wrong(row: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingDataError, match=message) as error:
        parse_example(row, "examples[7]")
    assert "examples[7]" in str(error.value)



def test_a_span_that_cuts_a_token_is_refused_not_silently_dropped() -> None:
    # GiNZA reads 東京都庁 as one token: 東京 inside it could not be learned, and training would report success
    person = {"start": 0, "end": 2, "type": "人名"}
    place = {"start": 0, "end": 2, "type": "地名"}
    examples = [parse_example({"text": "山田は東京都庁で働く。", "entities": [person]}, "a"),
                parse_example({"text": "東京都庁で会った。", "entities": [place]}, "b")]
    refused = r"examples\[1\]: the 地名 span '東京' \(0-2\) cuts the token '東京都庁'"
    with pytest.raises(TrainingDataError, match=refused):
        fine_tune(examples, TrainOptions(epochs=1))

def test_iob2_and_span_examples_read_alike() -> None:
    spans = parse_example({"text": "山田太郎は東京へ", "entities": [{"span": [0, 4], "type": "人名"},
                                                               {"start": 5, "end": 7, "label": "地名"}]}, "a")
    tags = parse_example({"tokens": ["山田", "太郎", "は", "東京", "へ"],
                          "tags": ["B-人名", "I-人名", "O", "B-地名", "O"]}, "b")
    assert spans == tags
    english = parse_example({"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]}, "c")
    assert english.text == "John lives in Paris" and english.entities == ((0, 4, "PER"), (14, 19, "LOC"))
    with pytest.raises(TrainingDataError, match="no example has an entity"):
        parse_examples([{"text": "何もない", "entities": []}])


PEOPLE = ["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林", "加藤", "吉田", "山口"]
FIRMS = ["ミドリ電機", "アオバ工業", "ソラ食品", "ホシ化学", "ウミ運輸", "カゼ製薬"]


def firm_examples(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        firm = FIRMS[i % len(FIRMS)]
        text = f"{PEOPLE[i % len(PEOPLE)]}さんは{firm}に勤めている。"
        rows.append({"text": text, "entities": [{"start": text.index(firm), "end": text.index(firm) + len(firm),
                                                 "type": "会社"}]})
    return rows


def test_fine_tuning_learns_new_types_and_is_stored_beside_the_index(tmp_path: Path) -> None:
    examples = parse_examples(firm_examples(60))
    trained = fine_tune(examples, TrainOptions(epochs=4, seed=1))
    assert trained.labels == ("会社",) and (trained.trained_on, trained.held_out) == (48, 12)
    assert trained.metrics is not None and trained.metrics.f1 >= 0.8, trained.metrics
    store = EntityModelStore.for_index(tmp_path / "index")
    info = store.save("firms", trained, description="会社名")
    assert info.labels == ["会社"] and info.metrics is not None and info.trained_on == 48
    loaded = store.load("firms")
    [result] = extract(loaded, ["高橋さんはｿﾗ食品に勤めている。"])
    assert [(e.type, e.text) for e in result.entities] == [("会社", "ｿﾗ食品")]
    assert [m.name for m in store.entries()] == ["firms"]


# ---- HTTP -----------------------------------------------------------------------------------------------



def test_ginza_answers_concurrent_requests(ginza: SpacyEntityModel) -> None:
    """The server runs requests in a thread pool; GiNZA's tokenizer fails two calls at once ("Already borrowed")."""
    text = "2024年4月に山田太郎はﾄﾖﾀ自動車㈱の東京本社を訪れた。"
    expected = ginza.analyse([text] * 4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: ginza.analyse([text] * 4), range(24)))
    assert all(result == expected for result in results)

@pytest.fixture(scope="module")
def entity_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                 keywords: KeywordTokenizer) -> IndexDirectory:
    return tiny_index(tmp_path_factory.mktemp("entities"), embedder, keywords)


def save_tiny_token_classifier(folder: Path, labels: list[str]) -> Path:
    """A randomly initialised 2-layer BERT token classifier (IOB2 labels) with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    tokenizer = AutoTokenizer.from_pretrained(locate_embedder("all-minilm-l6-v2").path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={label: i for i, label in enumerate(labels)})
    BertForTokenClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_model_that_does_not_tag_iob2_is_refused_as_an_entity_model_and_the_other_way(tmp_path: Path) -> None:
    """Given the wrong kind of model, transformers would put an untrained head on it and answer nonsense."""
    from indexer.ner.pipelines import EntityModelLoadError
    from server.nlp.finetuned import ClassifierLoadError, load_finetuned
    from tests.task_models import save_tiny_classifier

    classifier = save_tiny_classifier(tmp_path / "clf", ["spam", "ham"])
    with pytest.raises(EntityModelLoadError, match="not a token-classification model"):
        load_entity_model(str(classifier))
    not_iob2 = save_tiny_token_classifier(tmp_path / "tags", ["spam", "ham", "eggs"])
    with pytest.raises(EntityModelLoadError, match=r"not IOB2 \(spam, ham, eggs\)"):
        load_entity_model(str(not_iob2))
    tagger = save_tiny_token_classifier(tmp_path / "ner", ["O", "B-PER", "I-PER"])
    assert load_entity_model(str(tagger)).labels == ("PER",)
    with pytest.raises(ClassifierLoadError, match="not a sequence-classification model"):
        load_finetuned(str(tagger))


@pytest.fixture(scope="module")
def client(entity_index: IndexDirectory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("ner-models")
    english = save_tiny_token_classifier(folder / "en", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    settings = ServerSettings(index_dir=entity_index.path, generator=None,
                              ner_models=(("en", str(english)), ("ko", str(folder / "missing"))))
    with TestClient(create_app(settings)) as client:
        yield client


def detail(response: Any) -> str:
    body = response.json()
    return " ".join([body["detail"], *(f"{e.get('key')} {e.get('message')}" for e in body.get("extra", []))])


def test_entities_spans_and_iob2_over_http(client: TestClient) -> None:
    text = "山田太郎はﾄﾖﾀ自動車㈱のＡＢＣ部門に移った。"
    spans = client.post("/entities", json={"texts": [text], "mapping": "ginza-ner-wikipedia-ja"})
    assert spans.status_code == 200, spans.text
    body = spans.json()
    [result] = body["results"]
    assert result["model"] == "ja_ginza" and "tokens" not in result and body["mapping"] == "ginza-ner-wikipedia-ja"
    assert {"type": "Person", "text": "山田太郎", "start": 0, "end": 4, "mapped_type": "人名"} in result["entities"]
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    iob2 = client.post("/entities", json={"texts": [text], "format": "iob2"}).json()["results"][0]
    assert "".join(t["text"] for t in iob2["tokens"]) == text.replace(" ", "")
    assert [t["tag"] for t in iob2["tokens"]][:2] == ["B-Person", "I-Person"]


def test_transformers_model_answers_english_with_offsets(client: TestClient) -> None:
    text = "ＪＯＨＮ Smith moved to Paris in 2020."
    response = client.post("/entities", json={"texts": [text], "language": "en", "format": "iob2"})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["model"].endswith("/en")
    assert result["tokens"] and all(text[t["start"] : t["end"]] == t["text"] for t in result["tokens"])
    assert all(text[e["start"] : e["end"]] == e["text"] for e in result["entities"])
    assert all(t["tag"] == "O" or t["tag"][2:] in ("PER", "LOC") for t in result["tokens"])


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"texts": []}, 400, ["texts"]),
    ({"texts": [""]}, 400, ["texts"]),
    ({"texts": ["   "]}, 400, ["texts[0]", "empty"]),
    ({"texts": ["山田", "\u0000"]}, 400, ["texts[1]", "nothing to read"]),  # not a 503 for a missing model
    ({"texts": ["\u200b\u0301"]}, 400, ["texts[0]", "nothing to read"]),
    ({"texts": ["a"] * 65}, 400, ["texts", "64"]),
    ({"texts": ["あ" * 5001]}, 400, ["texts", "5000"]),
    ({"texts": ["\ufdfa" * 1000]}, 400, ["texts[0]", "18,000 characters once NFKC-normalized"]),
    ({"texts": ["山田"], "format": "bio"}, 400, ["format"]),
    ({"texts": ["山田"], "mapping": {"Persn": "人名"}}, 400, ["Persn"]),
    ({"texts": ["山田"], "mapping": "no-such-mapping"}, 400, ["no-such-mapping"]),
    ({"texts": ["山田"], "mapping": str(MAPPING_FILE)}, 400, ["no entity type mapping"]),  # no server files
    ({"texts": ["山田"], "model": "nobody"}, 404, ["nobody"]),
    ({"texts": ["山田"], "model": "../x"}, 400, ["model"]),
    ({"texts": ["Hello there"], "language": "fr"}, 503, ["--ner-model fr=PATH_OR_ID"]),
    ({"texts": ["안녕하세요 서울"], "language": "ko"}, 503, ["missing", "failed to load"]),
])
def test_bad_entity_requests_are_refused_with_the_reason(client: TestClient, body: dict[str, Any], status: int,
                                                         words: list[str]) -> None:
    response = client.post("/entities", json=body)
    assert response.status_code == status, response.text
    for word in words:
        assert word in detail(response), detail(response)


def test_search_keeps_working_after_a_model_fails(client: TestClient) -> None:
    assert client.post("/entities", json={"texts": ["x"], "language": "ko"}).status_code == 503
    assert client.get("/search", params={"q": "新幹線"}).status_code == 200
    models = {m["role"]: m for m in client.get("/models").json()["models"]}
    assert models["ner.ja"]["package"] == "ja-ginza" and models["ner.ja"]["source"] == "bundled"
    assert "missing" in (models["ner.ko"]["error"] or "")
    facets = client.get("/entities/facets")  # this index was built without --entities
    assert facets.status_code == 400 and "index --entities" in facets.json()["detail"]


def test_entity_models_over_http(client: TestClient) -> None:
    bad = client.post("/entity-models", json={"name": "firms", "examples": [
        {"tokens": ["山田", "さん"], "tags": ["I-人名", "O"]}]})
    assert bad.status_code == 400 and "examples[0]" in detail(bad) and "I-人名 after the start" in detail(bad)
    base = client.post("/entity-models", json={"name": "firms", "examples": firm_examples(2), "base": "no_such_nlp"})
    assert base.status_code == 400 and "base" in detail(base) and "no_such_nlp" in detail(base)
    made = client.post("/entity-models", json={"name": "firms", "examples": firm_examples(60), "epochs": 5,
                                                "holdout": 0})
    assert made.status_code == 201, made.text
    assert made.json()["labels"] == ["会社"] and made.json()["metrics"] is None  # nothing held out
    again = client.post("/entity-models", json={"name": "firms", "examples": firm_examples(20), "epochs": 1})
    assert again.status_code == 409
    assert [m["name"] for m in client.get("/entity-models").json()["models"]] == ["firms"]
    found = client.post("/entities", json={"texts": ["鈴木さんはウミ運輸に勤めている。"], "model": "firms"}).json()
    assert found["results"][0]["model"] == "firms"
    assert ("会社", "ウミ運輸") in [(e["type"], e["text"]) for e in found["results"][0]["entities"]]
    assert client.delete("/entity-models/firms").status_code == 204
    assert client.get("/entity-models/firms").status_code == 404


def test_entities_end_to_end_through_the_real_server(live_server: RunningServer) -> None:
    text = "ｿﾆｰの本社は東京にあり、佐藤花子が働いている。"
    response = httpx.post(f"{live_server.url}/entities", json={"texts": [text]}, timeout=120)
    assert response.status_code == 200, response.text
    entities = response.json()["results"][0]["entities"]
    types = {e["type"] for e in entities}
    assert "Person" in types and types & {"Province", "City"}, entities
    assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    english = httpx.post(f"{live_server.url}/entities", json={"texts": ["John lives in Paris."]}, timeout=60)
    assert english.status_code == 503 and "--ner-model en=" in english.json()["detail"]


def test_entities_command(tmp_path: Path) -> None:
    result = subprocess.run(yomitoki("entities", "--index", str(tmp_path / "index"), "--format", "iob2", "--json",
                                     "山田太郎は大阪へ行った。"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["results"]
    assert row["model"] == "ja_ginza" and [t["tag"] for t in row["tokens"]][:2] == ["B-Person", "I-Person"]


# ---- entities in the index ------------------------------------------------------------------------------


class CountingModel:
    """The real GiNZA model, counting the texts it is given (to see what a rebuild re-processes)."""

    def __init__(self, model: SpacyEntityModel) -> None:
        self.inner, self.name, self.location, self.texts = model, model.name, model.location, 0

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    def analyse(self, texts: Any) -> Any:
        self.texts += len(texts)
        return self.inner.analyse(texts)


def test_index_entities_are_stored_filtered_and_incremental(tmp_path: Path, ginza: SpacyEntityModel,
                                                           embedder: Embedder, keywords: KeywordTokenizer) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "yamada.md").write_text("# 訪問\n\n山田太郎はﾄﾖﾀ自動車の本社を訪れた。\n", encoding="utf-8")
    (corpus / "sato.md").write_text("# 出張\n\n佐藤花子は大阪の工場を訪れた。\n", encoding="utf-8")
    (corpus / "smith.md").write_text("# Visit\n\nJohn Smith visited the Toyota plant.\n", encoding="utf-8")
    directory = IndexDirectory(tmp_path / "index")
    counting = CountingModel(ginza)
    entities = ChunkEntities(counting, ("ja",))  # type: ignore[arg-type]
    report = IndexBuilder(directory, embedder, keywords, BuildOptions(), entities=entities).build(corpus)
    assert report.chunks_embedded == 3 and counting.texts == report.entity_chunks == 2  # GiNZA reads Japanese only
    assert report.entity_seconds > 0
    searcher = Searcher(directory.current(), embedder)
    try:
        hits = searcher.search("訪れた", mode="hybrid", k=5, filters=Filters(entities=(("Person", ("山田太郎",)),)))
        assert [h.source for h in hits] == ["yamada.md"]
        both = Filters(entities=(("Person", ("山田太郎", "佐藤花子")),))
        assert {h.source for h in searcher.search("訪れた", mode="keyword", k=5, filters=both)} == {"yamada.md",
                                                                                              "sato.md"}
        stored = searcher.store.chunk_entities([h.chunk_id for h in hits])
        assert stored[hits[0].chunk_id]["Person"] == ["山田太郎"]
        assert "トヨタ自動車" in stored[hits[0].chunk_id].get("Company", [])  # names are stored normalized
    finally:
        searcher.close()
    (corpus / "sato.md").write_text("# 出張\n\n佐藤花子は名古屋の工場を訪れた。\n", encoding="utf-8")
    again = IndexBuilder(directory, embedder, keywords, BuildOptions(), entities=entities).build(corpus)
    assert (again.unchanged, again.changed, counting.texts) == (2, 1, 3)  # only the changed document
    with TestClient(create_app(ServerSettings(index_dir=directory.path, generator=None))) as client:
        hits = client.get("/search", params={"q": "工場", "entity": "Person:佐藤花子"}).json()["hits"]
        assert [h["source"] for h in hits] == ["sato.md"]
        posted = client.post("/search", json={"query": "工場", "filters": {"entities": {"Person": ["山田太郎"]}}})
        assert [h["source"] for h in posted.json()["hits"]] == ["yamada.md"]
        assert client.get("/search", params={"q": "工場", "entity": "Person"}).status_code == 400
        facets = client.get("/entities/facets", params={"type": "Person"}).json()["facets"]
        assert {(f["text"], f["chunks"]) for f in facets} == {("山田太郎", 1), ("佐藤花子", 1)}
        # a document written over HTTP gets its entities as a build's documents do
        written = client.put("/documents/suzuki", json={"title": "来訪", "text": "鈴木一郎は京都の工場を訪れた。"})
        assert written.status_code == 200, written.text
        hits = client.get("/search", params={"q": "工場", "entity": "Person:鈴木一郎"}).json()["hits"]
        assert [h["key"] for h in hits] == ["suzuki"]
        assert client.delete("/documents/suzuki").status_code == 200
    # a key that sees yamada.md alone counts its entities only (server.access)
    restricted = ApiKey(digest("yamada-only-key"), "read", "yamada", parse({"field": "source", "eq": "yamada.md"}))
    settings = ServerSettings(index_dir=directory.path, generator=None, api_keys=(restricted,))
    with TestClient(create_app(settings)) as client:
        facets = client.get("/entities/facets", params={"type": "Person"},
                            headers={"X-API-Key": "yamada-only-key"}).json()["facets"]
        assert {(f["text"], f["chunks"]) for f in facets} == {("山田太郎", 1)}


def test_entity_filter_on_an_index_without_entities_says_so(searcher: Searcher) -> None:
    with pytest.raises(EntityFilterError, match="index --entities"):
        searcher.search("BM25", mode="keyword", k=3, filters=Filters(entities=(("Person", ("x",)),)))


def test_train_entities_command_reads_iob2_lines_and_stores_the_model(tmp_path: Path) -> None:
    rows = [{"tokens": [name, "さん", "は", firm, "に", "勤め", "て", "いる", "。"],
             "tags": ["O", "O", "O", "B-会社", "O", "O", "O", "O", "O"]}
            for name, firm in zip(PEOPLE, FIRMS * 2, strict=True)]
    examples = tmp_path / "firms.jsonl"
    examples.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    index = tmp_path / "index"
    result = subprocess.run(yomitoki("train-entities", str(examples), "--index", str(index), "--name", "firms",
                                     "--epochs", "1"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["name"], info["labels"], info["trained_on"], info["metrics"]) == ("firms", ["会社"], 12, None)
    assert EntityModelStore.for_index(index).exists("firms")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["山田", "太郎"], "tags": ["O", "I-人名"]}, ensure_ascii=False),
                   encoding="utf-8")
    refused = subprocess.run(yomitoki("train-entities", str(bad), "--index", str(index), "--name", "other"),
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "I-人名 after O" in refused.stderr and "bad.jsonl[0]" in refused.stderr
    for args in (("train-entities", str(examples), "--name", "../evil"), ("entities", "--mapping", "nope", "山田"),
                 ("entities", "   "), ("classify", "x", "--classifier", "../x")):  # bad input: 2, as a wrong option
        wrong = subprocess.run(yomitoki(*args, "--index", str(index)), capture_output=True, text=True, timeout=300)
        assert wrong.returncode == 2, (args, wrong.returncode, wrong.stderr)


def test_the_same_examples_and_seed_train_the_same_model() -> None:
    """spaCy's dropout draws from the global generators, which earlier work leaves anywhere."""
    import numpy as np

    weights = []
    for disturbance in (0, 1):
        np.random.seed(disturbance)
        random.seed(disturbance)
        trained = fine_tune(parse_examples(firm_examples(20)), TrainOptions(epochs=1, seed=3, holdout=0))
        weights.append(trained.model.nlp.get_pipe("ner").model.to_bytes())
    assert weights[0] == weights[1]
