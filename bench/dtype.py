"""float32 against bfloat16 on this CPU, side by side in one run, with the embedded model (issue 19).

``generator.dtype: auto`` picks bfloat16 only where the CPU has AMX-BF16
(``ragguard.generation.hardware``). This measures what that choice is
worth here, through ragguard's own decode loop (shared-prefix attention and
small-batch linear as shipped), on the embedded SmolLM2-135M and the ask
prompt of the first question of examples/faq.jsonl with its retrieved
context:

* prefill: one forward over the prompt (logits of the last position);
* greedy: one greedy row of ``--tokens`` new tokens;
* N rows: ``--samples`` rows (greedy + seeded) of ``--tokens`` tokens each;
* greedy agreement: whether the two dtypes' greedy answers have the same tokens.

Timings are the best of ``--repeats``, the dtypes interleaved; the CPU's
name, ATen capability and bf16-related flags are printed next to them.

Usage: python bench/dtype.py [--samples 8] [--tokens 48] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = parser.parse_args()

    import torch

    from ragguard.config import Config
    from ragguard.generation import hardware
    from ragguard.generation.generators import TransformersGenerator
    from ragguard.generation.prompts import build_messages
    from ragguard.pipeline import RagGuard

    if args.threads:
        torch.set_num_threads(args.threads)
    features = hardware.cpu_features()
    flags = [k for k in ("avx2", "avx512_f", "avx512_bf16", "amx_tile", "amx_bf16") if features.get(k)]
    print(f"CPU: {features.get('cpu_name', 'unknown')}  capability: {hardware.cpu_capability()}  "
          f"flags: {' '.join(flags)}  threads: {torch.get_num_threads()}  torch {torch.__version__}")
    print(f"dtype auto picks here: {hardware.auto_cpu_dtype()}")

    question = json.loads((ROOT / "examples" / "faq.jsonl").read_text(encoding="utf-8").splitlines()[0])["question"]
    guard = RagGuard.from_config(None)
    cfg = guard.config
    passages = guard.retriever.search(question, cfg.retrieval.top_k)  # type: ignore[union-attr]
    messages = build_messages(question, passages, cfg.prompt.system, cfg.prompt.max_context_chars)
    sampling = Config().replace("sampling", max_new_tokens=args.tokens).sampling
    gens = {}
    for dtype in ("float32", "bfloat16"):
        gen = TransformersGenerator(dataclasses.replace(cfg.generator, dtype=dtype), sampling)
        gen.load()
        gens[dtype] = gen
    prompt = gens["float32"].encode_prompt(messages)
    seeds = [None, *range(1, args.samples)]
    print(f"question: {question!r}  prompt tokens: {len(prompt)}  new tokens: {args.tokens}  rows: {len(seeds)}")

    rows = f"{len(seeds)} rows"
    results: dict[str, dict[str, float]] = {d: {"prefill": 1e9, "greedy": 1e9, rows: 1e9} for d in gens}
    greedy: dict[str, list[int]] = {}
    ids = torch.tensor([prompt])
    for gen in gens.values():  # warm every path once
        gen.generate_tokens(prompt, seeds[:2], ignore_stop=True)
    for _ in range(args.repeats):  # the dtypes interleaved, so drifting machine load hits both
        for dtype, gen in gens.items():
            best = results[dtype]
            t = time.perf_counter()
            with torch.inference_mode():
                gen.model(input_ids=ids, logits_to_keep=1)
            best["prefill"] = min(best["prefill"], time.perf_counter() - t)
            t = time.perf_counter()
            greedy[dtype] = gen.generate_tokens(prompt, [None], ignore_stop=True)[0]
            best["greedy"] = min(best["greedy"], time.perf_counter() - t)
            t = time.perf_counter()
            gen.generate_tokens(prompt, seeds, ignore_stop=True)
            best[rows] = min(best[rows], time.perf_counter() - t)
    print(f"{'':<10}{'float32':>10}{'bfloat16':>10}{'fp32/bf16':>11}")
    for key in results["float32"]:
        a, b = results["float32"][key], results["bfloat16"][key]
        print(f"{key:<10}{a:>9.2f}s{b:>9.2f}s{a / b:>10.2f}x")
    same = sum(x == y for x, y in zip(greedy["float32"], greedy["bfloat16"], strict=False))
    print(f"greedy tokens equal in both dtypes: {same}/{len(greedy['float32'])} "
          f"({'identical' if greedy['float32'] == greedy['bfloat16'] else 'different'} answers)")


if __name__ == "__main__":
    main()
