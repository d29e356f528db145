"""Speed and scale of yomitoki, each figure beside a baseline measured in the same run.

    python benchmarks/performance.py                       # indexing, HTTP, txtai (bounded: ~10 min)
    python benchmarks/performance.py --parts scale --scale 1000000   # index types at a million vectors
    python benchmarks/performance.py --parts http --serve-index IDX  # HTTP again, on a SciFact index built before

Parts (results merged into benchmarks/results/performance.json + .png):
- index: `yomitoki index` on SciFact per backend vs raw SentenceTransformer.encode of the same
  chunks (torch); share of build time outside embedding; int8 quality guard (mean cosine to
  torch ≥ 0.99, nDCG@10 within 0.005 of torch).
- http: POST /search (hybrid) on the real server process, 1/8/32 clients from another process,
  against the same searches in-process (the floor).
- peer: txtai (from its own virtualenv, --txtai-python) on the same corpus and model folder.
- scale: flat, HNSW and IVF-PQ over N vectors derived from real embeddings (see perf_scale.py).

Only ratios from one run mean anything on a shared machine; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.perf_charts import draw  # noqa: E402
from benchmarks.perf_report import print_tables  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
TXTAI_PYTHON = Path("/tmp/txtai-venv/bin/python")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()}


def save(out: Path, part: str, value: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Merge one part's results into out/performance.json (other parts keep their last run) and print it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "performance.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged[part] = {**value, "run": {**info, "machine": {**info["machine"], "load_average_end": os.getloadavg()}}}
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False))
    print_tables({part: merged[part]})
    return merged


def run_parts(args: argparse.Namespace, workdir: Path, info: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.perf_http import measure_http
    from benchmarks.perf_indexing import measure_indexing
    from benchmarks.perf_peer import measure_peer
    from benchmarks.perf_scale import measure_scale

    parts = set(args.parts.split(","))
    merged: dict[str, Any] = {}
    if args.serve_index and parts & {"index", "peer"}:
        raise SystemExit("--serve-index is for the http part alone: the index and peer parts build their own")
    if parts & {"index", "http", "peer"} and not args.serve_index:
        indexing = measure_indexing(args.data, workdir, args.backends.split(","))
        merged = save(args.out, "indexing", indexing, info)
    # Queries are served from the onnx-int8 index when there is one: its single-query embedding is the
    # fastest (≈ 3.6 ms against ≈ 14–18 ms for torch and torch-bf16, which win only in bulk).
    serving = args.serve_index or (indexing["indexes"].get("onnx-int8", indexing["index"])
                                   if parts & {"http", "peer"} else "")
    if "http" in parts:
        merged = save(args.out, "query", measure_http(Path(serving), args.data, workdir, args.seconds), info)
    if "peer" in parts:
        peer = ({"skipped": f"no txtai interpreter at {args.txtai_python} (see --txtai-python)"}
                if not args.txtai_python.exists() else measure_peer(args.txtai_python, args.data, workdir, indexing,
                                                                    Path(serving)))
        merged = save(args.out, "peer", peer, info)
    if "scale" in parts:
        scale_dir = args.scale_dir or workdir
        scale_dir.mkdir(parents=True, exist_ok=True)
        merged = save(args.out, "scale", measure_scale(args.data, scale_dir, args.scale, args.cache), info)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared benchmark data folder")
    parser.add_argument("--parts", default="index,http,peer", help="any of index,http,peer,scale")
    parser.add_argument("--backends", default="torch-bf16,onnx-int8,onnx", help="backends `yomitoki index` is run with")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per concurrency level")
    parser.add_argument("--scale", type=int, default=0, help="vectors for the scale part (e.g. 1000000)")
    parser.add_argument("--txtai-python", type=Path, default=TXTAI_PYTHON,
                        help="python of a virtualenv with txtai (never installed into yomitoki's)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "yomitoki" / "bench",
                        help="where the scale part keeps the real embeddings it derives vectors from")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--scale-dir", type=Path, default=None,
                        help="keep the scale part's indexes here and reuse them on the next run (measure again "
                             "without rebuilding); default: the scratch folder")
    parser.add_argument("--serve-index", type=Path, default=None,
                        help="with --parts http: serve this SciFact index (e.g. one the index part built with "
                             "--workdir) instead of building one first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.scale:
        args.parts = ",".join(dict.fromkeys([*args.parts.split(","), "scale"]))
    if "scale" in args.parts and not args.scale:
        parser.error("the scale part needs --scale N")
    started = time.time()
    info = {"machine": machine(), "command": " ".join(["python", *sys.argv]), "started": time.ctime(started)}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        merged = run_parts(args, Path(tmp), info)
    draw(merged, args.out / "performance.png")
    print(f"\n{time.time() - started:.0f} s; wrote {args.out / 'performance.json'} and {args.out / 'performance.png'}")


if __name__ == "__main__":
    main()
