"""A small closed-loop HTTP load generator, run as its own process by benchmarks/performance.py.

    python benchmarks/loadgen.py --url http://127.0.0.1:8000/search --clients 8 --seconds 10 \
        --queries queries.json --out result.json

Each client holds one keep-alive connection and sends the next POST as soon as
the previous answer has arrived (raw HTTP/1.1 over asyncio streams, so the
generator itself costs little CPU). Latencies are measured per request after a
short warm-up; the process stops after `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str,
                   body: bytes) -> int:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return status


async def _client(url: str, bodies: list[bytes], start: int, warmup_until: float, stop_at: float,
                  latencies: list[float], errors: list[int], sent: list[int]) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        for body in itertools.islice(itertools.cycle(bodies), start, None):
            began = time.perf_counter()
            if began >= stop_at:
                break
            status = await _request(reader, writer, parts.netloc, parts.path, body)
            sent[0] += 1
            if began >= warmup_until:
                latencies.append((time.perf_counter() - began) * 1000)
                if status != 200:
                    errors.append(status)
    finally:
        writer.close()


async def run(url: str, clients: int, seconds: float, queries: list[str], warmup: float = 1.0) -> dict[str, object]:
    bodies = [json.dumps({"query": q, "mode": "hybrid", "k": 10}).encode() for q in queries]
    now = time.perf_counter()
    latencies: list[float] = []
    errors: list[int] = []
    sent = [0]  # every request answered, warm-up included (the CPU accounting divides by it)
    await asyncio.gather(*(_client(url, bodies, i * 7, now + warmup, now + warmup + seconds, latencies, errors,
                                   sent) for i in range(clients)))
    return {"clients": clients, "seconds": seconds, "latencies_ms": latencies, "errors": len(errors),
            "sent": sent[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--queries", type=Path, required=True, help="JSON list of query strings")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    queries = json.loads(args.queries.read_text())
    result = asyncio.run(run(args.url, args.clients, args.seconds, queries))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
