"""HTTP server load: requests/s and p50/p99 latency at 1, 8 and 32 concurrent clients.

Serves a finished run folder with ``api.serving_app`` on loopback (uvicorn in a thread of this
process), sends a fixed number of single-text ``POST /predict`` requests from N concurrent
httpx clients, and checks every answer is 200. Dynamic batching on (``--max-wait-ms 5``) is
compared with batching off (``--max-wait-ms 0`` and batches of one text: one model call per
request) in the same process, as a ratio.

Writes ``bench/results/serve.json``. Run: ``python bench/serve.py RUN_DIR --texts test.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def _load(url: str, texts: list[str], clients: int, requests: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    failures = 0
    queue = list(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while queue:
            i = queue.pop()
            started = time.perf_counter()
            response = await http.post("/predict", json={"text": texts[i % len(texts)]})
            latencies.append(time.perf_counter() - started)
            failures += response.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": requests,
        "failed": failures,
        "requests_per_second": round(requests / seconds, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
    }


def _serve(run_dir: Path, batch: int, wait_ms: float) -> Any:
    from domaintune import api
    from domaintune.deploy.serve import start_in_thread

    app = api.serving_app(run_dir, max_batch_size=batch, max_wait_ms=wait_ms)
    return start_in_thread(app), app


def main() -> None:
    """Measure, print and write bench/results/serve.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--texts", type=Path, required=True, help="JSONL with a text column.")
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/serve.json")
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in args.texts.read_text().splitlines() if line]
    records = []
    for name, batch, wait in (("batched", 32, 5.0), ("unbatched", 1, 0.0)):
        server, app = _serve(args.run_dir, batch, wait)
        url = f"http://127.0.0.1:{server.port}"
        asyncio.run(_load(url, texts, 4, 16))  # warm-up
        for clients in args.clients:
            before = app.state.batcher.batches
            row = asyncio.run(_load(url, texts, clients, args.requests))
            row.update(mode=name, model_calls=app.state.batcher.batches - before)
            records.append(row)
            print(json.dumps(row))
        server.should_exit = True
        server.thread.join(timeout=10)
    for row in records:
        if row["mode"] == "batched":
            base = next(
                r for r in records if r["mode"] == "unbatched" and r["clients"] == row["clients"]
            )
            row["ratio_vs_unbatched"] = round(
                row["requests_per_second"] / base["requests_per_second"], 2
            )
    args.output.write_text(
        json.dumps({"run": str(args.run_dir), "records": records}, indent=1) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
