"""A hub id that is not cached fails at once when the hub cannot be reached; a cached one loads offline.

transformers and sentence-transformers retry a hub they cannot reach for about
a minute before giving up on a model that is not in the cache, so a search with an
unreachable `--reranker` hung that long for its 503. The loaders now ask the hub
once first (`indexer.embed.locations.reach_hub`). These tests run the real
loaders in a child process whose hub is a local socket, first refusing
connections (no network), then dropping them unanswered (a proxy in the way),
and whose Hugging Face cache is a folder of the test's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from indexer.embed.locations import locate_embedder
from tests.conftest import ROOT
from tests.task_models import save_tiny_cross_encoder

COMMIT = "0123456789abcdef0123456789abcdef01234567"

CHILD = r"""
import json, logging, os, socket, sys, threading

# the hub: a local socket that refuses connections (nothing listens yet), as where there is no network
hub = socket.socket()
hub.bind(("127.0.0.1", 0))
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:%d" % hub.getsockname()[1]

class Retries(logging.Handler):
    # huggingface_hub's backoff says "Retrying in Ns [Retry i/5]" before each wait
    count = 0

    def emit(self, record):
        Retries.count += "Retrying in" in record.getMessage()

logging.getLogger("huggingface_hub").addHandler(Retries())

import numpy as np
from indexer.embed.cross_encoder import load_cross_encoder
from indexer.embed.loading import load_embedder

folders = json.loads(sys.argv[1])
results = {}
for kind, load in (("cross-encoder", load_cross_encoder), ("embedder", load_embedder)):
    try:
        load("yomitoki-test/not-cached-" + kind)
        results[kind] = {"loaded": True}
    except Exception as exc:
        results[kind] = {"error": type(exc).__name__ + ": " + str(exc), "retries": Retries.count}

# now a hub that accepts each connection and drops it unanswered (a proxy or firewall in the way)
hub.listen(16)

def drop():
    while True:
        hub.accept()[0].close()

threading.Thread(target=drop, daemon=True).start()
pairs = [("What is BM25?", "BM25 is a ranking function."), ("銀座", "東京の銀座は商業地区です。")]
results["cached cross-encoder"] = [load_cross_encoder("yomitoki-test/tiny-reranker").score(pairs),
                                   load_cross_encoder(folders["cross-encoder"]).score(pairs)]
texts = ["hybrid search", "日本語の文"]
results["cached embedder"] = float(np.min(np.sum(load_embedder("yomitoki-test/minilm").embed(texts)
                                                 * load_embedder(folders["embedder"]).embed(texts), axis=1)))
print(json.dumps(results))
"""


def cache_entry(hub_cache: Path, repo_id: str, source: Path) -> None:
    """`source`'s files as the Hugging Face cache keeps a downloaded snapshot of `repo_id`."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(source, repo / "snapshots" / COMMIT, copy_function=os.symlink)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_an_unreachable_hub_fails_at_once_and_a_cached_id_loads_without_it(tmp_path: Path) -> None:
    reranker = save_tiny_cross_encoder(tmp_path / "tiny-reranker")
    minilm = locate_embedder("all-minilm-l6-v2").path
    assert minilm is not None
    cache_entry(tmp_path / "hf" / "hub", "yomitoki-test/tiny-reranker", reranker)
    cache_entry(tmp_path / "hf" / "hub", "yomitoki-test/minilm", minilm)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    folders = json.dumps({"cross-encoder": str(reranker), "embedder": str(minilm)})
    child = subprocess.run([sys.executable, "-c", CHILD, folders], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout.strip().splitlines()[-1])
    for kind in ("cross-encoder", "embedder"):
        failed = results[kind]
        assert "error" in failed, failed
        # no backoff (without the check the libraries retry 5 times, about a minute); the message names the
        # model, what was tried, and what to do
        assert failed["retries"] == 0, failed
        message = failed["error"]
        assert f"yomitoki-test/not-cached-{kind}" in message and "cannot be reached" in message, message
        assert "give its folder" in message, message
    by_id, by_folder = results["cached cross-encoder"]
    assert by_id == by_folder, results
    assert results["cached embedder"] > 0.9999, results
