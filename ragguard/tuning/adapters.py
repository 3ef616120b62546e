"""LoRA adapters written by ``ragguard tune``: their metadata, loading them, and parity figures.

An adapter folder holds the PEFT files (``adapter_config.json``,
``adapter_model.safetensors``) plus two ragguard files:

* ``ragguard-adapter.json``: the base model (id and weight hash), how its
  weights were held (quantization config or dtype), the prompt template,
  the training config, seeds, the environment and the final metrics;
* ``parity-reference.safetensors``: probe prompts, the greedy tokens the
  model gave right after training and its logits at the end of each prompt,
  so that a later load can prove it reproduces the model that was tested
  (seed 001).

Loading refuses an adapter whose recorded base hash or quantization differs
from what is loaded (``generator.adapter_mismatch: warn`` turns that into a
warning). Nothing here unpickles: weights and references are safetensors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragguard.errors import ModelLoadError
from ragguard.generation.decoding import cache_keyword, cache_of

__all__ = [
    "META_FILE",
    "REFERENCE_FILE",
    "AdapterMismatchError",
    "read_metadata",
    "write_metadata",
    "metadata_differences",
    "attach_adapter",
    "require_safetensors",
    "load_peft",
    "Parity",
    "compare_logits",
    "sequence_logits",
    "greedy_tokens",
    "write_reference",
    "read_reference",
    "reference_parity",
    "parity_passes",
]

logger = logging.getLogger("ragguard")

META_FILE = "ragguard-adapter.json"
REFERENCE_FILE = "parity-reference.safetensors"
META_FORMAT = 1

# Which generator config key sets each recorded quantization field (for the fix in the message).
_CONFIG_KEYS = {
    "method": "generator.load_in_4bit",
    "quant_type": "generator.bnb_4bit_quant_type",
    "double_quant": "generator.bnb_4bit_use_double_quant",
    "compute_dtype": "generator.bnb_4bit_compute_dtype",
    "dtype": "generator.dtype",
}


class AdapterMismatchError(ModelLoadError):
    """The adapter was trained on another base model or quantization than the one loaded."""


def read_metadata(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The adapter's ``ragguard-adapter.json`` (None when the folder has none)."""
    path = Path(adapter_dir) / META_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"adapter metadata {str(path)!r} cannot be read ({exc}): re-run ragguard tune") from None
    if not isinstance(data, dict) or data.get("format") != META_FORMAT:
        raise ModelLoadError(f"adapter metadata {str(path)!r} is not ragguard metadata format {META_FORMAT}: "
                             "re-run ragguard tune or remove the file")
    return data


def tuned_dtype(adapter_dir: str | Path | None) -> str | None:
    """The dtype an unquantised base was tuned in, from the adapter's metadata (None: unknown or 4-bit).

    ``generator.dtype: auto`` with an adapter loads this dtype rather than the
    CPU's choice (bfloat16 with AMX-BF16, issue 19): the adapter reproduces
    its tuned model only in the dtype it was tuned in.
    """
    if not adapter_dir or not Path(adapter_dir).is_dir():
        return None
    quant = (read_metadata(adapter_dir) or {}).get("quantization") or {}
    dtype = quant.get("dtype") if quant.get("method") == "none" else None
    return dtype if dtype in ("float32", "bfloat16", "float16") else None


def write_metadata(adapter_dir: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``ragguard-adapter.json`` (adds the format number)."""
    path = Path(adapter_dir) / META_FILE
    data = {"format": META_FORMAT, **metadata}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    return path


def metadata_differences(
    metadata: dict[str, Any], base_sha256: str | None, quantization: dict[str, Any] | None
) -> list[str]:
    """What differs between an adapter's recorded base and the base loaded now, one line each."""
    problems: list[str] = []
    recorded_sha = (metadata.get("base") or {}).get("sha256")
    if recorded_sha and base_sha256 and recorded_sha != base_sha256:
        problems.append(f"base model weights differ: adapter trained on sha256 {recorded_sha[:16]}…, "
                        f"loaded {base_sha256[:16]}… (load the base named in {META_FILE})")
    recorded_q = metadata.get("quantization") or {}
    if quantization is not None and recorded_q:
        if recorded_q.get("method") != quantization.get("method"):
            trained_4bit = recorded_q.get("method") == "bitsandbytes-4bit"
            problems.append(
                f"quantization differs: adapter trained on a {'4-bit' if trained_4bit else 'non-quantized'} base, "
                f"loaded {'4-bit' if not trained_4bit else 'non-quantized'} (set generator.load_in_4bit: "
                f"{str(trained_4bit).lower()})"
            )
        else:
            for key in sorted(set(recorded_q) | set(quantization)):
                if key == "method" or recorded_q.get(key) == quantization.get(key):
                    continue
                want = recorded_q.get(key)
                shown = str(want).lower() if isinstance(want, bool) else want
                problems.append(f"quantization differs: {key} trained {recorded_q.get(key)!r}, loaded "
                                f"{quantization.get(key)!r} (set {_CONFIG_KEYS.get(key, key)}: {shown})")
    return problems


def require_safetensors(folder: Path) -> None:
    """Refuse an adapter folder without ``adapter_model.safetensors`` (peft would unpickle a ``.bin``) or
    without ``adapter_config.json`` (peft would look the folder's name up on the hub)."""
    if not (folder / "adapter_model.safetensors").is_file():
        raise ModelLoadError(f"adapter folder {str(folder)!r} has no adapter_model.safetensors: ragguard loads "
                             "adapters only from safetensors (re-save it with save_pretrained(safe_serialization=True))")
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter folder {str(folder)!r} has no adapter_config.json (peft's rank, alpha and "
                             "target modules): copy it back from where the adapter was saved, or tune it again")


def load_peft(model: Any, folder: Path) -> Any:
    """``PeftModel.from_pretrained`` on a local folder (an absolute path: never a hub lookup), inference only.

    Raises:
        ModelLoadError: the adapter's weights do not fit ``model`` (another base, other shapes).
    """
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(Path(folder).resolve()), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        base = ((read_metadata(Path(folder)) or {}).get("base") or {}).get("model")
        named = (f"{base!r}, named in its {META_FILE}" if base else
                 f"it has no {META_FILE} to name it: pass the config of that base with --config")
        raise ModelLoadError(f"adapter {str(folder)!r} does not fit the loaded base "
                             f"{getattr(getattr(model, 'config', None), '_name_or_path', '') or ''!r} ({first}): "
                             f"load the base it was tuned on ({named})") from None


def attach_adapter(
    model: Any,
    adapter_dir: str | Path,
    *,
    base_sha256: str | None,
    quantization: dict[str, Any] | None,
    on_mismatch: str = "refuse",
) -> tuple[Any, list[str]]:
    """Put a LoRA adapter on ``model``, kept separate from the base, in eval mode.

    Returns the PEFT model and the problems found (empty when the adapter's
    metadata matches the loaded base).

    Raises:
        ModelLoadError: the folder is missing, holds no safetensors weights, or
            peft is not installed.
        AdapterMismatchError: the metadata names another base hash or
            quantization and ``on_mismatch`` is ``'refuse'``.
    """
    folder = Path(adapter_dir)
    if not folder.is_dir():
        raise ModelLoadError(f"adapter folder {str(folder)!r} does not exist: check generator.adapter")
    require_safetensors(folder)
    metadata = read_metadata(folder)
    if metadata is None:
        problems = [f"{str(folder)!r} has no {META_FILE}: its base model and quantization cannot be checked"]
        logger.warning("adapter %s", problems[0])
    else:
        problems = metadata_differences(metadata, base_sha256, quantization)
        if problems:
            message = f"adapter {str(folder)!r} does not match the loaded base: " + "; ".join(problems)
            if on_mismatch == "refuse":
                raise AdapterMismatchError(message + " (or set generator.adapter_mismatch: warn to load it anyway)")
            logger.warning("%s", message)
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ModelLoadError('loading an adapter needs peft: run `pip install "ragguard[peft]"`') from None
    return load_peft(model, folder).eval(), problems


# ------------------------------------------------------------------- parity
@dataclass(frozen=True)
class Parity:
    """How closely one model reproduces another on the same tokens."""

    max_abs_logit_diff: float
    mean_kl: float  # mean per-token KL(reference || other), nats
    greedy_agreement: float  # share of positions whose arg-max token agrees
    positions: int
    bitwise_identical: bool

    def to_dict(self) -> dict[str, float]:
        return {
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "mean_kl": self.mean_kl,
            "greedy_agreement": self.greedy_agreement,
            "positions": self.positions,
            "bitwise_identical": int(self.bitwise_identical),
        }


def compare_logits(reference: Sequence[Any], other: Sequence[Any]) -> Parity:
    """Parity of ``other`` against ``reference``: lists of ``[positions, vocab]`` logit tensors."""
    import torch

    if len(reference) != len(other) or not reference:
        raise ValueError("compare_logits needs two equally long, non-empty lists of logit tensors")
    max_diff = 0.0
    kl_sum = 0.0
    agree = 0
    positions = 0
    identical = True
    for ref, oth in zip(reference, other, strict=True):
        if ref.shape != oth.shape:
            raise ValueError(f"logit shapes differ: {tuple(ref.shape)} vs {tuple(oth.shape)}")
        identical = identical and ref.dtype == oth.dtype and bool(torch.equal(ref, oth))
        r = ref.double()
        o = oth.double()
        max_diff = max(max_diff, float((r - o).abs().max()))
        log_p = torch.log_softmax(r, dim=-1)
        log_q = torch.log_softmax(o, dim=-1)
        kl_sum += float((log_p.exp() * (log_p - log_q)).sum(-1).clamp(min=0).sum())
        agree += int((r.argmax(-1) == o.argmax(-1)).sum())
        positions += r.shape[0]
    return Parity(max_diff, kl_sum / positions, agree / positions, positions, identical)


def parity_passes(parity: Parity, dtype: str) -> tuple[bool, str]:
    """The issue's tolerances: fp32 needs max |diff| <= 1e-3 and 100 % agreement; 16-bit and 4-bit
    need mean KL <= 1e-3 nats and >= 99 % agreement. Returns (passed, the rule applied)."""
    if dtype == "float32":
        rule = "float32: max |logit diff| <= 1e-3 and 100% greedy agreement"
        return parity.max_abs_logit_diff <= 1e-3 and parity.greedy_agreement == 1.0, rule
    rule = f"{dtype}: mean KL <= 1e-3 nats and >= 99% greedy agreement"
    return parity.mean_kl <= 1e-3 and parity.greedy_agreement >= 0.99, rule


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device


def sequence_logits(model: Any, ids: Sequence[int]) -> Any:
    """Float32 logits ``[len(ids), vocab]`` of one forward pass over ``ids`` (eval mode, no cache)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            tensor = torch.tensor([list(ids)], dtype=torch.long, device=_device_of(model))
            out = model(input_ids=tensor, attention_mask=torch.ones_like(tensor), use_cache=False)
            return out.logits[0].float().cpu()
    finally:
        if was_training:
            model.train()


def greedy_tokens(model: Any, prompt: Sequence[int], n: int) -> list[int]:
    """``n`` greedy tokens after ``prompt`` (stop tokens ignored, so every probe has the same length)."""
    import torch

    was_training = model.training
    model.eval()
    ids = list(prompt)
    try:
        with torch.inference_mode():
            device = _device_of(model)
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
            cache, cache_kw = cache_of(out), cache_keyword(model)
            new: list[int] = []
            for _ in range(n):
                token = int(out.logits[0, -1].float().argmax())
                new.append(token)
                if len(new) == n:
                    break
                out = model(input_ids=torch.tensor([[token]], device=device), use_cache=True,
                            **{cache_kw: cache})
                cache = cache_of(out)
    finally:
        if was_training:
            model.train()
    return new


def write_reference(adapter_dir: str | Path, model: Any, prompts: Sequence[Sequence[int]], n_tokens: int = 32,
                    logit_positions: int = 4) -> Path:
    """Record what the in-memory model does on ``prompts`` (see :func:`reference_parity`).

    Per probe: the prompt, ``n_tokens`` greedy tokens, and the full logits of
    the first ``logit_positions`` of them (full vocabularies are large: 4
    positions of a 152k vocabulary are 2.4 MB).
    """
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    for i, prompt in enumerate(prompts):
        continuation = greedy_tokens(model, prompt, n_tokens)
        # The same pass a check makes (float sums depend on the sequence length), cut to the stored rows.
        logits = sequence_logits(model, list(prompt) + continuation[:-1])
        tensors[f"prompt.{i}"] = torch.tensor(list(prompt), dtype=torch.long)
        tensors[f"continuation.{i}"] = torch.tensor(continuation, dtype=torch.long)
        tensors[f"logits.{i}"] = logits[len(prompt) - 1 : len(prompt) - 1 + logit_positions].contiguous()
    path = Path(adapter_dir) / REFERENCE_FILE
    # One metadata key: safetensors writes its metadata map in a random order, and a file whose bytes change run
    # to run cannot be checked by its checksum.
    save_file(tensors, str(path), metadata={"ragguard": json.dumps({"probes": len(prompts), "tokens": n_tokens},
                                                                   sort_keys=True)})
    return path


def read_reference(adapter_dir: str | Path) -> list[tuple[list[int], list[int], Any]] | None:
    """(prompt, continuation, logits) per probe, or None when the adapter has no reference."""
    from safetensors.torch import load_file

    path = Path(adapter_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    probes = sorted(int(k.split(".")[1]) for k in tensors if k.startswith("prompt."))
    return [(tensors[f"prompt.{i}"].tolist(), tensors[f"continuation.{i}"].tolist(), tensors[f"logits.{i}"])
            for i in probes]


def reference_parity(model: Any, reference: Sequence[tuple[list[int], list[int], Any]]) -> Parity:
    """Teacher-force ``model`` along the recorded greedy tokens and compare with the recorded model.

    Logit figures come from the recorded positions; greedy agreement is the
    share of all recorded greedy tokens that ``model`` picks again.
    """
    if not reference:
        raise ValueError("the parity reference holds no probes")
    recorded, mine = [], []
    agree = total = 0
    for prompt, continuation, logits in reference:
        full = sequence_logits(model, prompt + continuation[:-1])[len(prompt) - 1 :]
        agree += int((full.argmax(-1) == _as_tensor(continuation)).sum())
        total += len(continuation)
        recorded.append(logits)
        mine.append(full[: logits.shape[0]])
    logit_figures = compare_logits(recorded, mine)
    return Parity(logit_figures.max_abs_logit_diff, logit_figures.mean_kl, agree / total, total,
                  logit_figures.bitwise_identical and agree == total)


def _as_tensor(ids: Sequence[int]) -> Any:
    import torch

    return torch.tensor(list(ids), dtype=torch.long)
