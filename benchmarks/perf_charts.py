"""The PNG chart of benchmarks/performance.py: one panel per part that has results."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _indexing(ax: Any, part: dict[str, Any]) -> None:
    names = ["raw torch encode"] + [f"yomitoki index\n{b}" for b in part["builds"]]
    rates = [part["raw_torch_encode"]["passages_per_s"]] + [b["passages_per_s"] for b in part["builds"].values()]
    bars = ax.bar(names, rates, color=["#999999"] + ["#2a7ab9"] * len(part["builds"]))
    ax.bar_label(bars, fmt="%.0f")
    ax.set_ylabel("passages / s")
    ax.set_title("Indexing SciFact (same chunks)")


def _query(ax: Any, part: dict[str, Any]) -> None:
    clients = [int(c) for c in part["http"]]
    loads = list(part["http"].values())
    ax.plot(clients, [v["requests_per_s"] for v in loads], "o-", color="#2a7ab9", label="requests/s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests / s")
    twin = ax.twinx()
    twin.plot(clients, [v["median_ms"] for v in loads], "s--", color="#d9822b", label="median ms")
    twin.plot(clients, [v["p99_ms"] for v in loads], "^:", color="#c23b22", label="p99 ms")
    twin.axhline(part["floor"]["median_ms"], color="#999999", lw=1, label="in-process median")
    twin.set_ylabel("latency (ms)")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    ax.legend(lines, labels, fontsize=7, loc="upper left")
    ax.set_title("POST /search (hybrid) on the server process")


def _scale(ax: Any, part: dict[str, Any]) -> None:
    kinds = list(part["types"])
    values = part["types"]
    bars = ax.bar(kinds, [values[k]["p99_ms"] for k in kinds], color="#2a7ab9")
    ax.bar_label(bars, labels=[f"recall {values[k]['recall@10']:.3f}\n{values[k]['memory_bytes_per_vector']:.0f} B/vec"
                               for k in kinds], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("p99 latency per query (ms)")
    ax.set_title(f"{part['vectors']:,} vectors × {part['dimension']}")


def _peer(ax: Any, part: dict[str, Any]) -> None:
    if "skipped" in part:
        ax.text(0.5, 0.5, "txtai: skipped", ha="center")
        return
    ours, txtai = part["yomitoki"], part["txtai"]
    metrics = ["index time (s)", "queries / s\n(dense)", "queries / s\n(hybrid)", "nDCG@10 × 100\n(hybrid)"]
    mine = [ours["index_seconds"], ours["dense"]["queries_per_s"], ours["hybrid"]["queries_per_s"],
            100 * ours["hybrid"]["ndcg@10"]]
    theirs = [txtai["index_seconds"], txtai["queries_per_s"], txtai["queries_per_s"], 100 * txtai["ndcg@10"]]
    positions = range(len(metrics))
    ax.bar_label(ax.bar([p - 0.2 for p in positions], mine, 0.4, label="yomitoki", color="#2a7ab9"), fmt="%.1f")
    ax.bar_label(ax.bar([p + 0.2 for p in positions], theirs, 0.4, label=f"txtai {txtai['version']}",
                        color="#999999"), fmt="%.1f")
    ax.set_xticks(list(positions), metrics)
    ax.legend(fontsize=7)
    ax.set_title("Against txtai, SciFact, same model")


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, f) for k, f in (("indexing", _indexing), ("query", _query), ("scale", _scale), ("peer", _peer))
              if k in results]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (key, panel) in zip(axes[0], panels, strict=True):
        panel(ax, results[key])
    run = next(iter(results.values()))["run"]["machine"]
    figure.suptitle(f"yomitoki on {run['cores']} × {run['cpu']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
