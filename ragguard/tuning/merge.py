"""``ragguard merge``: fold a LoRA adapter into a copy of its base, and prove the copy behaves the same.

Seed 004 describes an adapter that works on its own and a model that speaks
garbage once the adapter is merged. So a merge here:

1. loads the adapter model as it was tested: the base exactly as during
   tuning (4-bit with the recorded bitsandbytes config, or the recorded dtype)
   with the adapter kept separate;
2. builds the merged copy in float32 or a 16-bit dtype, never in 4-bit: a
   4-bit base is dequantized first (``into='dequantized'``, the weights the
   adapter was trained against) or, if asked, the original weights are used
   (``into='original'``, which ignores the quantization error the adapter
   learned around; the parity check shows what that costs);
3. compares the two on probe prompts over 64 greedy tokens: max |logit
   difference|, mean per-token KL and greedy agreement, against the
   tolerances of :func:`ragguard.tuning.adapters.parity_passes`;
4. writes the merged model only when parity holds (``force`` writes it
   anyway and records the failure). ``merge-parity.json`` is written either way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragguard.errors import ModelLoadError, UsageError
from ragguard.tuning.adapters import (
    AdapterMismatchError,
    compare_logits,
    greedy_tokens,
    load_peft,
    parity_passes,
    read_metadata,
    read_reference,
    require_safetensors,
    sequence_logits,
)

__all__ = ["MergeResult", "merge_adapter", "REPORT_FILE", "MERGE_META_FILE"]

logger = logging.getLogger("ragguard")

REPORT_FILE = "merge-parity.json"
MERGE_META_FILE = "ragguard-merge.json"
PROBE_QUESTIONS = (
    "Do employees without the payroll bank's debit card need an employment certificate?",
    "没有东桥银行借记卡的员工需要开在职证明吗？",
)


@dataclass
class MergeResult:
    """The outcome of a merge."""

    out: Path
    passed: bool
    written: bool
    report: dict[str, Any]


def _load_base(source: str, quant: dict[str, Any], dtype: str | None, device: str, trust_remote_code: bool) -> Any:
    """The base as recorded (``dtype=None``) or non-quantized in ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM

    from ragguard.generation.quantization import bnb_4bit_config
    from ragguard.generation.sources import refuse_pickled_weights

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dtype is None and quant.get("method") == "bitsandbytes-4bit":
        kwargs["quantization_config"] = bnb_4bit_config(quant["quant_type"], quant["double_quant"],
                                                        quant["compute_dtype"])
        kwargs["device_map"] = {"": device}
        kwargs["dtype"] = getattr(torch, quant["compute_dtype"])
    else:
        kwargs["dtype"] = getattr(torch, dtype or quant.get("dtype", "float32"))
    refuse_pickled_weights(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, **kwargs)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the base {source!r} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]})") from None
    if "quantization_config" not in kwargs:
        model = model.to(device)
    else:
        from ragguard.generation.hardware import prepare_4bit

        prepare_4bit(model, compute_dtype=quant["compute_dtype"],
                     remedy="tune the adapter again on an unquantised base (model.load_in_4bit: false)")
    return model.eval()


def _probe_prompts(adapter_dir: Path, tokenizer: Any, metadata: dict[str, Any]) -> list[list[int]]:
    """The validation prompts recorded at tuning, plus two RAG questions built like ``ask`` builds them."""
    from ragguard.generation.chat import chat_prompt_ids
    from ragguard.generation.prompts import build_messages

    prompts = [prompt for prompt, _, _ in (read_reference(adapter_dir) or [])]
    system = (metadata.get("prompt") or {}).get("system") or ""
    for question in PROBE_QUESTIONS:
        prompts.append(chat_prompt_ids(tokenizer, build_messages(question, [], system, 0)))
    return prompts


def merge_adapter(
    adapter_dir: str | Path,
    out: str | Path,
    *,
    dtype: str = "float32",
    into: str = "dequantized",
    force: bool = False,
    device: str = "auto",
    tokens: int = 64,
) -> MergeResult:
    """Merge the adapter in ``adapter_dir`` into a ``dtype`` copy of its base and write it to ``out``.

    Raises:
        UsageError: bad options, an ``out`` folder that is not empty, or an
            adapter without ragguard metadata.
        AdapterMismatchError: the base on disk is not the one the adapter was tuned on.
    """
    if dtype not in ("float32", "bfloat16", "float16"):
        raise UsageError(f"--dtype {dtype!r} is not supported: merge into float32, bfloat16 or float16 "
                         "(never into 4-bit weights)")
    if into not in ("dequantized", "original"):
        raise UsageError(f"--into {into!r}: use 'dequantized' or 'original'")
    adapter_dir, out = Path(adapter_dir), Path(out)
    metadata = read_metadata(adapter_dir)
    if metadata is None:
        raise UsageError(f"{str(adapter_dir)!r} has no ragguard-adapter.json: merge needs the base and "
                         "quantization recorded by `ragguard tune`")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file: give a folder for the merged model")
    # A folder that holds only the report of a merge whose parity failed may be merged into again (--force).
    if out.exists() and {p.name for p in out.iterdir()} - {REPORT_FILE}:
        raise UsageError(f"--out {str(out)!r} is not empty: choose a new folder")
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        from transformers import AutoTokenizer
    except ImportError:
        raise ModelLoadError('merging needs peft: run `pip install "ragguard[peft]"`') from None
    from ragguard.generation.models import quiet_transformers
    from ragguard.generation.sources import resolve_device, resolve_model_source

    quiet_transformers()
    require_safetensors(adapter_dir)  # peft would read an adapter_model.bin with torch.load, or go to the hub
    device = resolve_device(device)
    base = metadata["base"]
    quant = metadata.get("quantization") or {"method": "none", "dtype": "float32"}
    trust = bool((metadata.get("training") or {}).get("model", {}).get("trust_remote_code", False))
    source, sha = resolve_model_source(base["model"], base.get("gguf_file"), key="the adapter's base")
    if base.get("sha256") and sha and sha != base["sha256"]:
        raise AdapterMismatchError(f"the base {base['model']!r} on disk has weights sha256 {sha[:16]}…, the adapter "
                                   f"was tuned on {base['sha256'][:16]}…: merge onto the base it was tuned on")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)

    # 1. the adapter model, kept separate: on the 4-bit base as tested, or on the base in the merge
    #    dtype (so that only the merge itself is measured)
    quantized = quant.get("method") == "bitsandbytes-4bit"
    logger.info("1/3 loading the base %s with the adapter kept separate (the reference)", base["model"])
    reference_base = _load_base(source, quant, None if quantized else dtype, device, trust)
    reference = load_peft(reference_base, adapter_dir).eval()
    # A 4-bit reference computing in 16 bits cannot be matched to float32 precision: judge by the 16-bit rule.
    rule_dtype = dtype if not quantized or quant.get("compute_dtype") == "float32" else quant["compute_dtype"]
    # 2. the merged copy, in float32 or 16-bit
    logger.info("2/3 loading the base again and merging the adapter into %s weights", dtype)
    if quantized and into == "dequantized":
        plain = _load_base(source, quant, None, device, trust)
        plain = plain.dequantize().to(getattr(torch, dtype))  # never merge into 4-bit weights
    else:
        plain = _load_base(source, quant, dtype, device, trust)
    merged = load_peft(plain, adapter_dir).merge_and_unload(safe_merge=True)
    merged.eval()

    # 3. parity on probe prompts over `tokens` greedy tokens of the adapter model
    ref_logits, merged_logits = [], []
    prompts = _probe_prompts(adapter_dir, tokenizer, metadata)
    logger.info("3/3 comparing the two on %d probe prompt(s), %d greedy tokens each", len(prompts), tokens)
    for prompt in prompts:
        continuation = greedy_tokens(reference, prompt, tokens)
        ids = list(prompt) + continuation[:-1]
        ref_logits.append(sequence_logits(reference, ids)[len(prompt) - 1 :])
        merged_logits.append(sequence_logits(merged, ids)[len(prompt) - 1 :])
    parity = compare_logits(ref_logits, merged_logits)
    passed, rule = parity_passes(parity, rule_dtype)
    write = passed or force
    report = {
        "adapter": str(adapter_dir),
        "base": {"model": base["model"], "sha256": base.get("sha256")},
        "adapter_quantization": quant,
        "merged_dtype": dtype,
        "merged_into": ("dequantized 4-bit weights" if quantized and into == "dequantized"
                        else "original weights"),
        "probes": len(ref_logits),
        "tokens_per_probe": tokens,
        "figures": parity.to_dict(),
        "rule": rule,
        "passed": passed,
        "forced": bool(force and not passed),
        "written": write,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if write:
        merged.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
        meta = {"kind": "ragguard-merged-model", "parity": report, "parity_passed": passed,
                "forced": report["forced"], "adapter_metadata": metadata}
        (out / MERGE_META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return MergeResult(out, passed, write, report)
