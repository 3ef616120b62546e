"""What does consistency checking cost, and what does adaptive sampling save?

Side by side in one run on the embedded model:

1. ``ask`` with N samples against one greedy generation of the same prompt
   (best of ``--repeats``), in each decoding mode in alternation: the
   default, without shared-prefix attention, without the small-batch linear
   path, and plain transformers decoding (``ragguard.generation.decoding``); and the share
   of ``ask`` spent in checking (embedding the answers and passages,
   clustering, detectors) relative to generation. Then the same ratio over
   the first ``--cost-questions`` questions of examples/faq.jsonl (sum of the
   ask times over sum of the greedy times, default decoding): one question's
   ratio hangs on how long its greedy answer happens to be.
2. Adaptive vs fixed N over examples/faq.jsonl. Every question is asked
   once with N samples; the adaptive result is then computed from the same
   samples: each round's prefix (greedy + 2, then half way, then N; see
   ``ragguard.adaptive.adaptive_rounds``) is checked, and the first one that
   agrees or already contradicts is what adaptive mode returns. This equals
   running with ``sampling.adaptive: true`` because sample seeds derive from
   the sample index (tests/test_scores_and_policy.py checks that).
   Prints the mean samples drawn, the share of unchanged verdicts and of
   unchanged answers, and why adaptive mode stopped. With ``--reseed``, every
   question is also asked with N samples from the next base seed: how often two
   fixed-N runs agree is the yardstick for adaptive's "unchanged" share.

Usage: python bench/consistency_cost.py [--samples 8] [--repeats 2] [--questions 36] [--temperature T] [--seed S]
       [--cost-questions 8] [--skip-cost] [--reseed]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Do employees without the payroll bank's debit card need an employment certificate?"


def prompt_ids(guard: Any, cfg: Any, question: str) -> list[int]:
    """The token ids ``ask`` generates from for ``question``: retrieved passages in the chat prompt."""
    from ragguard.generation.prompts import build_messages

    passages = guard.retriever.search(question, cfg.retrieval.top_k)
    return guard.generator.encode_prompt(
        build_messages(question, passages, cfg.prompt.system, cfg.prompt.max_context_chars))


def cost(guard: Any, cfg: Any, samples: int, repeats: int) -> None:
    """Part 1 of the module docstring."""
    prompt = prompt_ids(guard, cfg, QUESTION)
    # Each decoding mode (see ragguard.generation.decoding) measured in alternation, best of --repeats.
    from ragguard.generation.decoding import speed_up_small_batches

    gen: Any = guard.generator
    modes = {  # name: (preallocated cache, shared-prefix attention, small-batch linear)
        "default": (True, True, True),
        "without shared-prefix attention": (True, False, True),
        "without small-batch linear": (True, True, False),
        "plain transformers (concatenating cache, neither)": (False, False, False),
    }
    timing: dict[tuple[str, str], list[float]] = {}
    check_share = []
    for _ in range(repeats):
        for name, (preallocate, share, small) in modes.items():
            gen.preallocate_cache, gen.share_prefix = preallocate, share
            speed_up_small_batches(gen.model, on=small)
            t = time.perf_counter()
            gen.generate_tokens(prompt, [None])
            timing.setdefault((name, "greedy"), []).append(time.perf_counter() - t)
            t = time.perf_counter()
            report = guard.ask(QUESTION)
            timing.setdefault((name, "ask"), []).append(time.perf_counter() - t)
            if name == "default":
                check_share.append(report.timings["check"] / report.timings["generate"])
    best = {k: min(v) for k, v in timing.items()}
    for name in modes:
        ask_s, greedy_s = best[(name, "ask")], best[(name, "greedy")]
        print(f"{name}: ask N={samples} {ask_s:.2f}s, one greedy generation {greedy_s:.2f}s, "
              f"ratio {ask_s / greedy_s:.2f}"
              + ("" if name == "default" else f"; default ask is {ask_s / best[('default', 'ask')]:.2f}x faster"))
    print(f"checking / generation: {min(check_share):.1%}")
    gen.preallocate_cache, gen.share_prefix = True, True
    speed_up_small_batches(gen.model, on=True)
    tok = gen.tokenizer
    lengths = [len(tok(s.text).input_ids) for s in report.samples]
    print(f"answer lengths in tokens (max_new_tokens {cfg.sampling.max_new_tokens}): greedy {lengths[0]}, "
          f"samples {lengths[1:]}: the pass runs as long as its longest row")


def faq_cost(guard: Any, cfg: Any, samples: int, count: int) -> None:
    """The ask / greedy ratio summed over several FAQ questions (default decoding, each timed once)."""
    gen: Any = guard.generator
    lines = (ROOT / "examples" / "faq.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    ask_s = greedy_s = 0.0
    check_s = generate_s = 0.0
    greedy_len, longest = [], []
    for line in lines:
        question = json.loads(line)["question"]
        prompt = prompt_ids(guard, cfg, question)
        t = time.perf_counter()
        greedy = gen.generate_tokens(prompt, [None])[0]
        greedy_s += time.perf_counter() - t
        t = time.perf_counter()
        report = guard.ask(question)
        ask_s += time.perf_counter() - t
        check_s += report.timings.get("check", 0.0)
        generate_s += report.timings.get("generate", 0.0)
        greedy_len.append(len(greedy))
        longest.append(max(len(gen.tokenizer(s.text).input_ids) for s in report.samples) if report.samples else 0)
    if lines:
        print(f"over the first {len(lines)} FAQ questions: ask N={samples} {ask_s:.1f}s, greedy {greedy_s:.1f}s, "
              f"ratio {ask_s / greedy_s:.2f}; greedy answers {sum(greedy_len) / len(lines):.0f} tokens on average, "
              f"longest row {sum(longest) / len(lines):.0f}; checking / generation {check_s / generate_s:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=36)
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the config's)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: the config's)")
    parser.add_argument("--cost-questions", type=int, default=8, help="FAQ questions for the summed ask / greedy ratio")
    parser.add_argument("--skip-cost", action="store_true", help="only the adaptive vs fixed comparison")
    parser.add_argument("--reseed", action="store_true", help="also compare fixed N with fixed N from the next seed")
    args = parser.parse_args()

    from ragguard.adaptive import adaptive_rounds, settled
    from ragguard.pipeline import RagGuard
    guard = RagGuard.from_config(None)
    cfg = guard.config.replace("sampling", samples=args.samples)
    if args.temperature is not None:
        cfg = cfg.replace("sampling", temperature=args.temperature)
    if args.seed is not None:
        cfg = cfg.replace("sampling", seed=args.seed)
    guard.config = cfg
    guard.generator.load()  # type: ignore[attr-defined]
    guard.ask(QUESTION)  # warm every code path once

    if args.skip_cost or args.temperature is not None or args.seed is not None:
        if not args.skip_cost:
            print("--temperature, --seed: only the adaptive vs fixed comparison (the cost figures use the config's "
                  "sampling)")
    else:
        cost(guard, cfg, args.samples, args.repeats)
        faq_cost(guard, cfg, args.samples, args.cost_questions)

    lines = (ROOT / "examples" / "faq.jsonl").read_text(encoding="utf-8").splitlines()[: args.questions]
    if not lines:  # --questions 0: only the cost figures above
        return
    drawn, unchanged, same_answer, answered, reseeded = [], 0, 0, 0, 0
    stops: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    for line in lines:
        question = json.loads(line)["question"]
        fixed = guard.ask(question)
        verdicts[fixed.verdict] = verdicts.get(fixed.verdict, 0) + 1
        if args.reseed:
            reseeded += guard.ask(question, seed=cfg.sampling.seed + 1).verdict == fixed.verdict
        if not fixed.samples:  # abstained before generating (off-topic): both modes do the same
            unchanged += 1
            same_answer += 1
            continue
        answered += 1
        texts = [s.text for s in fixed.samples]
        seeds = [s.seed for s in fixed.samples]
        sources = [p.text for p in fixed.sources]
        for upto in adaptive_rounds(args.samples):
            adaptive = guard.check(question, texts[:upto], seeds[:upto], cfg, sources)
            why = settled(adaptive, args.samples) if upto < args.samples else "all drawn"
            if why:
                break
        stops[why] = stops.get(why, 0) + 1
        drawn.append(len(adaptive.samples))
        unchanged += adaptive.verdict == fixed.verdict
        same_answer += adaptive.answer == fixed.answer
    n = len(lines)
    mean = sum(drawn) / max(1, answered)
    print(f"adaptive vs fixed N={args.samples} over {n} FAQ questions ({answered} answered): mean samples "
          f"drawn {mean:.2f} of {args.samples} ({mean / args.samples:.0%}), verdict unchanged {unchanged}/{n} "
          f"({unchanged / n:.0%}), answer unchanged {same_answer}/{n}; stopped: "
          + ", ".join(f"{k} {v}" for k, v in sorted(stops.items())))
    if args.reseed:
        print(f"fixed N={args.samples} with seed {cfg.sampling.seed} vs seed {cfg.sampling.seed + 1}: verdict "
              f"unchanged {reseeded}/{n} ({reseeded / n:.0%})")
    print("fixed-N verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
          + " (adaptive saves samples only on questions whose answers agree or contradict early)")


if __name__ == "__main__":
    main()
