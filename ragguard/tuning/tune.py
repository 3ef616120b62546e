"""``ragguard tune``: LoRA / QLoRA tuning that records everything needed to reproduce and check it.

The recipe of seed 003 is the default (see :mod:`ragguard.tuning.config`). The
loop is ragguard's own rather than ``transformers.Trainer`` so that
checkpoints hold no pickles (adapter, optimizer and RNG states are
safetensors, the rest JSON) and a resumed run takes exactly the steps the
uninterrupted run would have taken: the data order of each epoch derives
from (seed, epoch), and the learning rate is a function of the step.

The output folder is a PEFT adapter (``adapter_config.json``,
``adapter_model.safetensors``) plus ``ragguard-adapter.json`` and
``parity-reference.safetensors`` (see :mod:`ragguard.tuning.adapters`),
``checkpoints/`` and TensorBoard ``logs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragguard.errors import ModelLoadError, UsageError
from ragguard.generation.models import sha256_of
from ragguard.tuning.adapters import META_FILE, write_metadata, write_reference
from ragguard.tuning.checkpoints import last_checkpoint, load_checkpoint, save_checkpoint, trainable
from ragguard.tuning.config import TuneConfig
from ragguard.tuning.data import Example, load_examples, split_examples

__all__ = ["TuneResult", "tune", "resolve_precision", "learning_rate_at", "environment_fingerprint",
           "finished_steps", "interrupted_message"]

logger = logging.getLogger("ragguard")



@dataclass
class TuneResult:
    """What a tuning run produced."""

    out: Path
    steps: int
    losses: list[float]  # training loss of every optimizer step, from step 1
    metrics: dict[str, Any]
    resumed_from: int | None = None
    bad_records: list[dict[str, Any]] = field(default_factory=list)


def resolve_precision(cfg: TuneConfig, device: str) -> tuple[str, str, str | None]:
    """(weights dtype, 4-bit compute dtype, autocast dtype or None) for ``device``.

    ``train.fp32`` forces float32 everywhere. Otherwise 'auto' means bfloat16
    on a GPU that supports it and float32 elsewhere; ``train.bf16`` true/false
    overrides the detection.
    """
    if cfg.train.fp32:
        return "float32", "float32", None
    import torch

    if cfg.train.bf16 == "auto":
        bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    else:
        bf16 = cfg.train.bf16 == "true"
    auto = "bfloat16" if bf16 else "float32"
    weights = auto if cfg.model.dtype == "auto" else cfg.model.dtype
    compute = auto if cfg.model.bnb_4bit_compute_dtype == "auto" else cfg.model.bnb_4bit_compute_dtype
    return weights, compute, ("bfloat16" if bf16 else None)


def learning_rate_at(step: int, total: int, cfg: TuneConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then linear decay or constant."""
    peak = cfg.train.learning_rate
    warmup = math.ceil(total * cfg.train.warmup_ratio)
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.train.lr_scheduler == "constant":
        return peak
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def environment_fingerprint(device: str) -> dict[str, Any]:
    """Library versions, platform and accelerator of this run (seed 000: record them with every run)."""
    import torch

    from ragguard.pipeline import library_versions

    env: dict[str, Any] = {"versions": library_versions(), "platform": platform.platform(),
                           "machine": platform.machine(), "device": device, "cpu_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def _batches(examples: Sequence[Example], batch_size: int, seed: int, epoch: int) -> list[list[Example]]:
    order = list(examples)
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _collate(batch: Sequence[Example], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):  # right padding: positions stay 0..n-1 as in a prompt alone
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        mask[row, : len(e.input_ids)] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def _loss_sum(model: Any, batch: Sequence[Example], pad_id: int, device: Any, autocast: str | None) -> tuple[Any, int]:
    """Summed token cross-entropy of a micro-batch and its number of answer tokens."""
    import contextlib

    import torch

    ids, mask, labels = _collate(batch, pad_id, device)
    ctx = (torch.autocast(device_type=ids.device.type, dtype=getattr(torch, autocast)) if autocast
           else contextlib.nullcontext())
    with ctx:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((shift_labels != -100).sum())


def _evaluate(model: Any, examples: Sequence[Example], cfg: TuneConfig, pad_id: int, device: Any,
              autocast: str | None) -> dict[str, float]:
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), cfg.train.batch_size):
            loss, n = _loss_sum(model, examples[start : start + cfg.train.batch_size], pad_id, device, autocast)
            total += float(loss)
            tokens += n
    if was_training:
        model.train()
    mean = total / max(1, tokens)
    return {"eval_loss": mean, "perplexity": math.exp(min(mean, 50.0)), "eval_tokens": tokens}


def _load_base(cfg: TuneConfig, source: str, device: str, weights: str, compute: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from ragguard.generation.quantization import bnb_4bit_config
    from ragguard.generation.sources import refuse_pickled_weights

    attn = "eager" if cfg.train.deterministic else cfg.model.attn_implementation
    kwargs: dict[str, Any] = {"dtype": getattr(torch, weights), "attn_implementation": attn}
    if cfg.model.load_in_4bit:
        kwargs["quantization_config"] = bnb_4bit_config(cfg.model.bnb_4bit_quant_type,
                                                        cfg.model.bnb_4bit_use_double_quant, compute)
        kwargs["device_map"] = {"": device}
    refuse_pickled_weights(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code,
                                                     use_safetensors=True, **kwargs)
    except Exception as exc:
        raise ModelLoadError(f"cannot load base model {cfg.model.base!r} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}): check model.base") from None
    if not cfg.model.load_in_4bit:
        model = model.to(device)
    else:
        from ragguard.generation.hardware import prepare_4bit

        # training=True: bitsandbytes' packed AVX512-BF16 path (taken in eval mode, e.g. by the eval steps)
        # has no backward and computes in bfloat16, so the whole run keeps the plain path on every CPU.
        prepare_4bit(model, compute_dtype=compute, training=True, remedy="set model.load_in_4bit: false")
    return model


def _wrap_lora(model: Any, cfg: TuneConfig) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    gc = cfg.train.gradient_checkpointing
    if cfg.model.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in cfg.lora.target_modules if m not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise UsageError(f"lora.target_modules {missing} are not modules of this model: pick from {linear}")
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(cfg.train.seed)  # the adapter's initial weights
    return get_peft_model(model, lora)


# ------------------------------------------------------------ checkpoints
# Keys that change neither the weights nor the steps a run takes: a resume may change them.
_NOT_TRAINING = {"train": ("logging_steps", "save_steps", "save_total_limit", "tensorboard", "probe_prompts",
                           "probe_tokens")}


def _training_settings(cfg: TuneConfig) -> dict[str, Any]:
    data = cfg.to_dict()
    for section, keys in _NOT_TRAINING.items():
        for key in keys:
            data[section].pop(key, None)
    return data


def _differences(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``section.key then -> now`` for every setting that differs."""
    keys = sorted({(s, k) for d in (then, now) for s, sec in d.items() if isinstance(sec, dict) for k in sec})
    return [f"{s}.{k} {then.get(s, {}).get(k)!r} -> {now.get(s, {}).get(k)!r}" for s, k in keys
            if then.get(s, {}).get(k) != now.get(s, {}).get(k)]


def finished_steps(out: Path) -> int | None:
    """The steps of the finished adapter in ``out`` (None: none there). ``ragguard-adapter.json`` is written
    last, once the adapter files are in place, so it marks a finished run."""
    path = Path(out) / META_FILE
    if not path.is_file():
        return None
    try:
        return int((json.loads(path.read_text(encoding="utf-8")).get("metrics") or {}).get("steps") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def interrupted_message(out: Path, save_steps: int) -> str:
    """What an interrupted ``tune`` left in ``out`` and how to go on (the CLI's one line)."""
    if finished_steps(out) is not None:
        return f"interrupted; {out} holds a finished adapter (nothing lost)"
    last = last_checkpoint(Path(out))
    if last is None:
        return (f"interrupted before the first checkpoint (one is written every {save_steps} steps, at the end of "
                f"each epoch and after the last step): nothing saved; rerun with --resume to start again from "
                f"step 0 in {out}")
    try:
        state = json.loads((last / "trainer_state.json").read_text())
    except (OSError, ValueError):
        state = {}
    step, total = state.get("step"), state.get("total")
    if step is not None and step == total:
        return (f"interrupted after the last training step, while writing the adapter; rerun with --resume to "
                f"write it from {last} (no training left)")
    return f"interrupted; rerun with --resume to continue from step {step} ({last})"


# -------------------------------------------------------------------- tune
def tune(
    data: str | Path,
    out: str | Path,
    cfg: TuneConfig,
    *,
    resume: bool = False,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TuneResult:
    """Tune a LoRA adapter on ``data`` and write it to ``out``.

    Args:
        resume: continue from the last checkpoint in ``out`` (same config and data required).
        on_step: called after every optimizer step with (step, loss); an
            exception it raises stops the run (the last checkpoint stays).

    Raises:
        UsageError: unusable data, an ``out`` folder that holds another run, bad LoRA targets.
        ModelLoadError: the base model, peft or bitsandbytes cannot be loaded.
    """
    try:
        import peft  # noqa: F401
        import torch
        import transformers
    except ImportError:
        raise ModelLoadError('tuning needs peft: run `pip install "ragguard[peft]"`') from None
    from ragguard.generation.models import quiet_transformers
    from ragguard.generation.quantization import quantization_summary
    from ragguard.generation.sources import resolve_device, resolve_model_source

    quiet_transformers()
    data_path, out = Path(data), Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file: give a folder for the adapter")
    finished = finished_steps(out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise UsageError(f"--out {str(out)!r} is not empty: choose a new folder" + (
            " (it holds a finished adapter, kept as it is)" if finished is not None else
            ", or pass --resume to continue the run in it"))
    if resume and finished is not None:
        raise UsageError(f"--out {str(out)!r} holds a finished adapter ({finished} steps): nothing to resume; "
                         "choose a new --out to train again (the adapter there is kept)")
    base = Path(cfg.model.base).expanduser()
    if cfg.model.base != "embedded" and base.is_dir():  # recorded absolute: hints and merge work from any folder
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base=str(base.resolve())))
    device = resolve_device(cfg.model.device)
    if cfg.model.load_in_4bit and not cfg.train.fp32 and cfg.model.bnb_4bit_compute_dtype == "float16":
        logger.warning("4-bit compute in float16 without loss scaling may underflow; prefer bfloat16 or float32")
    weights, compute, autocast = resolve_precision(cfg, device)
    determinism_before = torch.are_deterministic_algorithms_enabled()
    if cfg.train.deterministic:
        transformers.enable_full_determinism(cfg.train.seed)
    else:
        transformers.set_seed(cfg.train.seed)
    try:
        return _tune(data_path, out, cfg, resume, show_progress, on_step, device, weights, compute, autocast,
                     resolve_model_source, quantization_summary)
    finally:
        if cfg.train.deterministic and not determinism_before:
            torch.use_deterministic_algorithms(False)


def _tune(data_path: Path, out: Path, cfg: TuneConfig, resume: bool, show_progress: bool,
          on_step: Callable[[int, float], None] | None, device: str, weights: str, compute: str,
          autocast: str | None, resolve_model_source: Any, quantization_summary: Any) -> TuneResult:
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    source, base_sha = resolve_model_source(cfg.model.base, cfg.model.gguf_file, key="model.base")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {cfg.model.base!r} ({type(exc).__name__}): "
                             "check model.base") from None
    data = load_examples(data_path, tokenizer, cfg.prompt, cfg.train.max_length)
    for bad in data.bad:
        logger.warning("%s: skipped: %s", data.where(data_path, bad), bad.error)
    if not data.examples:
        detail = f": {data.bad_summary(3)}" if data.bad else ""
        raise UsageError(f"{str(data_path)!r} has no usable record ({data.records} records{detail}): give records "
                         "with instruction/output or question/context/answer")
    train, held_out = split_examples(data.examples, cfg.train.eval_split, cfg.train.seed)
    if cfg.train.eval_split > 0 and not held_out:
        logger.warning("only %d usable record(s): no validation split, no validation loss", len(train))

    data_sha = sha256_of(data_path)
    settings = _training_settings(cfg)
    run_key = hashlib.sha256(json.dumps([settings, data_sha], sort_keys=True).encode()).hexdigest()[:16]
    last = last_checkpoint(out) if resume else None
    if last is not None:
        saved = json.loads((last / "trainer_state.json").read_text())
        if saved.get("run_key") != run_key:
            what = []
            if isinstance(saved.get("settings"), dict):
                what += _differences(saved["settings"], settings)
            if saved.get("data_sha256") and saved["data_sha256"] != data_sha:
                what.append(f"the data file {str(data_path)!r} (sha256 {saved['data_sha256'][:12]}… then, "
                            f"{data_sha[:12]}… now)")
            if "settings" not in saved:  # written before checkpoints recorded their settings (session 22)
                raise UsageError(f"the checkpoint {str(last)!r} was written by an older ragguard, which keyed runs "
                                 "differently and recorded no settings to compare: use a new --out without --resume "
                                 "(or resume with the ragguard version that wrote it)")
            shown = "; ".join(what[:4]) + (f"; {len(what) - 4} more" if len(what) > 4 else "") if what else \
                "another config or data"
            raise UsageError(f"the checkpoint {str(last)!r} was written with other settings: {shown}; rerun with "
                             "the same ones, or use a new --out without --resume")

    logger.info("loading the base %s (%s)", cfg.model.base, "4-bit NF4" if cfg.model.load_in_4bit else weights)
    model = _load_base(cfg, source, device, weights, compute)
    if base_sha is None:
        from ragguard.generation.sources import hub_weights_sha256

        base_sha = hub_weights_sha256(source)
    model = _wrap_lora(model, cfg)
    model.train()
    params = trainable(model)
    optimizer = torch.optim.AdamW(params, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    pad_id = tokenizer.pad_token_id if isinstance(tokenizer.pad_token_id, int) else (tokenizer.eos_token_id or 0)
    batches_per_epoch = math.ceil(len(train) / cfg.train.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.train.gradient_accumulation_steps)
    total = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch

    losses: list[float] = []
    evals: list[dict[str, Any]] = []
    start_step = 0
    resumed_from: int | None = None
    out.mkdir(parents=True, exist_ok=True)
    if last is not None:
        state = load_checkpoint(last, model, optimizer)
        start_step = resumed_from = int(state["step"])
        losses, evals = list(state["losses"]), list(state["evals"])
        logger.info("resuming from %s (step %d of %d)", last.name, start_step, total)
    elif resume:
        logger.info("no checkpoint in %s: starting from step 0", out)

    # A resumed run logs the steps after its checkpoint again: TensorBoard drops what the stopped run logged
    # from there on, so no step has two values (with no checkpoint, from step 1).
    writer = _tensorboard(out, cfg, start_step + 1 if resume else None)
    tokens_seen = 0
    bar = _progress_bar(total, start_step, show_progress)
    try:
        for step in range(start_step, total):
            epoch, within = divmod(step, steps_per_epoch)
            batches = _batches(train, cfg.train.batch_size, cfg.train.seed, epoch)
            accum = cfg.train.gradient_accumulation_steps
            group = batches[within * accum : (within + 1) * accum]
            lr = learning_rate_at(step, total, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            n_tokens = sum(sum(1 for x in e.labels[1:] if x != -100) for b in group for e in b)
            step_loss = 0.0
            for micro in group:
                loss, n = _loss_sum(model, micro, pad_id, device, autocast)
                (loss / max(1, n_tokens)).backward()
                step_loss += float(loss.detach())
                tokens_seen += sum(len(e.input_ids) for e in micro)
            if cfg.train.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            mean = step_loss / max(1, n_tokens)
            losses.append(mean)
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}")
            if writer is not None:
                writer.add_scalar("train/loss", mean, done)
                writer.add_scalar("train/learning_rate", lr, done)
            # In logs (no bar): the first and last steps too, so a short or slow run shows it is moving.
            if (done % cfg.train.logging_steps == 0 or done in (start_step + 1, total)) and not show_progress:
                logger.info("step %d/%d loss %.4f lr %.2e", done, total, mean, lr)
            epoch_end = done % steps_per_epoch == 0
            if held_out and (epoch_end or (cfg.train.eval_steps and done % cfg.train.eval_steps == 0)) and done < total:
                figures = _evaluate(model, held_out, cfg, pad_id, device, autocast)
                evals.append({"step": done, **figures})
                if writer is not None:
                    writer.add_scalar("eval/loss", figures["eval_loss"], done)
                    writer.add_scalar("eval/perplexity", figures["perplexity"], done)
            # Every save_steps, at the end of every epoch (a short CPU run is resumable too) and after the last
            # step (the adapter files are written next: an interrupt there loses no training).
            if done % cfg.train.save_steps == 0 or epoch_end or done == total:
                save_checkpoint(out, done, model, optimizer,
                                 {"step": done, "total": total, "losses": losses, "evals": evals, "run_key": run_key,
                                  "settings": settings, "data_sha256": data_sha},
                                 cfg.train.save_total_limit)
            if on_step is not None:
                on_step(done, mean)
    finally:
        bar.close()
        if writer is not None:
            writer.flush()

    model.eval()
    final = _evaluate(model, held_out, cfg, pad_id, device, autocast) if held_out else {}
    if final:
        evals.append({"step": total, **final})
        if writer is not None:
            writer.add_scalar("eval/loss", final["eval_loss"], total)
            writer.add_scalar("eval/perplexity", final["perplexity"], total)
    if writer is not None:
        writer.close()
    seconds = time.perf_counter() - started
    # The adapter files go to a temporary folder and are moved into OUT when complete, ragguard-adapter.json
    # last: a folder is a finished adapter only once it holds that file, and an interrupt before leaves the
    # checkpoint of the last step to finish from (--resume).
    staging = out / ".tmp-adapter"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_pretrained(str(staging), safe_serialization=True)
    probes = [e.input_ids[: e.prompt_tokens] for e in (held_out or train)[: cfg.train.probe_prompts]]
    if probes:
        logger.info("recording the greedy tokens and logits of %d probe prompt(s) for the parity checks", len(probes))
        write_reference(staging, model, probes, n_tokens=cfg.train.probe_tokens)
    quant = quantization_summary(cfg.model.load_in_4bit, cfg.model.bnb_4bit_quant_type,
                                 cfg.model.bnb_4bit_use_double_quant, compute, weights)
    metrics = {
        "steps": total,
        "train_loss": losses[-1] if losses else None,
        "train_loss_mean_last_epoch": (sum(losses[-steps_per_epoch:]) / len(losses[-steps_per_epoch:]))
        if losses else None,
        **({"eval_loss": final["eval_loss"], "perplexity": final["perplexity"]} if final else {}),
        "evaluations": evals,
        "seconds_this_session": round(seconds, 3),
        "tokens_this_session": tokens_seen,
    }
    chat_template = getattr(tokenizer, "chat_template", None)
    write_metadata(staging, {
        "kind": "ragguard-lora-adapter",
        "base": {"model": cfg.model.base, "gguf_file": cfg.model.gguf_file, "source": source, "sha256": base_sha,
                 "attn_implementation": "eager" if cfg.train.deterministic else cfg.model.attn_implementation},
        "quantization": quant,
        "prompt": {
            "builder": "ragguard.generation.prompts.build_messages",
            "system": cfg.prompt.system,
            "max_context_chars": cfg.prompt.max_context_chars,
            "instruction_system": cfg.prompt.instruction_system,
            "chat_template_sha256": hashlib.sha256(chat_template.encode()).hexdigest() if chat_template else None,
            "chat_template": chat_template,
        },
        "training": cfg.to_dict(),
        "seeds": {"seed": cfg.train.seed, "data_split": cfg.train.seed, "data_order": "seed * 1000003 + epoch",
                  "deterministic": cfg.train.deterministic},
        "precision": {"weights": weights, "compute": compute, "autocast": autocast},
        "environment": environment_fingerprint(device),
        "data": {"path": str(data_path), "sha256": data_sha, "records": data.records, "usable": len(data.examples),
                 "train": len(train), "validation": len(held_out),
                 "truncated": sum(e.truncated for e in data.examples),
                 "kinds": sorted({e.kind for e in data.examples}),
                 "bad_records": [b.to_dict() for b in data.bad]},
        "metrics": metrics,
        "resumed_from_step": resumed_from,
    })
    _publish(staging, out)
    return TuneResult(out, total, losses, metrics, resumed_from, [b.to_dict() for b in data.bad])


def _publish(staging: Path, out: Path) -> None:
    """Move the complete adapter files from ``staging`` into ``out``, the metadata last, and drop ``staging``."""
    from ragguard.tuning.adapters import REFERENCE_FILE

    if not (staging / REFERENCE_FILE).is_file():
        (out / REFERENCE_FILE).unlink(missing_ok=True)  # a reference of an earlier attempt does not describe this one
    for item in sorted(staging.iterdir(), key=lambda p: p.name == META_FILE):
        os.replace(item, out / item.name)
    staging.rmdir()


def _tensorboard(out: Path, cfg: TuneConfig, purge_step: int | None = None) -> Any:
    if not cfg.train.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.warning("tensorboard is not installed: no logs in %s/logs (pip install tensorboard, or set "
                       "train.tensorboard=false)", out)
        return None
    return SummaryWriter(log_dir=str(out / "logs"), purge_step=purge_step)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


# The bar's size where the terminal reports none: columns, and lines (tqdm hides a bar below the last line).
BAR_COLUMNS, BAR_LINES = 80, 20


def _progress_bar(total: int, initial: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    try:
        size = tuple(os.get_terminal_size(sys.stderr.fileno()))
    except (OSError, ValueError):  # not a terminal, or stderr replaced by an object without a descriptor
        size = (0, 0)
    # A terminal that reports no size (0 x 0: a serial console, a container's tty not sized yet) got an
    # empty line from tqdm's own sizing, the whole run long: the bar is drawn at a fixed size there instead.
    sizing: dict[str, Any] = {"dynamic_ncols": True} if min(size) > 0 else {"ncols": BAR_COLUMNS, "nrows": BAR_LINES}
    return tqdm(total=total, initial=initial, desc="tuning", unit="step", **sizing)
