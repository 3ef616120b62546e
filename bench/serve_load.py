"""``ragguard serve`` throughput with and without request batching, side by side in one run.

Two servers run at once on loopback, identical but for ``--max-batch``: one answers each request
alone (``--max-batch 1``), the other hands up to ``--max-batch N`` concurrent questions to one
``RagGuard.ask_many`` call. The same requests (distinct questions of examples/faq.jsonl, each
asked once per server) are sent to both at the same concurrency, in alternating rounds so that
load on a shared machine hits both alike. Prints requests per second, p50 and p95 latency for
both, the throughput ratio, and how many answers the two servers agree on (batched must equal
alone).

``--generator simulated`` (default) serves tests/serve_fakes.py: a generation call costs
``--pass-ms`` plus ``--row-ms`` per row, as on a GPU where a batched pass costs little more than
one row; it measures the server's batching machinery. ``--generator embedded`` serves the real
embedded model on this machine (on a small CPU a batched pass costs about as much as its rows
asked one by one, so expect a ratio near 1).

Usage: python bench/serve_load.py [--generator simulated|embedded] [--requests 48] [--concurrency 8]
       [--max-batch 8] [--rounds 3] [--pass-ms 250] [--row-ms 2] [--samples 5] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import ragguard_server  # noqa: E402 - tests/servers.py starts `ragguard serve` subprocesses


def load(url: str, questions: list[str], concurrency: int, body: dict) -> tuple[float, list[float], list[dict]]:
    """Ask every question once at ``concurrency``; returns wall seconds, latencies and records."""
    def one(question: str) -> tuple[float, dict]:
        started = time.perf_counter()
        response = httpx.post(f"{url}/ask", json={"question": question, **body}, timeout=600)
        response.raise_for_status()
        return time.perf_counter() - started, response.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, questions))
    return time.perf_counter() - started, [r[0] for r in results], [r[1] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=["simulated", "embedded"], default="simulated")
    parser.add_argument("--requests", type=int, default=48, help="requests per server (distinct questions)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pass-ms", type=float, default=250.0, help="simulated: cost of one generation call")
    parser.add_argument("--row-ms", type=float, default=2.0, help="simulated: added cost per row of a call")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=32, help="embedded: sampling.max_new_tokens")
    args = parser.parse_args()

    faq = [json.loads(line)["question"] for line in (ROOT / "examples" / "faq.jsonl").read_text("utf-8").splitlines()]
    questions = [f"{faq[i % len(faq)]}" + (f" (variant {i // len(faq)})" if i >= len(faq) else "")
                 for i in range(args.requests)]
    env: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.generator == "simulated":
            common = ["--guard", "serve_fakes:build_guard"]
            env = {"RAGGUARD_FAKE_PASS_MS": str(args.pass_ms), "RAGGUARD_FAKE_ROW_MS": str(args.row_ms)}
        else:
            config = Path(tmp) / "bench.yaml"
            config.write_text(f"sampling:\n  max_new_tokens: {args.max_tokens}\n", encoding="utf-8")
            common = ["--config", str(config)]
        common += ["--max-wait-ms", str(args.max_wait_ms), "--queue-size", str(4 * args.requests)]
        with ragguard_server([*common, "--max-batch", "1"], env=env, timeout=600) as alone_url, \
                ragguard_server([*common, "--max-batch", str(args.max_batch)], env=env, timeout=600) as batch_url:
            servers = {"alone": alone_url, f"batched (max {args.max_batch})": batch_url}
            body = {"samples": args.samples}
            for url in servers.values():  # warm-up
                load(url, ["warm-up: how many days of annual leave do I get?"], 1, body)
            wall = dict.fromkeys(servers, 0.0)
            latencies: dict[str, list[float]] = {name: [] for name in servers}
            records: dict[str, list[dict]] = {name: [] for name in servers}
            per_round = -(-len(questions) // args.rounds)
            for r in range(args.rounds):
                chunk = questions[r * per_round : (r + 1) * per_round]
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for name in order:
                    seconds, lat, recs = load(servers[name], chunk, args.concurrency, body)
                    wall[name] += seconds
                    latencies[name] += lat
                    records[name] += recs
    names = list(servers)
    print(f"ragguard serve, {args.generator} generator, {len(questions)} requests per server at concurrency "
          f"{args.concurrency}, {args.samples} samples, {args.rounds} alternating rounds")
    for name in names:
        lat = sorted(latencies[name])
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        print(f"  {name:<20} {len(lat) / wall[name]:7.2f} requests/s   p50 {statistics.median(lat) * 1000:7.0f} ms"
              f"   p95 {p95 * 1000:7.0f} ms")
    ratio = (len(latencies[names[1]]) / wall[names[1]]) / (len(latencies[names[0]]) / wall[names[0]])
    print(f"  throughput ratio batched / alone: {ratio:.2f}x")

    def key(record: dict) -> tuple:
        return record["answer"], record["verdict"], tuple(s["text"] for s in record["samples"])

    same = sum(key(a) == key(b) for a, b in zip(records[names[0]], records[names[1]], strict=True))
    print(f"  identical records (answer, verdict, every sample): {same}/{len(questions)}")


if __name__ == "__main__":
    main()
