"""STS Benchmark and JSTS through the real `POST /similarity` of a running server.

    python benchmarks/similarity_http.py [--index IDX] [--model multilingual-e5-small] [--backend torch]
                                         [--sets stsb,jsts]

Starts `yomitoki serve` (its own process, on a free port) on `--index`, or on the
default corpus indexed first into a temporary folder with `--model` and
`--backend` (the server serves the model and backend the index was built with),
then sends every pair of STSb test (1,379) and JSTS valid (1,457) in requests of
256 pairs, exactly as a client would, and reports the Spearman correlation of
the returned scores with the gold scores (MTEB's STS metric). The server
NFKC-normalizes texts and gives E5 both sides as queries, as it does for every
client; the published figures (../shared/data/README.md) are the raw model's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perf_http import start_server  # noqa: E402
from benchmarks.retrieval import DATA  # noqa: E402
from benchmarks.tasks import read_jsts, read_stsb, spearman  # noqa: E402
from indexer.embed.base import DEFAULT_EMBEDDER  # noqa: E402

PUBLISHED = {"multilingual-e5-small": {"stsb": 0.8359, "jsts": 0.7892},
             "all-minilm-l6-v2": {"stsb": 0.8203, "jsts": 0.6265}}
BATCH = 256  # the endpoint's most pairs per request


def build_default_index(folder: Path, model: str, backend: str | None) -> Path:
    command = [sys.executable, "-m", "server", "index", str(ROOT / "corpus"), "--index", str(folder),
               "--model", model, *(["--backend", backend] if backend else [])]
    subprocess.run(command, check=True, capture_output=True, timeout=3600, cwd=ROOT)
    return folder


def scores(url: str, left: list[str], right: list[str]) -> tuple[np.ndarray, str]:
    out: list[float] = []
    model = ""
    with httpx.Client(timeout=600) as client:
        for start in range(0, len(left), BATCH):
            pairs = list(zip(left[start : start + BATCH], right[start : start + BATCH], strict=True))
            response = client.post(f"{url}/similarity", json={"pairs": pairs, "method": "cosine"})
            response.raise_for_status()
            body = response.json()
            out.extend(body["scores"])
            model = body["model"]
    return np.array(out), model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=None, help="serve this index (default: the corpus, indexed)")
    parser.add_argument("--model", default=DEFAULT_EMBEDDER)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--sets", default="stsb,jsts")
    args = parser.parse_args()
    sets = {"stsb": lambda: read_stsb(args.data / "stsb" / "sts-test.csv"),
            "jsts": lambda: read_jsts(args.data / "jsts" / "valid-v1.3.jsonl")}
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or build_default_index(Path(tmp) / "index", args.model, args.backend)
        process, url = start_server(index, Path(tmp) / "server.log")
        try:
            for name in args.sets.split(","):
                left, right, gold = sets[name]()
                started = time.perf_counter()
                predicted, model = scores(url, left, right)
                value = spearman(predicted, gold)
                published = PUBLISHED.get(model, {}).get(name)
                print(f"{name}: Spearman {value:.4f} over {len(gold)} pairs through POST /similarity "
                      f"({model}; published {published}; {time.perf_counter() - started:.0f}s, "
                      f"load average {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
