"""Audit throughput: batched generation against a loop of single asks.

The same questions (the first 32 of examples/faq.jsonl by default) are
answered twice with the embedded model, interleaved chunk by chunk so that
load on a shared machine hits both sides alike: for each chunk of
``--batch`` questions, first one ``RagGuard.ask`` per question (``ragguard
audit --batch 1``), then one ``RagGuard.ask_many`` over the chunk
(``ragguard audit --batch N``, the default). Prints questions per minute for
both, the ratio, and how many records agree (same verdict; same samples
token for token: the batch-invariance figure on the real model).

Usage: python bench/audit_throughput.py [--questions 32] [--batch 8] [--samples 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--faq", default=str(ROOT / "examples" / "faq.jsonl"))
    args = parser.parse_args()

    from ragguard.pipeline import RagGuard

    guard = RagGuard.from_config(None)
    guard.config = guard.config.replace("sampling", samples=args.samples)
    guard.generator.load()  # type: ignore[attr-defined]
    guard.ask("warm-up question: how many days of annual leave do I get?")

    lines = Path(args.faq).read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines[: args.questions]]
    single_time = batched_time = 0.0
    single, batched = [], []
    for start in range(0, len(questions), args.batch):
        chunk = questions[start : start + args.batch]
        t = time.perf_counter()
        single += [guard.ask(q) for q in chunk]
        single_time += time.perf_counter() - t
        t = time.perf_counter()
        batched += guard.ask_many(chunk)
        batched_time += time.perf_counter() - t
        print(f"{start + len(chunk)}/{len(questions)} questions: single {single_time:.0f}s, batched {batched_time:.0f}s",
              flush=True)
    n = len(questions)
    same_verdict = sum(a.verdict == b.verdict for a, b in zip(single, batched, strict=True))
    same_samples = sum(
        [s.text for s in a.samples] == [s.text for s in b.samples] for a, b in zip(single, batched, strict=True)
    )
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "timings"}  # noqa: E731
    same_record = sum(strip(a) == strip(b) for a, b in zip(single, batched, strict=True))
    qpm_single, qpm_batched = n / single_time * 60, n / batched_time * 60
    print(f"questions: {n}  samples per question: {args.samples}  batch: {args.batch}")
    print(f"single asks: {single_time:.1f}s ({qpm_single:.1f} q/min)   batched: {batched_time:.1f}s "
          f"({qpm_batched:.1f} q/min)   speed-up: {qpm_batched / qpm_single:.2f}x")
    print(f"same verdict: {same_verdict}/{n}   same samples (token for token): {same_samples}/{n}   "
          f"identical records (all but timings): {same_record}/{n}")
    differ: dict[str, int] = {}
    for a, b in zip(single, batched, strict=True):
        for field in {path for path, _ in set(_leaves(strip(a))) ^ set(_leaves(strip(b)))}:
            differ[field] = differ.get(field, 0) + 1
    fields = ", ".join(f"{k} ({v})" for k, v in sorted(differ.items())) or "none"
    print(f"fields that differ between asked alone and batched (records): {fields}")


def _leaves(value: object, path: str = "") -> list[tuple[str, str]]:
    """(field path, value) pairs of a record (list items as ``[i]``), to name the fields that differ."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}[{i}]")]
    return [(path, repr(value))]


if __name__ == "__main__":
    main()
