"""SmolLM2-135M (the bundled Q4_1 GGUF) through llama.cpp against the transformers path, in one run.

    python benchmarks/generator_speed.py [--threads 1,2] [--repeats 3] [--no-busy]

Each configuration runs in a fresh process of its own, so its first load time and
peak RSS are its own: transformers' GGUF loader (de-quantized to float32 torch,
`server/answering/generators.py`), the path yomitoki used before, is the
baseline; llama.cpp (`server/answering/llamacpp.py`) runs with each thread count
given. Every process answers the same prompt: the product's own RAG prompt
(`build_prompt`) over corpus passages, about 260 tokens, and writes exactly 64
tokens (end-of-sequence ignored, greedy), `--repeats` times; it reports the time
to the first token, the total time, tokens/s of the decoding, the first load time
and the peak RSS.

Then the same again while searches are being served: a separate process runs
hybrid searches over the corpus index back to back on the same cores (the
situation of a server answering /search while it generates), which is what
decides the llama.cpp thread count.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKENS = 64
PROMPT_TOKENS = 260
QUESTION = "Why is the constant k in reciprocal rank fusion usually set to 60?"


def rag_prompt(count_tokens: object) -> list[dict[str, str]]:
    """The product's prompt over corpus passages, cut to about PROMPT_TOKENS tokens."""
    from indexer.search.searcher import Hit
    from server.answering.passages import Passage
    from server.answering.prompting import build_prompt

    text = (ROOT / "corpus" / "en-reciprocal-rank-fusion.md").read_text(encoding="utf-8")
    words = text.split()
    for n in range(40, len(words), 5):
        hit = Hit(doc_id="d", chunk_id=1, title="Reciprocal Rank Fusion", source="rrf.md", section=(),
                  text=" ".join(words[:n]), start=0, end=0, score=1.0, highlights=(), language="en", metadata={})
        messages = build_prompt(QUESTION, [Passage(n=1, hit=hit, tokens=0, relevance=1.0)])
        if count_tokens([messages[0]["content"]])[0] >= PROMPT_TOKENS - 30:  # + the chat template's tokens
            return messages
    return messages


def run_llamacpp(threads: int, repeats: int) -> dict[str, object]:
    from server.answering.loading import GeneratorOptions, load_any_generator

    started = time.perf_counter()
    generator = load_any_generator("smollm2-135m-instruct", GeneratorOptions(threads=threads))
    load_s = time.perf_counter() - started
    messages = rag_prompt(generator.count_tokens)
    runs = []
    for _ in range(repeats):
        first: list[float] = []
        began = time.perf_counter()

        def on_chunk(chunk: dict, began: float = began, first: list[float] = first) -> bool:
            if not first and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", ())):
                first.append(time.perf_counter() - began)
            return False
        generator._server.handle_chat_completions(  # type: ignore[attr-defined]
            {"messages": messages, "stream": True, "max_tokens": TOKENS, "ignore_eos": True, "temperature": 0,
             "cache_prompt": False}, on_chunk)
        runs.append((first[0], time.perf_counter() - began))
    usage = generator._server.handle_chat_completions(  # type: ignore[attr-defined]
        {"messages": messages, "max_tokens": 1, "cache_prompt": False})["usage"]
    return summary(f"llama.cpp, {threads} threads", load_s, runs, usage["prompt_tokens"])


def run_transformers(threads: int, repeats: int) -> dict[str, object]:
    import torch

    from server.answering.generators import load_generator

    torch.set_num_threads(threads)
    started = time.perf_counter()
    generator = load_generator("smollm2-135m-instruct")
    load_s = time.perf_counter() - started
    messages = rag_prompt(generator.count_tokens)
    ids = generator.encode(messages)
    runs = []
    for _ in range(repeats):
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(generator.tokenizer, skip_prompt=True)
        began = time.perf_counter()
        worker = threading.Thread(target=lambda s=streamer: generator.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=TOKENS, min_new_tokens=TOKENS,
            do_sample=False, streamer=s, pad_token_id=generator.tokenizer.eos_token_id))
        worker.start()
        first = next(t for t in (time.perf_counter() - began for piece in streamer if piece) if t)
        for _ in streamer:
            pass
        worker.join()
        runs.append((first, time.perf_counter() - began))
    return summary(f"transformers, {threads} threads", load_s, runs, int(ids.shape[1]))


def summary(name: str, load_s: float, runs: list[tuple[float, float]], prompt_tokens: int) -> dict[str, object]:
    first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    return {"backend": name, "load_s": round(load_s, 2), "prompt_tokens": prompt_tokens,
            "first_token_s": round(first, 3), "total_s": round(total, 3),
            "tokens_per_s": round((TOKENS - 1) / max(total - first, 1e-9), 1),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def serve_searches(index: Path, stop_file: Path) -> None:
    """Hybrid searches back to back until `stop_file` appears (the load beside generation)."""
    import torch

    from indexer.embed.loading import load_embedder
    from indexer.search.searcher import Searcher
    from indexer.store.generations import IndexDirectory

    torch.set_num_threads(2)
    searcher = Searcher(IndexDirectory(index).current(), load_embedder("all-minilm-l6-v2"))
    queries = ["reciprocal rank fusion", "GGUF の量子化", "IOB2 タグ", "cosine similarity", "全角と半角"]
    done = 0
    while not stop_file.exists():
        searcher.search(queries[done % len(queries)], mode="hybrid", k=5)
        done += 1
    print(json.dumps({"searches": done}))


def child(kind: str, threads: int, repeats: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", kind, "--threads", str(threads), "--repeats", str(repeats)]
    output = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def table(title: str, rows: list[dict[str, object]]) -> None:
    base = next(r for r in rows if str(r["backend"]).startswith("transformers"))
    print(f"\n{title}\n")
    print("| backend | first load s | prompt tokens | first token s | 64-token answer s | tokens/s | "
          "peak RSS MB | tokens/s × | answer time ÷ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['load_s']} | {r['prompt_tokens']} | {r['first_token_s']} | {r['total_s']} | "
              f"{r['tokens_per_s']} | {r['peak_rss_mb']} | "
              f"{float(r['tokens_per_s']) / float(base['tokens_per_s']):.1f} | "
              f"{float(base['total_s']) / float(r['total_s']):.1f} |")


def configurations(threads: list[int], repeats: int) -> list[dict[str, object]]:
    return [child("transformers", 2, repeats), *(child("llamacpp", t, repeats) for t in threads)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="llama.cpp thread counts to measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-busy", action="store_true", help="skip the run beside a search load")
    parser.add_argument("--child", choices=["llamacpp", "transformers", "searches"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "searches":
        serve_searches(args.index, args.stop_file)
        return
    if args.child:
        run = run_llamacpp if args.child == "llamacpp" else run_transformers
        print(json.dumps(run(int(args.threads), args.repeats)))
        return

    threads = [int(t) for t in args.threads.split(",")]
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]}")
    table("Quiet (no other work from this script)", configurations(threads, args.repeats))
    if args.no_busy:
        return
    with tempfile.TemporaryDirectory() as workdir:
        from indexer.build.builder import BuildOptions, IndexBuilder
        from indexer.embed.loading import load_embedder
        from indexer.store.generations import IndexDirectory
        from indexer.text.keywords import load_keyword_tokenizer

        index, stop = Path(workdir) / "index", Path(workdir) / "stop"
        IndexBuilder(IndexDirectory(index), load_embedder("all-minilm-l6-v2"), load_keyword_tokenizer(),
                     BuildOptions()).build(ROOT / "corpus")
        searches = subprocess.Popen([sys.executable, __file__, "--child", "searches", "--index", str(index),
                                     "--stop-file", str(stop)], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(5)  # the search process has loaded its model and is searching
            rows = configurations(threads, args.repeats)
        finally:
            stop.touch()
            done = json.loads((searches.communicate(timeout=60)[0] or "{}").strip().splitlines()[-1])
        table(f"While searches are served ({done.get('searches')} hybrid searches meanwhile)", rows)
    with open("/proc/loadavg") as f:
        print(f"\nload average after: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
