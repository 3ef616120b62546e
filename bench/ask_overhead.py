"""How much does a full `ask` cost over one plain greedy generation?

Measured side by side in one run on the embedded model (absolute seconds are
noise on shared machines; the ratios are the result):

* ask(N)/greedy: a full ``RagGuard.ask`` with N samples (retrieval, one
  batched generation pass, embedding, clustering) over a single greedy
  generation of the same prompt with the same ``max_new_tokens``, both
  timed in the same process, interleaved, best of ``--repeats``.
* equal length: N rows against 1 row, every row decoding exactly
  ``max_new_tokens`` (the pure cost of the extra rows, with answer length
  taken out);
* log-probabilities: N rows of ``max_new_tokens`` each decoded with the
  tokens' log-probabilities recorded and without (the generator's
  ``record_logprobs``), interleaved, best of ``--repeats``; the tokens must be
  the same;
* cold vs warm start: ``ragguard ask --json --samples 1`` in a fresh process
  with an empty cache (pays the one-off GGUF conversion) and again with the
  cache filled.

Usage: python bench/ask_overhead.py [--samples 5] [--repeats 3] [--no-startup] [--logprobs-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

QUESTION = "Do employees without the payroll bank's debit card need an employment certificate?"


def _startup(cache: str) -> float:
    env = {**os.environ, "RAGGUARD_CACHE": cache}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ragguard", "ask", QUESTION, "--json", "--samples", "1"],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ragguard ask failed: {proc.stderr.strip()}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm process start measurement")
    parser.add_argument("--logprobs-only", action="store_true",
                        help="only measure the cost of recording the tokens' log-probabilities")
    args = parser.parse_args()

    from ragguard.generation.prompts import build_messages
    from ragguard.pipeline import RagGuard

    guard = RagGuard.from_config(None)
    cfg = guard.config
    guard.generator.load()  # type: ignore[attr-defined]
    passages = guard.retriever.search(QUESTION, cfg.retrieval.top_k)  # type: ignore[union-attr]
    messages = build_messages(QUESTION, passages, cfg.prompt.system, cfg.prompt.max_context_chars)
    guard.ask(QUESTION, samples=args.samples)  # warm every code path once
    if args.logprobs_only:
        _logprob_cost(guard, messages, args.samples, args.repeats)
        return

    greedy_times, ask_times, tokens = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        prompt_ids = guard.generator.encode_prompt(messages)  # type: ignore[attr-defined]
        rows = guard.generator.generate_tokens(prompt_ids, [None])  # type: ignore[attr-defined]
        greedy_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = guard.ask(QUESTION, samples=args.samples)
        ask_times.append(time.perf_counter() - t)
        tokens.append((len(rows[0]), report))
    greedy, full = min(greedy_times), min(ask_times)
    report = tokens[-1][1]
    gen_share = report.timings["generate"] / report.timings["total"]
    print(f"model: {guard.generator.name}  device: {guard.generator.device}  "  # type: ignore[attr-defined]
          f"attn: {cfg.generator.attn_implementation}  max_new_tokens: {cfg.sampling.max_new_tokens}")
    print(f"greedy answer tokens: {tokens[-1][0]}  ask sample lengths (chars): {[len(s.text) for s in report.samples]}")
    print(f"greedy generation: {greedy:.2f}s   ask (N={args.samples}): {full:.2f}s   "
          f"ratio ask/greedy: {full / greedy:.2f}")
    # Equal length: every row decodes max_new_tokens, so only the batching overhead remains.
    prompt_ids = guard.generator.encode_prompt(messages)  # type: ignore[attr-defined]
    seeds = [None] + list(range(1, args.samples))
    one, many = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        guard.generator.generate_tokens(prompt_ids, [None], ignore_stop=True)  # type: ignore[attr-defined]
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        guard.generator.generate_tokens(prompt_ids, seeds, ignore_stop=True)  # type: ignore[attr-defined]
        many.append(time.perf_counter() - t)
    print(f"equal length ({cfg.sampling.max_new_tokens} tokens per row): 1 row {min(one):.2f}s, "
          f"{args.samples} rows {min(many):.2f}s, ratio {min(many) / min(one):.2f}")
    print(f"share of ask spent generating: {gen_share:.1%}  "
          f"(retrieve {report.timings.get('retrieve', 0):.3f}s, check {report.timings['check']:.3f}s)")
    _logprob_cost(guard, messages, args.samples, args.repeats)

    if not args.no_startup:
        with tempfile.TemporaryDirectory() as cache:
            cold = _startup(cache)
            warm = _startup(cache)
        print(f"process start to answer (N=1): cold {cold:.1f}s (includes GGUF conversion), warm {warm:.1f}s, "
              f"cold/warm {cold / warm:.1f}x")


def _logprob_cost(guard: object, messages: list[dict[str, str]], samples: int, repeats: int) -> None:
    """N rows of max_new_tokens each, with and without the tokens' log-probabilities (interleaved)."""
    gen = guard.generator  # type: ignore[attr-defined]
    prompt_ids = gen.encode_prompt(messages)
    seeds = [None] + list(range(1, samples))
    times: dict[bool, list[float]] = {True: [], False: []}
    tokens: dict[bool, object] = {}
    for _ in range(repeats):
        for record in (False, True):
            t = time.perf_counter()
            tokens[record] = gen.decode_batch([prompt_ids], [seeds], ignore_stop=True, logprobs=record)[0]
            times[record].append(time.perf_counter() - t)
    if tokens[True] != tokens[False]:
        raise SystemExit("recording log-probabilities changed the tokens")
    off, on = min(times[False]), min(times[True])
    steps = len(seeds) * guard.config.sampling.max_new_tokens  # type: ignore[attr-defined]
    print(f"log-probabilities ({samples} rows x {guard.config.sampling.max_new_tokens} tokens): "  # type: ignore[attr-defined]
          f"off {off:.3f}s, on {on:.3f}s, ratio on/off {on / off:.3f} "
          f"({(on - off) / steps * 1e6:+.0f} us per token)")


if __name__ == "__main__":
    main()
