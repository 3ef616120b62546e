"""QLoRA (4-bit NF4 base) against LoRA on a bfloat16 base: training tokens per second and memory.

Both runs use ragguard's own tuning code (``ragguard.tuning.tune``: base loading,
``prepare_model_for_kbit_training``, the seed-003 LoRA on q/k/v/o/gate/up/down
projections, gradient checkpointing, bfloat16 autocast) on a randomly
initialised Qwen2 (no download). Both models are loaded side by side and their
optimizer steps alternate, so load on a shared machine hits both alike; the
ratios printed at the end come from this one run.

* With CUDA: a Qwen2.5-0.5B-sized model (24 layers, hidden 896, vocabulary
  151936), batch 2 x 384 tokens. Memory = the model's resident bytes plus the
  peak extra memory of one training step (``torch.cuda.max_memory_allocated``).
* Without CUDA: a tiny Qwen2 so the script can be exercised on a CPU
  (bitsandbytes runs NF4 on the CPU, slowly). Memory = parameter and buffer bytes.

Usage: python bench/tune_qlora.py [--size auto|tiny|0.5b] [--steps N] [--seq N] [--batch 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SIZES = {
    "0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
                 tie_word_embeddings=True),
    "tiny": dict(vocab_size=2048, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                 tie_word_embeddings=True),
}


def build(size: str, folder: Path) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**SIZES[size]))
    model.to(torch.bfloat16).save_pretrained(str(folder), safe_serialization=True)
    return folder


def model_bytes(model) -> int:  # type: ignore[no-untyped-def]
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["auto", "tiny", "0.5b"], default="auto")
    parser.add_argument("--steps", type=int, default=None, help="measured optimizer steps per mode (10 GPU, 3 CPU)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per example (384 GPU, 128 CPU)")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()

    import torch

    from ragguard.generation.models import quiet_transformers
    from ragguard.tuning.config import TuneConfig
    from ragguard.tuning.data import Example
    from ragguard.tuning.tune import _load_base, _loss_sum, _wrap_lora, resolve_precision

    quiet_transformers()
    cuda = torch.cuda.is_available()
    args.steps = args.steps or (10 if cuda else 3)
    args.seq = args.seq or (384 if cuda else 128)
    size = args.size if args.size != "auto" else ("0.5b" if cuda else "tiny")
    device = "cuda" if cuda else "cpu"
    gen = torch.Generator().manual_seed(0)
    vocab = SIZES[size]["vocab_size"]
    half = args.seq // 2
    batch = []
    for _ in range(args.batch):
        ids = torch.randint(3, vocab, (args.seq,), generator=gen).tolist()
        batch.append(Example(0, "rag", ids, [-100] * half + ids[half:], half, False))

    with tempfile.TemporaryDirectory() as tmp:
        folder = build(size, Path(tmp))
        runs = {}
        for mode, four_bit in (("4bit-nf4", True), ("bf16", False)):
            cfg = TuneConfig().with_overrides({"model.base": str(folder), "model.load_in_4bit": four_bit,
                                               "train.bf16": "true", "model.device": device})
            weights, compute, autocast = resolve_precision(cfg, device)
            before = torch.cuda.memory_allocated() if cuda else 0
            model = _wrap_lora(_load_base(cfg, str(folder), device, weights, compute), cfg)
            model.train()
            resident = (torch.cuda.memory_allocated() - before) if cuda else model_bytes(model)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
            runs[mode] = {"model": model, "opt": opt, "autocast": autocast, "resident": resident, "seconds": 0.0,
                          "step_peak": 0, "params": params}

        def step(run: dict, measure: bool) -> None:
            if cuda:
                torch.cuda.synchronize()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            loss, n = _loss_sum(run["model"], batch, 0, device, run["autocast"])
            (loss / n).backward()
            run["opt"].step()
            run["opt"].zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
                run["step_peak"] = max(run["step_peak"], torch.cuda.max_memory_allocated() - base)
            if measure:
                run["seconds"] += time.perf_counter() - t

        for run in runs.values():  # warm-up (kernel selection, allocator)
            step(run, False)
        for i in range(args.steps):
            for run in runs.values():
                step(run, True)
            print(f"step {i + 1}/{args.steps}: " + ", ".join(f"{m} {r['seconds']:.1f}s" for m, r in runs.items()),
                  flush=True)

    tokens = args.steps * args.batch * args.seq
    print(f"\nmodel: random Qwen2 '{size}', device {torch.cuda.get_device_name() if cuda else 'cpu'}, "
          f"batch {args.batch} x {args.seq} tokens, {args.steps} measured steps per mode (alternating)")
    print(f"{'mode':<10} {'tokens/s':>10} {'memory MiB':>11}  (resident model + peak of one step)")
    figures = {}
    for mode, r in runs.items():
        memory = (r["resident"] + r["step_peak"]) / 2**20
        figures[mode] = (tokens / r["seconds"], memory)
        print(f"{mode:<10} {figures[mode][0]:>10.1f} {memory:>11.1f}")
    (q_tps, q_mem), (b_tps, b_mem) = figures["4bit-nf4"], figures["bf16"]
    print(f"ratios 4-bit / bf16: speed {q_tps / b_tps:.2f}x, memory {q_mem / b_mem:.2f}x")


if __name__ == "__main__":
    main()
