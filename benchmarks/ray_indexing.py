"""Index time with and without Ray, side by side, through the real `yomitoki index` command.

    python benchmarks/ray_indexing.py [--scifact-docs 1000] [--ray ADDRESS] [--node-cpus 1]

Corpora: the demo corpus (corpus/, 44 Markdown files) and a SciFact sample (the
first N abstracts of ../shared/data/scifact, written to a temporary JSON-lines
file). Each is indexed from scratch twice with the bundled all-MiniLM-L6-v2:
once as one process (the baseline), once with `--ray`. Without `--ray ADDRESS`
the benchmark starts its own two-node Ray cluster on loopback inside a network
namespace (root and `ip` needed; the same setup as tests/test_distributed.py)
and stops it by process id afterwards. Reported per corpus: documents, chunks,
the build's own seconds, the whole command's wall seconds (model loading and,
with Ray, connecting and starting the actors included), and the nodes and
workers that embedded. Results go to benchmarks/results/ray_indexing.json.

`time_index(corpus, index, ray=ADDRESS)` is the function other benchmarks can call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perf_indexing import write_corpus  # noqa: E402
from benchmarks.retrieval import DATA, RetrievalSet, load_scifact  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ray_indexing.json"
MODEL = "all-minilm-l6-v2"
HEAD_PORT = 6379


def time_index(corpus: Path, index: Path, *, ray: str | None = None, env: dict[str, str] | None = None,
               prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """`yomitoki index CORPUS --rebuild --json [--ray ADDRESS]` in its own process: report and wall time."""
    command = [*prefix, sys.executable, "-m", "server", "index", str(corpus), "--index", str(index),
               "--model", MODEL, "--rebuild", "--json", *(["--ray", ray] if ray else [])]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    out = {"documents": report["documents"], "chunks": report["chunks"], "build_seconds": report["seconds"],
           "wall_seconds": wall, "chunks_per_s": report["chunks_embedded"] / report["seconds"],
           "load_average_1min_after": os.getloadavg()[0]}  # other jobs on the machine skew the times
    if "ray" in report:
        out.update(nodes=report["ray"]["nodes"], workers=report["ray"]["workers"],
                   chunks_per_node=[n["chunks_embedded"] for n in report["ray"]["per_node"].values()])
    return out


def _namespace_pids(namespace: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(pid) for pid in listed.stdout.split()]


def _stop(namespace: str, groups: list[int]) -> None:
    """Every process of the namespace and of the `ray start` process groups, by id (never `ray stop`)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        for pid in _namespace_pids(namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while _namespace_pids(namespace) and time.monotonic() < deadline:
            time.sleep(0.3)


@contextlib.contextmanager
def loopback_cluster(node_cpus: int) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    """A two-node Ray cluster on loopback in a new network namespace: (command prefix, environment)."""
    namespace = f"yt-raybench-{os.getpid()}-{secrets.token_hex(3)}"
    temp = Path(tempfile.mkdtemp(prefix="ytray-", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    inside = ("ip", "netns", "exec", namespace)
    ray = str(Path(sys.executable).parent / "ray")
    common = ("--node-ip-address", "127.0.0.1", "--num-cpus", str(node_cpus), "--object-store-memory",
              "300000000", "--disable-usage-stats")
    nodes = {"head": ("--head", "--port", str(HEAD_PORT), "--include-dashboard", "false",
                      "--min-worker-port", "10002", "--max-worker-port", "14999"),
             "node": ("--address", f"127.0.0.1:{HEAD_PORT}", "--min-worker-port", "15000",
                      "--max-worker-port", "19999")}
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    groups: list[int] = []
    try:
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        for name, args in nodes.items():
            (temp / name).mkdir()
            process = subprocess.Popen([*inside, ray, "start", *args, *common, "--temp-dir", str(temp / name)],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
            groups.append(process.pid)
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"ray start ({name}) failed:\n{output}")
        yield inside, env
    finally:
        _stop(namespace, groups)
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def scifact_sample(documents: int, folder: Path) -> Path:
    full = load_scifact(DATA)
    return write_corpus(RetrievalSet(full.name, full.documents[:documents], [], {}), folder)


def run(corpora: dict[str, Path], work: Path, ray: str | None, node_cpus: int) -> dict[str, Any]:
    results: dict[str, Any] = {name: {"local": time_index(path, work / f"{name}-local")}
                               for name, path in corpora.items()}
    if ray:
        for name, path in corpora.items():
            results[name]["ray"] = time_index(path, work / f"{name}-ray", ray=ray)
        return results
    with loopback_cluster(node_cpus) as (prefix, env):
        for name, path in corpora.items():
            results[name]["ray"] = time_index(path, work / f"{name}-ray", ray=f"127.0.0.1:{HEAD_PORT}",
                                              env=env, prefix=prefix)
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'corpus':<16}{'docs':>6}{'chunks':>8}{'local build s':>15}{'ray build s':>13}"
          f"{'local wall s':>14}{'ray wall s':>12}{'ray nodes/workers':>19}{'load avg':>11}")
    for name, row in results.items():
        local, ray = row["local"], row["ray"]
        print(f"{name:<16}{local['documents']:>6}{local['chunks']:>8}{local['build_seconds']:>15.1f}"
              f"{ray['build_seconds']:>13.1f}{local['wall_seconds']:>14.1f}{ray['wall_seconds']:>12.1f}"
              f"{ray['nodes']:>17}/{ray['workers']}"
              f"{local['load_average_1min_after']:>6.1f}/{ray['load_average_1min_after']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact-docs", type=int, default=1000, help="SciFact abstracts to index")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="an existing cluster; default: start two nodes on loopback in a network namespace")
    parser.add_argument("--node-cpus", type=int, default=1, help="CPUs per node of the loopback cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yt-raybench-") as tmp:
        work = Path(tmp)
        corpora = {"demo corpus": ROOT / "corpus",
                   f"scifact {args.scifact_docs}": scifact_sample(args.scifact_docs, work / "scifact")}
        results = run(corpora, work, args.ray, args.node_cpus)
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine_cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
