"""`yomitoki index --ray`: a real two-node Ray cluster on loopback, compared with a single-process build.

The cluster runs inside a network namespace that this module creates with only
loopback up (`ray start` listens on every interface otherwise), and is stopped
by process id and process group, never with `ray stop` (which kills Ray
processes machine-wide by name). It needs root and `ip`; under CI it fails
rather than skips when they are missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from indexer.build.distributed import RayIndexingError, connect
from indexer.embed.base import Embedder
from indexer.search.searcher import Searcher
from indexer.store.generations import IndexDirectory
from indexer.text.keywords import KeywordTokenizer
from tests.conftest import CORPUS, MODEL, build, free_port, yomitoki

pytestmark = pytest.mark.timeout(600)  # a busy machine: starting two nodes alone may take minutes

HEAD_PORT = 6379  # free by construction: the namespace is new
NODE_ARGS = ("--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "150000000",
             "--disable-usage-stats")
QUERIES = ("BM25 term frequency saturation", "全角と半角の違い", "reciprocal rank fusion of two rankings",
           "ハイブリッド検索")
JSONL = [
    {"id": "q1", "title": "Sharding a corpus", "text": "Large corpora are split into shards. Each shard is "
     "embedded by a different worker, and the vectors are written to one index."},
    {"id": "q2", "title": "分散インデックス", "text": "大きなコーパスは複数のノードで埋め込みを計算する。"
     "各ノードは同じパスでファイルを読む。"},
    {"id": "q3", "text": "Actors keep the model in memory between batches, so it is loaded once per worker."},
]


def _missing_requirement(namespace: bool) -> str | None:
    if importlib.util.find_spec("ray") is None or not (Path(sys.executable).parent / "ray").exists():
        return "needs Ray in this environment: pip install 'yomitoki[scale]'"
    if namespace and (not hasattr(os, "geteuid") or os.geteuid() != 0):
        return "needs root to create a network namespace"
    if namespace and shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    return None


def _require(*, namespace: bool = True) -> None:
    missing = _missing_requirement(namespace)
    if missing is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the Ray cluster test {missing} (CI must run it)")
    pytest.skip(missing)


@dataclass
class RayCluster:
    namespace: str
    temp: Path
    env: dict[str, str]
    groups: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{HEAD_PORT}"

    def inside(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *command]

    def start_node(self, name: str, *args: str) -> None:
        """`ray start` in its own session (its daemons keep that process group), waited for."""
        temp = self.temp / name
        temp.mkdir()
        ray = str(Path(sys.executable).parent / "ray")
        process = subprocess.Popen(
            self.inside(ray, "start", *args, *NODE_ARGS, "--temp-dir", str(temp)),
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.groups.append(process.pid)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f"ray start ({name}) failed:\n{output}"

    def wait_for_nodes(self, count: int, within_s: float) -> None:
        """Until `count` nodes are alive in the cluster; fails saying how many joined when they don't in time."""
        script = (
            "import sys, time, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.monotonic() + {within_s}\n"
            "while True:\n"
            "    alive = sum(1 for node in ray.nodes() if node['Alive'])\n"
            f"    if alive >= {count} or time.monotonic() > deadline:\n"
            "        print(alive); sys.exit(0)\n"
            "    time.sleep(1)\n"
        )
        waited = subprocess.run(self.inside(sys.executable, "-c", script), env=self.env, capture_output=True,
                                text=True, timeout=within_s + 120)
        alive = waited.stdout.strip().splitlines()[-1] if waited.stdout.strip() else "?"
        assert waited.returncode == 0 and alive == str(count), (
            f"only {alive} of {count} Ray nodes joined within {within_s:.0f} s:\n{waited.stdout}{waited.stderr}")

    def pids(self) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
        return [int(pid) for pid in listed.stdout.split()]

    def stop(self) -> None:
        """Every process of the namespace and of the `ray start` groups, by id: TERM, then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                _quietly(os.killpg, group, sig)
            for pid in self.pids():
                _quietly(os.kill, pid, sig)
            deadline = time.monotonic() + 5
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.3)
            if not self.pids():
                return


def _quietly(kill: Any, target: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        kill(target, sig)


def _remove_stale_namespaces() -> None:
    """Namespaces of earlier runs of this module whose pytest process died before its teardown."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        parts = name.split("-")
        if len(parts) == 4 and parts[:2] == ["yt", "ray"] and parts[2].isdigit() and \
                not Path(f"/proc/{parts[2]}").exists():
            RayCluster(name, Path(), {}).stop()
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    _require()
    _remove_stale_namespaces()
    namespace = f"yt-ray-{os.getpid()}-{secrets.token_hex(3)}"
    temp = tmp_path_factory.mktemp("ray")
    own_temp = len(str(temp)) > 40  # Ray's socket paths (temp + ~65 chars) must fit in 107 bytes
    if own_temp:
        temp = Path(tempfile.mkdtemp(prefix="ytray-", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True)
    cluster = RayCluster(namespace, temp, env)
    try:
        subprocess.run(cluster.inside("ip", "link", "set", "lo", "up"), check=True, capture_output=True)
        cluster.start_node("head", "--head", "--port", str(HEAD_PORT), "--include-dashboard", "false",
                           "--min-worker-port", "10002", "--max-worker-port", "14999")
        cluster.start_node("node", "--address", cluster.address,
                           "--min-worker-port", "15000", "--max-worker-port", "19999")
        cluster.wait_for_nodes(2, within_s=180)  # `ray start` returns before a busy machine's node has joined
        yield cluster
    finally:
        cluster.stop()
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        if own_temp:
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """English and Japanese Markdown, and a JSON lines file holding several documents."""
    corpus = tmp_path_factory.mktemp("corpus")
    chosen = sorted(CORPUS.glob("en-*.md"))[:5] + sorted(CORPUS.glob("ja-*.md"))[:3]
    chosen += [CORPUS / "en-reciprocal-rank-fusion.md", CORPUS / "ja-hybrid-search.md",
               CORPUS / "ja-zenkaku-hankaku.md"]
    for source in chosen:
        shutil.copy(source, corpus / source.name)
    lines = [json.dumps(record, ensure_ascii=False) for record in JSONL]
    (corpus / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus


def _index_on_ray(cluster: RayCluster, corpus: Path, index: Path) -> dict[str, Any]:
    command = cluster.inside(*yomitoki("index", str(corpus), "--index", str(index), "--model", MODEL,
                                       "--ray", cluster.address, "--json"))
    done = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def _vectors(index: Path) -> dict[int, np.ndarray]:
    loaded = faiss.read_index(str(IndexDirectory(index).current().vectors_path))  # owns what the casts see
    mapped: Any = faiss.downcast_index(loaded)  # IndexIDMap2
    flat = faiss.downcast_index(mapped.index)  # a small corpus gets a flat index: vectors kept exactly
    ids = faiss.vector_to_array(mapped.id_map)
    return dict(zip(ids.tolist(), flat.reconstruct_n(0, flat.ntotal), strict=True))


def _assert_same_index(ray_index: Path, local_index: Path, embedder: Embedder) -> None:
    ray = Searcher(IndexDirectory(ray_index).current(), embedder)
    local = Searcher(IndexDirectory(local_index).current(), embedder)
    try:
        def chunks(searcher: Searcher) -> list[tuple[object, ...]]:
            return [(c.id, c.doc_id, c.ordinal, c.start, c.end, c.text, c.section, c.tokens)
                    for c in searcher.store.iter_chunks()]

        assert chunks(ray) == chunks(local)
        assert ray.store.counts() == local.store.counts()
        for query in QUERIES:
            got, want = ray.search(query, k=5), local.search(query, k=5)
            assert [(h.chunk_id, h.source, h.start, h.end) for h in got] == \
                   [(h.chunk_id, h.source, h.start, h.end) for h in want], query
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
    finally:
        ray.close()
        local.close()
    ray_vectors, local_vectors = _vectors(ray_index), _vectors(local_index)
    assert ray_vectors.keys() == local_vectors.keys()
    worst = max(float(np.abs(ray_vectors[i] - local_vectors[i]).max()) for i in local_vectors)
    assert worst < 1e-5


@pytest.fixture(scope="module")
def ray_build(ray_cluster: RayCluster, small_corpus: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    index = tmp_path_factory.mktemp("ray-index")
    return index, _index_on_ray(ray_cluster, small_corpus, index)


def test_two_node_build_matches_a_single_process_build(
    ray_build: tuple[Path, dict[str, Any]], small_corpus: Path, tmp_path: Path,
    embedder: Embedder, keywords: KeywordTokenizer,
) -> None:
    ray_index, report = ray_build
    local = build(small_corpus, tmp_path / "local", embedder, keywords)
    assert (report["documents"], report["chunks"]) == (local.documents, local.chunks) == (14, local.chunks)

    work = report["ray"]
    assert (work["nodes"], work["workers"]) == (2, 2), work
    assert len(work["per_node"]) == 2 and all(n["documents_embedded"] > 0 for n in work["per_node"].values())
    assert sum(n["chunks_embedded"] for n in work["per_node"].values()) == local.chunks
    _assert_same_index(ray_index, tmp_path / "local", embedder)


def test_incremental_update_on_ray_embeds_only_the_changed_document(
    ray_cluster: RayCluster, ray_build: tuple[Path, dict[str, Any]], small_corpus: Path, tmp_path: Path,
    embedder: Embedder, keywords: KeywordTokenizer,
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    ray_index = tmp_path / "ray-index"
    shutil.copytree(ray_build[0], ray_index)
    local_index = tmp_path / "local"
    build(small_corpus, local_index, embedder, keywords)
    edited = corpus / "ja-hybrid-search.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\n分散処理でも同じ結果になる。\n", encoding="utf-8")
    (corpus / "notes.jsonl").write_text(json.dumps(JSONL[0]) + "\n", encoding="utf-8")  # q2, q3 removed

    report = _index_on_ray(ray_cluster, corpus, ray_index)
    local = build(corpus, local_index, embedder, keywords)
    assert (report["changed"], report["removed"], report["added"]) == (1, 2, 0)
    assert report["chunks_embedded"] == local.chunks_embedded > 0
    assert sum(n["documents_embedded"] for n in report["ray"]["per_node"].values()) == 1
    _assert_same_index(ray_index, local_index, embedder)


def test_unreachable_cluster_fails_fast_with_a_clear_message(small_corpus: Path, tmp_path: Path) -> None:
    _require(namespace=False)
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    done = subprocess.run(yomitoki("index", str(small_corpus), "--index", str(tmp_path / "index"),
                                   "--ray", address), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no Ray cluster answers at {address}" in done.stderr, done.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.1", "host:notaport", "ray://:10001", "h:70000"])
def test_malformed_ray_address_is_refused(address: str) -> None:
    _require(namespace=False)
    with pytest.raises(RayIndexingError, match=f"--ray '{re.escape(address)}' is not a Ray address"):
        connect(address)
