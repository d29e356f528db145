"""`POST /classify` up the ladder (zero-shot, few-shot, named, fine-tuned), `/classifiers`, and the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from indexer.embed.base import Embedder
from indexer.embed.loading import load_embedder
from indexer.errors import NotFoundError
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from server.app import create_app
from server.nlp.classifiers import ClassifierStore, train_classifier
from server.nlp.errors import TaskInputError
from server.nlp.few_shot import Example, TrainOptions, train_linear
from server.nlp.ladder import Backends, ClassifyJob, classify
from server.nlp.zero_shot import LabelSpec, ZeroShotOptions
from server.settings import ServerSettings
from tests.conftest import build, yomitoki
from tests.task_models import save_tiny_classifier, tiny_index

TOPICS = ["sports", "cooking", "finance"]
SPORTS = ["The striker scored twice in the final.", "The team won the championship game.",
          "She ran the marathon in record time.", "The goalkeeper saved a penalty.",
          "The tennis match went to five sets.", "He hit a home run in the ninth inning."]
COOKING = ["Simmer the sauce for ten minutes.", "Knead the dough and let it rise.",
           "Add salt and pepper to the soup.", "Bake the cake at 180 degrees.",
           "Chop the onions and fry them in butter.", "Whisk the eggs with sugar."]
EXAMPLES = [{"text": t, "label": "sports"} for t in SPORTS] + [{"text": t, "label": "cooking"} for t in COOKING]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, keywords: KeywordTokenizer) -> IndexDirectory:
    return tiny_index(tmp_path_factory.mktemp("classify"), embedder, keywords)


@pytest.fixture(scope="module")
def client(index: IndexDirectory) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        yield client


def error_text(response: Any) -> str:
    body = response.json()
    return " ".join([body["detail"], *(f"{e.get('key')} {e.get('message')}" for e in body.get("extra", []))])


def test_zero_shot_picks_the_right_topic_with_calibrated_scores(client: TestClient) -> None:
    texts = ["The striker scored a goal in the last minute.", "Stir the risotto and add parmesan.",
             "The central bank raised interest rates."]
    response = client.post("/classify", json={"texts": texts, "labels": TOPICS, "template": "This text is about {}."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "zero-shot" and body["model"] == "all-minilm-l6-v2"
    assert [r["label"] for r in body["results"]] == ["sports", "cooking", "finance"]
    for result in body["results"]:
        scores = [s["score"] for s in result["scores"]]
        assert sorted(scores, reverse=True) == scores and sum(scores) == pytest.approx(1.0, abs=1e-4)
        assert {s["label"] for s in result["scores"]} == set(TOPICS) and "cosine" in result["scores"][0]


def test_zero_shot_label_descriptions_and_per_label_templates(client: TestClient) -> None:
    labels = [{"name": "positive", "description": "a glowing, happy review"},
              {"name": "negative", "description": "an angry, disappointed review", "template": "This is {}."}]
    body = client.post("/classify", json={"texts": ["I loved every minute, wonderful!"], "labels": labels}).json()
    assert body["results"][0]["label"] == "positive"


def test_zero_shot_multi_label_scores_each_label_on_its_own(client: TestClient) -> None:
    body = client.post("/classify", json={
        "texts": ["The chef cooked a feast for the football team after the match."],
        "labels": TOPICS, "multi_label": True, "template": "This text is about {}."}).json()
    result = body["results"][0]
    assert body["multi_label"] is True
    assert sum(s["score"] for s in result["scores"]) != pytest.approx(1.0, abs=0.05)
    assert result["predicted"] == [s["label"] for s in result["scores"] if s["score"] >= 0.5]
    assert "cooking" in result["predicted"] and "finance" not in result["predicted"]
    # each label's own threshold, read off the model: MiniLM puts unrelated sentences near 0.0-0.2
    assert all(0 < s["threshold"] < 0.3 for s in result["scores"])


def test_few_shot_learns_from_inline_examples(client: TestClient) -> None:
    texts = ["The referee showed a red card.", "Fry the garlic until golden."]
    body = client.post("/classify", json={"texts": texts, "examples": EXAMPLES, "top_k": 1}).json()
    assert body["method"] == "few-shot"
    assert [r["label"] for r in body["results"]] == ["sports", "cooking"]
    assert all(len(r["scores"]) == 1 for r in body["results"])


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"texts": ["x"], "labels": []}, "labels"),
        ({"texts": ["x"], "labels": ["only"]}, "labels"),
        ({"texts": ["x"], "labels": ["a", "a"]}, "labels[1]"),
        ({"texts": ["x"], "labels": ["a", ""]}, "labels[1]"),
        ({"texts": ["x"], "labels": ["a", "b"], "template": "no placeholder"}, "template"),
        ({"texts": ["x"], "labels": ["a", {"name": "b", "template": "{} and {}"}]}, "labels[1].template"),
        ({"texts": ["x"], "labels": ["a", "b"], "examples": EXAMPLES}, "examples"),
        ({"texts": ["x"]}, "labels"),
        ({"texts": [], "labels": ["a", "b"]}, "texts"),
        ({"texts": ["x"] * 257, "labels": ["a", "b"]}, "texts"),
        ({"texts": ["x"], "examples": EXAMPLES[:6]}, "examples"),
        ({"texts": ["x"], "examples": EXAMPLES, "multi_label": True}, "multi_label"),
        ({"texts": ["x"], "labels": ["a", "b"], "method": "few-shot"}, "method"),
        ({"texts": ["x"], "method": "fine-tuned"}, "method"),
        ({"texts": ["x"], "labels": ["a", "b"], "temperature": 0}, "temperature"),
        ({"texts": ["x"], "classifier": "bad name!"}, "classifier"),
        ({"texts": ["x"], "labels": ["sports", "ｓｐｏｒｔｓ"]}, "labels[1]"),  # the same once NFKC-normalized
        ({"texts": ["x"], "labels": ["a", "a\u0000"]}, "labels[1]"),
        ({"texts": ["b"], "examples": [*EXAMPLES, {"text": "b", "label": "sports\u0000"}]}, "examples[12].label"),
        ({"texts": ["b"], "examples": [*EXAMPLES, {"text": "b", "label": "ｓｐｏｒｔｓ"}]}, "examples[12].label"),
    ],
)
def test_bad_classify_requests_are_400_naming_the_field(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/classify", json=payload)
    assert response.status_code == 400, response.text
    assert field in error_text(response)


def test_named_classifier_lifecycle(client: TestClient) -> None:
    created = client.post("/classifiers", json={"name": "topics", "examples": EXAMPLES, "description": "demo"})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["labels"] == ["cooking", "sports"] and info["examples"] == 12
    assert info["embedding_model"] == "all-minilm-l6-v2" and info["embedding_revision"]
    assert info["metrics"]["test_examples"] >= 2 and 0 <= info["metrics"]["accuracy"] <= 1  # 6 per label: held out
    assert [c["name"] for c in client.get("/classifiers").json()["classifiers"]] == ["topics"]
    assert client.get("/classifiers/topics").json()["created"] == info["created"]
    body = client.post("/classify", json={"texts": ["A last-minute winning goal."], "classifier": "topics"}).json()
    assert body["method"] == "classifier" and body["classifier"] == "topics"
    assert body["results"][0]["label"] == "sports"
    taken = client.post("/classifiers", json={"name": "topics", "examples": EXAMPLES})
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    few = client.post("/classifiers", json={"name": "topics", "examples": EXAMPLES[4:8], "replace": True})
    assert few.status_code == 201 and few.json()["metrics"] is None  # 2 per label: too few to hold out
    assert client.delete("/classifiers/topics").status_code == 204
    assert client.get("/classifiers/topics").status_code == 404
    assert client.delete("/classifiers/topics").status_code == 404
    bad = "/classifiers/bad name!"
    assert client.get(bad).status_code == client.delete(bad).status_code == 400
    missing = client.post("/classify", json={"texts": ["x"], "classifier": "topics"})
    assert missing.status_code == 404 and "topics" in missing.json()["detail"]


def test_copies_of_examples_are_not_held_out_to_measure_the_classifier(client: TestClient) -> None:
    copies = [{"text": "same", "label": "pos"}, {"text": "other", "label": "neg"}] * 5
    created = client.post("/classifiers", json={"name": "copies", "examples": copies})
    assert created.status_code == 201 and created.json()["metrics"] is None, created.text  # 1 example per label
    assert client.delete("/classifiers/copies").status_code == 204


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"name": "one", "examples": EXAMPLES[:6]}, "examples"),
        ({"name": "none", "examples": []}, "examples"),
        ({"name": "-bad", "examples": EXAMPLES}, "name"),
        ({"name": "x" * 65, "examples": EXAMPLES}, "name"),
        ({"examples": EXAMPLES}, "name"),
        ({"name": "nul", "examples": [*EXAMPLES[:6], *({**e, "label": "y\u0000"} for e in EXAMPLES[6:])]},
         "examples[6].label"),
    ],
)
def test_bad_classifier_definitions_are_400(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/classifiers", json=payload)
    assert response.status_code == 400, response.text
    assert field in error_text(response)


def test_classifiers_survive_reindexing(tmp_path: Path, embedder: Embedder, keywords: KeywordTokenizer) -> None:
    index = tiny_index(tmp_path, embedder, keywords)
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        assert client.post("/classifiers", json={"name": "kept", "examples": EXAMPLES}).status_code == 201
    first = index.current_name()
    (tmp_path / "corpus" / "more.md").write_text("# More\n\nA third document.\n", encoding="utf-8")
    build(tmp_path / "corpus", index.path, embedder, keywords, rebuild=True)
    assert index.current_name() != first and (index.path / "classifiers.sqlite").exists()
    with TestClient(create_app(ServerSettings(index_dir=index.path, generator=None))) as client:
        body = client.post("/classify", json={"texts": ["Whisk the cream."], "classifier": "kept"}).json()
        assert body["results"][0]["label"] == "cooking"


def test_a_classifier_trained_with_another_model_is_refused(client: TestClient, index: IndexDirectory) -> None:
    other = load_embedder("use-multilingual-v3")
    examples = [Example(e["text"], e["label"]) for e in EXAMPLES]
    ClassifierStore.for_index(index.path).save(train_classifier(other, "multilingual", examples), replace=True)
    response = client.post("/classify", json={"texts": ["x"], "classifier": "multilingual"})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "use-multilingual-v3" in detail and "all-minilm-l6-v2" in detail
    assert client.delete("/classifiers/multilingual").status_code == 204


@pytest.mark.parametrize("classes", [["a", "b"], ["a", "b", "c"]])
def test_stored_weights_reproduce_scikit_learn(classes: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8))
    labels = [classes[i % len(classes)] for i in range(60)]
    ours = train_linear(vectors, labels, TrainOptions(c=1.0))
    reference = LogisticRegression(C=1.0, max_iter=1000, random_state=42).fit(vectors, labels)
    assert ours.classes == tuple(reference.classes_)
    assert ours.probabilities(vectors) == pytest.approx(reference.predict_proba(vectors), abs=1e-9)


def test_fine_tuned_model_labels_come_from_its_config(index: IndexDirectory, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = save_tiny_classifier(tmp_path / "tiny-clf", ["spam", "ham", "eggs"])
    settings = ServerSettings(index_dir=index.path, generator=None, classifier_model=str(folder))
    with TestClient(create_app(settings)) as client:
        body = client.post("/classify", json={"texts": ["Buy cheap watches now", "ｶﾞｲﾄﾞ"]}).json()
    assert body["method"] == "fine-tuned" and body["model"] == str(folder.resolve())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(["Buy cheap watches now", "ガイド"], padding=True, return_tensors="pt")).logits
    expected = torch.softmax(logits, dim=-1).numpy()
    for result, row in zip(body["results"], expected, strict=True):
        assert {s["label"] for s in result["scores"]} == {"spam", "ham", "eggs"}
        by_label = {s["label"]: s["score"] for s in result["scores"]}
        assert [by_label[label] for label in ("spam", "ham", "eggs")] == pytest.approx(row.tolist(), abs=1e-5)


def test_a_multi_label_fine_tuned_model_gives_independent_scores(index: IndexDirectory, tmp_path: Path) -> None:
    folder = save_tiny_classifier(tmp_path / "tags", ["news", "sport", "food"],
                                  problem_type="multi_label_classification")
    settings = ServerSettings(index_dir=index.path, generator=None, classifier_model=str(folder))
    with TestClient(create_app(settings)) as client:
        body = client.post("/classify", json={"texts": ["hello"]}).json()
    assert body["multi_label"] is True
    assert sum(s["score"] for s in body["results"][0]["scores"]) != pytest.approx(1.0, abs=1e-3)


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(yomitoki("classify", *args), capture_output=True, text=True, input=stdin, timeout=300)


def test_cli_zero_shot_few_shot_and_named(index: IndexDirectory, tmp_path: Path, embedder: Embedder) -> None:
    zero = run_cli("The goalkeeper saved a penalty.", "--label", "sports", "--label", "cooking=recipes and food",
                   "--template", "This text is about {}.", "--json")
    assert zero.returncode == 0, zero.stderr
    assert json.loads(zero.stdout)["results"][0]["label"] == "sports"
    examples = tmp_path / "examples.tsv"
    examples.write_text("".join(f"{e['text']}\t{e['label']}\n" for e in EXAMPLES), encoding="utf-8")
    few = run_cli("--examples", str(examples), "--json", stdin="Grate the cheese.\nA hat-trick in the derby.\n")
    assert few.returncode == 0, few.stderr
    assert [r["label"] for r in json.loads(few.stdout)["results"]] == ["cooking", "sports"]
    ClassifierStore.for_index(index.path).save(
        train_classifier(embedder, "cli-topics", [Example(e["text"], e["label"]) for e in EXAMPLES]), replace=True)
    named = run_cli("Roast the vegetables.", "--classifier", "cli-topics", "--index", str(index.path))
    assert named.returncode == 0, named.stderr
    assert "cooking" in named.stdout


@pytest.mark.parametrize(
    "args,message,code",
    [
        (("x", "--label", "only"), "at least 2 labels", 2),  # bad input: 2, as for a wrong option
        (("x",), "give labels", 2),
        (("x", "--label", "=説明", "--label", "b"), "has no name", 2),
        (("x", "--classifier", "nope"), "no classifier named 'nope'", 1),
    ],
)
def test_cli_errors_exit_with_their_code_and_the_reason(index: IndexDirectory, args: tuple[str, ...], message: str,
                                                        code: int) -> None:
    result = run_cli(*args, "--index", str(index.path))
    assert result.returncode == code, result.stdout
    assert message in result.stderr


@pytest.mark.parametrize(
    "job,field",
    [
        (ClassifyJob(texts=["x"], labels=[LabelSpec("only")]), "labels"),
        (ClassifyJob(texts=["x"], labels=[LabelSpec("a"), LabelSpec("b")], zero_shot=ZeroShotOptions("no brace")),
         "template"),
        (ClassifyJob(texts=["x"], examples=[Example("a", "one"), Example("b", "one")]), "examples"),
    ],
)
def test_a_wrong_job_is_refused_before_the_model_loads(index: IndexDirectory, job: ClassifyJob, field: str) -> None:
    """The command line loads the model only for a job that can run: a typo costs no model load."""
    def load() -> Embedder:
        raise AssertionError("the embedding model was loaded for a job that cannot run")

    with pytest.raises(TaskInputError) as refused:
        classify(job, Backends(embedder=load, store=ClassifierStore.for_index(index.path)))
    assert refused.value.field == field


def test_an_unknown_classifier_is_refused_before_the_model_loads(index: IndexDirectory) -> None:
    def load() -> Embedder:
        raise AssertionError("the embedding model was loaded for a classifier that does not exist")

    with pytest.raises(NotFoundError, match="no classifier named 'nope'"):
        classify(ClassifyJob(texts=["x"], classifier="nope"),
                 Backends(embedder=load, store=ClassifierStore.for_index(index.path)))
