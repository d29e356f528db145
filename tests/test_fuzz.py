"""Property-based fuzzing of every endpoint from the server's own OpenAPI schema (schemathesis).

The operations are read from /schema/openapi.json of a real server process
when the test runs, so endpoints added later are fuzzed too. Each operation
gets valid (positive) and invalid (negative) cases, a share of the total case
count and of the time budget; every response must be below 500 and match the
schema documented for its status code.

YOMITOKI_FUZZ_CASES (default 3000) and YOMITOKI_FUZZ_SECONDS (default 100) size the run.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from indexer.embed.base import Embedder
from indexer.embed.locations import locate_embedder
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import MODEL, RunningServer, build, start_server

CASES = int(os.environ.get("YOMITOKI_FUZZ_CASES", "3000"))
SECONDS = float(os.environ.get("YOMITOKI_FUZZ_SECONDS", "100"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def tiny_generator(path: Path) -> Path:
    """A one-layer random-weight Llama, so generative answers are real and fast to fuzz."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(locate_embedder(MODEL).path))
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=4096)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
                keywords: KeywordTokenizer) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "corpus").mkdir()
    docs = {
        "tokenizers.md": "---\ntags: nlp, tokens\n---\n# Tokenizers\n\nWordPiece splits words into subword "
                         "pieces. SentencePiece works on raw text.\n",
        "fusion.md": "# Fusion\n\nReciprocal rank fusion merges dense and keyword rankings into one list.\n",
        "tokyo.md": "# 東京\n\n東京と銀座の検索について書いた文書です。銀座は東京にあります。\n",
    }
    for name, text in docs.items():
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    build(root / "corpus", root / "index", embedder, keywords)
    # A tiny generator: the bundled one takes seconds per answer (minutes while it loads), which would
    # spend the whole budget on a few /ask cases.
    generator = tiny_generator(root / "generator")
    server = start_server(root / "index", root / "server.log", "--threads", "1", "--generator", str(generator))
    yield server
    server.stop()


# A 503 that is the documented answer, not a failure: this server has no English entity model, and /entities
# answers English text (or a language without a model) with 503 saying how to configure one.
DOCUMENTED_503 = {"/entities"}


class Tally:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.unsatisfiable: list[str] = []

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def fuzz_operation(operation: schemathesis.APIOperation, url: str, session: requests.Session, tally: Tally,
                   examples: int, deadline: float) -> None:
    for mode in MODES:
        try:
            fuzz_mode(operation, mode, url, session, tally, examples, deadline)
        except Unsatisfiable:  # nothing to make invalid (e.g. no parameters): no negative cases
            tally.unsatisfiable.append(f"{operation.label} ({mode.value})")


def fuzz_mode(operation: schemathesis.APIOperation, mode: GenerationMode, url: str, session: requests.Session,
              tally: Tally, examples: int, deadline: float) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    def run(case: schemathesis.Case) -> None:
        if time.monotonic() > deadline:
            return
        tally.calls[operation.label] += 1
        try:
            response = case.call(base_url=url, session=session, timeout=60)
        except requests.RequestException as exc:
            tally.failures.append(f"{operation.label} ({mode.value}): no response: {exc}\n  {case.as_curl_command()}")
            return
        tally.statuses[response.status_code] += 1
        checks = [not_a_server_error, response_schema_conformance]
        if response.status_code == 503 and operation.path in DOCUMENTED_503:
            assert "--ner-model" in response.json()["detail"], response.text  # says how to configure one
            checks = [response_schema_conformance]
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports failures as a group
            if len(tally.failures) < 50:
                tally.failures.append(f"{operation.label} ({mode.value}) -> {response.status_code}: "
                                      f"{str(exc)[:600]}\n  {case.as_curl_command()[:600]}")

    run()


def test_every_endpoint_survives_fuzzing(fuzz_server: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 3
    examples = math.ceil(CASES / len(operations) / len(MODES))
    tally = Tally()
    started = time.monotonic()
    passes = 0
    with requests.Session() as session:  # passes until CASES requests or the time is up
        while tally.total < CASES and time.monotonic() - started < 0.9 * SECONDS:
            passes += 1
            for number, operation in enumerate(operations):
                share = (SECONDS - (time.monotonic() - started)) / (len(operations) - number)
                fuzz_operation(operation, fuzz_server.url, session, tally, examples, time.monotonic() + share)
    total, errors = tally.total, sum(n for s, n in tally.statuses.items() if s >= 500)
    print(f"\nfuzz: {total} cases over {len(operations)} operations in {passes} passes, "
          f"{time.monotonic() - started:.0f}s, {errors} 5xx; statuses {dict(sorted(tally.statuses.items()))}")
    for label, count in sorted(tally.calls.items()):
        print(f"  {count:5d}  {label}")
    assert tally.failures == [], "\n".join(tally.failures)
    assert set(tally.calls) == {operation.label for operation in operations}  # every endpoint was reached
    assert total >= min(CASES, 1000)
