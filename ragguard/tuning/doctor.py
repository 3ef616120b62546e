"""``ragguard doctor``: prove, with numbers, that the model answers for the question alone.

The seeds behind ragguard name causes of answers that change for reasons
outside the question: a model left in train mode (dropout), nondeterministic
kernels, batch composition. Each check here measures one of them on the
loaded generator and reports its figures and a pass/fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Check",
    "run_checks",
    "eval_mode_check",
    "greedy_repeatability_check",
    "batch_invariance_check",
    "hardware_check",
    "quant_config_check",
    "adapter_reload_parity_check",
]

PROBES = (
    [5, 9, 14, 22, 7, 31],
    [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50],
)


@dataclass
class Check:
    """One doctor check (the ``checks[]`` entries of ``doctor --json``)."""

    name: str
    passed: bool
    figures: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "figures": self.figures, "detail": self.detail}


def eval_mode_check(model: Any) -> Check:
    """The model is in eval mode and no dropout layer would fire."""
    import torch

    modules = list(model.modules())
    training = [m for m in modules if m.training]
    dropout = [m for m in modules if isinstance(m, torch.nn.Dropout) and m.p > 0]
    active = [m for m in dropout if m.training]
    passed = not training
    detail = ("model in eval mode; dropout inactive" if passed else
              f"{len(training)} modules in train mode ({len(active)} active dropout layers): call model.eval() "
              "before generating; answers change run to run otherwise")
    return Check("eval_mode", passed, {"modules_in_train_mode": len(training), "active_dropout_layers": len(active),
                                      "dropout_layers": len(dropout)}, detail)


def _probe_prompts(generator: Any) -> list[list[int]]:
    tok = generator.tokenizer
    try:
        prompts = [
            generator.encode_prompt([{"role": "user", "content": "Do I need an employment certificate?"}]),
            generator.encode_prompt([{"role": "user", "content": "How many days of annual leave do I get each year?"}]),
        ]
        if all(prompts):
            return prompts
    except Exception:  # noqa: BLE001 - tokenizers without chat templates fall back to raw ids
        pass
    vocab = getattr(tok, "vocab_size", 64) or 64
    return [[t % vocab for t in p] for p in PROBES]


def greedy_repeatability_check(generator: Any, repeats: int = 2) -> Check:
    """The same prompt decoded greedily twice gives the same tokens."""
    prompt = _probe_prompts(generator)[0]
    runs = [generator.generate_tokens(prompt, [None], ignore_stop=True)[0] for _ in range(repeats)]
    same = all(r == runs[0] for r in runs)
    first_diff = next((i for i, pair in enumerate(zip(*runs, strict=False)) if len(set(pair)) > 1), -1)
    return Check(
        "greedy_repeatability", same,
        {"runs": repeats, "tokens": len(runs[0]), "first_differing_token": first_diff},
        "identical tokens in every run" if same else
        f"greedy runs differ from token {first_diff}: nondeterministic kernels; use attn_implementation 'eager' "
        "or transformers.enable_full_determinism()",
    )


def batch_invariance_check(generator: Any) -> Check:
    """A seeded sample is the same alone and inside a padded batch with another prompt."""
    a, b = _probe_prompts(generator)
    seeds = [None, 1234, 5678]
    alone = generator.generate_tokens(a, seeds, ignore_stop=True)
    batch = generator.generate_tokens_batch([b, a], [[None, 99], seeds], ignore_stop=True)[1]
    rows_same = sum(x == y for x, y in zip(alone, batch, strict=True))
    tokens = sum(len(x) for x in alone)
    differing = sum(sum(p != q for p, q in zip(x, y, strict=False)) + abs(len(x) - len(y))
                    for x, y in zip(alone, batch, strict=True))
    passed = rows_same == len(seeds)
    return Check(
        "batch_invariance", passed,
        {"rows": len(seeds), "rows_identical": rows_same, "tokens": tokens, "tokens_differing": differing},
        "samples identical alone and in a padded batch" if passed else
        "padding changed some tokens: the same question can get different samples alone and in a batch "
        "(verdicts may still agree); compare with ragguard audit batch_questions=1",
    )


def attention_check(generator: Any) -> Check:
    """Record the attention implementation and dtype (always passes; it is information)."""
    model = generator.model
    impl = getattr(model.config, "_attn_implementation", None) or "unknown"
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return Check("attention_dtype", True, {}, f"attention {impl}, weights {dtype}, device {generator.device}")


def hardware_check(generator: Any) -> Check:
    """Record the CPU's capability and the dtype chosen (always passes; it is information, issue 19).

    Tokens differ between float32 and bfloat16, and between AMX, AVX-512 and
    AVX2 kernels, so two machines agree only when this check reads the same.
    """
    from ragguard.generation import hardware

    features = hardware.cpu_features()
    cfg = getattr(generator, "gen_config", None)
    asked = getattr(cfg, "dtype", "auto")
    loaded = getattr(generator, "dtype", None) or hardware.model_dtype(generator.model)
    auto = hardware.auto_cpu_dtype()
    figures = {"amx_bf16": int(hardware.has_amx_bf16()), "avx512_bf16": int(bool(features.get("avx512_bf16"))),
               "packed_4bit_layers": hardware.packed_4bit_layers(generator.model)}
    name = features.get("cpu_name") or "unknown CPU"
    detail = (f"CPU {name}, capability {hardware.cpu_capability()}; generator.dtype {asked!r}, loaded {loaded} "
              f"(auto picks {auto} on this CPU: bfloat16 needs AMX-BF16)")
    if figures["packed_4bit_layers"]:
        detail += f"; {figures['packed_4bit_layers']} 4-bit layers take bitsandbytes' packed AVX512-BF16 path"
    return Check("hardware", True, figures, detail)


def quant_config_check(generator: Any) -> Check:
    """The base hash and quantization loaded now are those recorded in the adapter's metadata (seed 001)."""
    from ragguard.tuning.adapters import META_FILE, metadata_differences, read_metadata

    metadata = read_metadata(generator.adapter)
    loaded = generator.quantization or {}
    if metadata is None:
        return Check("quant_config", False, {"differences": -1},
                     f"the adapter has no {META_FILE}: the quantization it was tuned with is unknown "
                     "(tune it with ragguard tune, which records it)")
    problems = metadata_differences(metadata, generator.model_sha256, generator.quantization)
    shown = ", ".join(f"{k}={v}" for k, v in loaded.items())
    return Check("quant_config", not problems, {"differences": len(problems)},
                 f"loaded as tuned ({shown})" if not problems else "; ".join(problems))


def adapter_reload_parity_check(generator: Any) -> Check:
    """The adapter loaded from disk reproduces the model recorded right after tuning.

    ``ragguard tune`` records, for a few validation prompts, the greedy tokens
    and logits of the in-memory model (``parity-reference.safetensors``). Here
    the loaded model is teacher-forced along those tokens. In float32 the
    logits must be bitwise identical; otherwise mean KL <= 1e-3 nats and
    >= 99 % greedy agreement.
    """
    from ragguard.tuning.adapters import REFERENCE_FILE, parity_passes, read_reference, reference_parity

    reference = read_reference(generator.adapter)
    round_trip = not reference
    if round_trip:
        # An adapter tuned elsewhere: save the loaded adapter, reload it on a fresh base, compare.
        reference, parity = _save_and_reload_parity(generator)
    else:
        parity = reference_parity(generator.model, reference)
    quant = generator.quantization or {}
    dtype = quant.get("compute_dtype") or quant.get("dtype") or "float32"
    if dtype == "float32":
        passed = parity.bitwise_identical
        rule = "float32: bitwise identical logits and tokens"
    else:
        passed, rule = parity_passes(parity, dtype)
    figures = {"probes": len(reference), **parity.to_dict()}
    if round_trip:
        detail = (f"saved and reloaded in-process, the adapter gives the same model ({rule}); it has no "
                  f"{REFERENCE_FILE}, so whether it reproduces the model it was tuned as is unknown"
                  if passed else
                  f"saving and reloading the adapter changes the model (rule {rule}): max |logit diff| "
                  f"{parity.max_abs_logit_diff:.3g}, greedy agreement {parity.greedy_agreement:.1%}")
    else:
        detail = (f"reloaded adapter reproduces the tuned model ({rule})" if passed else
                  f"reloaded adapter differs from the tuned model (rule {rule}): max |logit diff| "
                  f"{parity.max_abs_logit_diff:.3g}, greedy agreement {parity.greedy_agreement:.1%}; load it with "
                  "the recorded quantization, dtype and attention implementation, on the same kind of device")
    return Check("adapter_reload_parity", passed, figures, detail)


def _save_and_reload_parity(generator: Any, tokens: int = 16) -> tuple[list[Any], Any]:
    """Record the loaded adapter model on the probes, save the adapter, load it again, compare."""
    import dataclasses
    import shutil
    import tempfile
    from pathlib import Path

    from ragguard.tuning.adapters import META_FILE, greedy_tokens, reference_parity, sequence_logits

    model = generator.model
    reference = []
    for prompt in _probe_prompts(generator):
        continuation = greedy_tokens(model, prompt, tokens)
        logits = sequence_logits(model, list(prompt) + continuation[:-1])[len(prompt) - 1 :]
        reference.append((list(prompt), continuation, logits))
    with tempfile.TemporaryDirectory(prefix="ragguard-adapter-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if (Path(generator.adapter) / META_FILE).is_file():
            shutil.copy(Path(generator.adapter) / META_FILE, Path(tmp) / META_FILE)
        again = type(generator)(dataclasses.replace(generator.gen_config, adapter=tmp, adapter_mismatch="warn"),
                                generator.sampling)
        again.load()
        parity = reference_parity(again.model, reference)
    return reference, parity


def traditional_chinese_check() -> Check:
    """Whether Traditional Chinese can be read as Simplified (:mod:`ragguard.core.script`): OpenCC's table is found."""
    from ragguard.core import script

    size = len(script._table())
    if size:
        return Check("traditional_chinese", True, {"characters": size},
                     f"{size} Traditional characters are read as Simplified by the detectors and the grounding")
    return Check("traditional_chinese", False, {"characters": 0},
                 "OpenCC's character table (opencc-python-reimplemented) is not found: Traditional Chinese answers "
                 "go past the Chinese detectors; `pip install opencc-python-reimplemented` (another 'opencc' package "
                 "installed in its place hides it)")


def run_checks(generator: Any) -> list[Check]:
    """Every check that needs only the loaded generator (plus the adapter checks when one is loaded)."""
    checks = [eval_mode_check(generator.model)]
    generator.model.eval()  # the remaining checks measure the model as ragguard runs it
    checks += [greedy_repeatability_check(generator), batch_invariance_check(generator), attention_check(generator),
               hardware_check(generator), traditional_chinese_check()]
    if getattr(generator, "adapter", None):
        checks += [quant_config_check(generator), adapter_reload_parity_check(generator)]
    return checks
