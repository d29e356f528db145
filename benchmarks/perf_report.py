"""The tables benchmarks/performance.py prints: each figure, its baseline, the ratio and the target."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str, bool | None]


def _mark(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: ""}[met]


def _print(title: str, rows: list[Row]) -> None:
    header = ("figure", "value", "baseline (same run)", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + _mark(row[5]))


def indexing_rows(part: dict[str, Any]) -> list[Row]:
    raw = part["raw_torch_encode"]["passages_per_s"]
    rows: list[Row] = []
    for backend, build in part["builds"].items():
        ratio = part["speedup_vs_raw_torch"][backend]
        fastest = backend == part["fastest"]
        rows.append((f"yomitoki index --backend {backend}, passages/s", f"{build['passages_per_s']:.1f}",
                     f"raw torch encode {raw:.1f}/s", f"{ratio:.2f}×", "≥ 2.5× (fastest)" if fastest else "",
                     ratio >= 2.5 if fastest else None))
        share = build["outside_embedding_share"]
        rows.append((f"  time outside embedding ({backend})", f"{share:.1%}", f"of {build['build_seconds']:.1f} s",
                     "", "≤ 10%", share <= 0.10))
    torch_ndcg = part["quality"]["torch"]["ndcg@10"]
    for backend, quality in part["quality"].items():
        if backend == "torch":
            continue
        cosine, diff = quality["mean_cosine_to_torch"], quality["ndcg@10"] - torch_ndcg
        rows.append((f"  {backend} mean cosine to torch", f"{cosine:.5f}", f"min {quality['min_cosine_to_torch']:.5f}",
                     "", "≥ 0.99", cosine >= 0.99))
        rows.append((f"  {backend} SciFact nDCG@10", f"{quality['ndcg@10']:.4f}", f"torch {torch_ndcg:.4f}",
                     f"{diff:+.4f}", "within 0.005", abs(diff) <= 0.005))
        if "ndcg@10_float32_queries" in quality:
            mixed = quality["ndcg@10_float32_queries"]
            rows.append((f"  {backend} index, float32 queries, nDCG@10", f"{mixed:.4f}", f"torch {torch_ndcg:.4f}",
                         f"{mixed - torch_ndcg:+.4f}", "", None))
    return rows


def query_rows(part: dict[str, Any]) -> list[Row]:
    floor = part["floor"]
    rows: list[Row] = [("in-process hybrid search (floor)", f"median {floor['median_ms']:.2f} ms",
                        f"p99 {floor['p99_ms']:.2f} ms", "", f"{floor['requests_per_s']:.0f} q/s", None)]
    for name, run in part.get("configurations", {"one process": part}).items():
        rows.append((f"yomitoki serve {' '.join(run.get('serve_args', []))}".rstrip() + f" ({name})",
                     "", "", "", "", None))
        rows += _configuration_rows(floor, run)
    return rows


def _configuration_rows(floor: dict[str, Any], part: dict[str, Any]) -> list[Row]:
    targets = part["targets"]
    rows: list[Row] = []
    for clients, load in part["http"].items():
        rows.append((f"  POST /search, {clients} client(s)", f"median {load['median_ms']:.2f} ms",
                     f"p99 {load['p99_ms']:.2f} ms", f"{load['requests_per_s']:.0f} req/s",
                     f"{load['requests']} requests, {load.get('errors', 0)} errors", None))
    median, limit = targets["one_client_median_ms"], targets["one_client_limit_ms"]
    rows.append(("  1 client median vs 1.3 × floor + 1 ms", f"{median:.2f} ms", f"{limit:.2f} ms",
                 f"{median / floor['median_ms']:.2f}×", "≤ limit", median <= limit))
    rows.append(("  most clients req/s vs 1 client", f"{targets['throughput_ratio']:.2f}×", "", "", "≥ 3×",
                 targets["throughput_ratio"] >= 3))
    rows.append(("  most clients p99", f"{targets['most_clients_p99_ms']:.1f} ms", "", "", "≤ 100 ms",
                 targets["most_clients_p99_ms"] <= 100))
    if "ceiling" in part:  # what the cores allow at the CPU per request measured under the heaviest load
        bound = part["ceiling"]
        rows.append((f"  ceiling on {bound['cores']} cores at {bound['cpu_ms_per_request']:.1f} ms CPU/request",
                     f"{bound['max_throughput_ratio']:.2f}× max", f"mean ≥ {bound['min_mean_latency_ms']:.0f} ms",
                     f"{bound['max_requests_per_s']:.0f} req/s max", "server + load generator", None))
    return rows


def scale_rows(part: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for kind, r in part["types"].items():
        met = None
        target = ""
        if kind == "hnsw":
            met, target = r["recall@10"] >= 0.95 and r["p99_ms"] <= 10, "recall ≥ 0.95, p99 ≤ 10 ms"
        if kind == "ivfpq":
            met = r["recall@10"] >= 0.90 and r["memory_bytes_per_vector"] <= 64
            target = "recall ≥ 0.90, ≤ 64 B/vector in RAM"
        rows.append((f"{kind}: recall@10 {r['recall@10']:.3f}", f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} ms",
                     "exact (flat) search", f"{r['memory_bytes_per_vector']:.0f} B/vector RAM, "
                     f"build {r['build_seconds']:.0f} s", target, met))
    return rows


def peer_rows(part: dict[str, Any]) -> list[Row]:
    if "skipped" in part:
        return [("txtai", "skipped", part["skipped"], "", "", None)]
    ours, txtai = part["yomitoki"], part["txtai"]
    dense_speedup = ours["dense"]["queries_per_s"] / txtai["queries_per_s"]
    rows: list[Row] = [
        (f"index SciFact, seconds ({ours['backend']})", f"{ours['index_seconds']:.1f} s",
         f"txtai {txtai['index_seconds']:.1f} s", f"{part['index_speedup']:.2f}× faster", "> 1×",
         part["index_speedup"] > 1)]
    rows += [(f"  index SciFact, seconds ({backend})", f"{seconds:.1f} s", f"txtai {txtai['index_seconds']:.1f} s",
              f"{txtai['index_seconds'] / seconds:.2f}×", "", None)
             for backend, seconds in ours.get("index_seconds_by_backend", {}).items() if backend != ours["backend"]]
    query = f" ({ours.get('query_backend', ours['backend'])} index)"
    return [*rows,
        ("queries/s, dense like txtai" + query, f"{ours['dense']['queries_per_s']:.1f}",
         f"txtai {txtai['queries_per_s']:.1f}", f"{dense_speedup:.2f}×", "> 1×", dense_speedup > 1),
        ("queries/s, hybrid (one at a time)" + query, f"{ours['hybrid']['queries_per_s']:.1f}",
         f"txtai {txtai['queries_per_s']:.1f}", f"{part['query_speedup']:.2f}×", "> 1×", part["query_speedup"] > 1),
        ("SciFact nDCG@10 (hybrid)", f"{ours['hybrid']['ndcg@10']:.4f}", f"txtai {txtai['ndcg@10']:.4f}",
         f"{part['ndcg_difference']:+.4f}", "≥ txtai", part["ndcg_difference"] >= 0),
        ("SciFact nDCG@10 (dense)", f"{ours['dense']['ndcg@10']:.4f}", f"txtai {txtai['ndcg@10']:.4f}",
         f"{ours['dense']['ndcg@10'] - txtai['ndcg@10']:+.4f}", "", None),
    ]


def print_tables(results: dict[str, Any]) -> None:
    makers = {"indexing": ("Indexing (SciFact)", indexing_rows), "query": ("Query latency and throughput", query_rows),
              "scale": ("Index types at scale", scale_rows), "peer": ("Against txtai (same corpus, model)", peer_rows)}
    for part, (title, rows) in makers.items():
        if part in results:
            extra = f" — {results[part]['vectors']:,} × {results[part]['dimension']}" if part == "scale" else ""
            _print(title + extra, rows(results[part]))
