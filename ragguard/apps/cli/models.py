"""The model commands: ``ragguard doctor`` (is generation deterministic?), ``cache`` (converted models), ``tune`` (train an adapter), ``merge``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard.apps.cli.common import _fail, app, handle_errors


@app.command()
@handle_errors
def doctor(
    config: Path | None = typer.Option(None, "--config", help="YAML config of the model to examine."),
    adapter: Path | None = typer.Option(None, "--adapter", exists=True, file_okay=False,
                                        help="LoRA adapter folder to load on the base (without --config: the "
                                             "base and quantization recorded with it)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {fingerprint, checks}."),
) -> None:
    """Check that answers depend on the question alone: eval mode, repeatability, batch invariance."""
    from ragguard.config import load_config
    from ragguard.generation.generators import TransformersGenerator
    from ragguard.pipeline import library_versions
    from ragguard.tuning.doctor import run_checks

    cfg = load_config(config)
    if cfg.generator.backend != "transformers":
        from ragguard.errors import UsageError

        raise UsageError(f"doctor examines in-process transformers models; generator.backend is "
                         f"{cfg.generator.backend!r}: run it with a transformers config of the same model")
    if adapter is not None:
        if config is None:  # the base and quantization recorded with the adapter, not the embedded model
            recorded = _recorded_generator(adapter)
            if recorded:
                typer.echo(f"ragguard: loading the base recorded with the adapter: {recorded['model']}", err=True)
                cfg = cfg.replace("generator", **recorded)
        # A mismatch is reported by the quant_config check (exit 1) rather than refused at load.
        cfg = cfg.replace("generator", adapter=str(adapter), adapter_mismatch="warn")
    # Short probes: the checks compare tokens, they do not judge answers.
    probe = cfg.replace("sampling", max_new_tokens=min(cfg.sampling.max_new_tokens, 24)).sampling
    generator = TransformersGenerator.from_config(cfg.generator, probe)
    generator.load()
    checks = run_checks(generator)
    fingerprint = {"model": generator.name, "adapter": generator.adapter,
                   "adapter_sha256": getattr(generator, "adapter_sha256", None), "model_sha256": generator.model_sha256,
                   "config_hash": cfg.hash(), "versions": library_versions(), "device": generator.device,
                   "quantization": getattr(generator, "quantization", None), "dtype": generator.dtype,
                   "cpu": generator.cpu}
    if as_json:
        typer.echo(json_line({"fingerprint": fingerprint, "checks": [c.to_dict() for c in checks]}))
    else:
        typer.echo(f"model: {generator.name}  device: {generator.device}  config: {cfg.hash()}")
        typer.echo("versions: " + ", ".join(f"{k} {v}" for k, v in fingerprint["versions"].items()))
        for c in checks:
            mark = typer.style("PASS", fg="green") if c.passed else typer.style("FAIL", fg="red", bold=True)
            figures = ", ".join(f"{k}={v}" for k, v in c.figures.items())
            typer.echo(f"{mark}  {c.name}: {c.detail}" + (f"  [{figures}]" if figures else ""))
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command()
@handle_errors
def cache(
    prune: bool = typer.Option(False, "--prune", help="Remove conversions superseded by one for the installed "
                               "transformers, those whose GGUF is gone, stopped conversions and stale hash memos."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {cache, models, pruned}."),
) -> None:
    """List the model cache (converted GGUF checkpoints, their size); --prune removes what is stale.

    An upgrade of transformers converts the GGUF again and leaves the old conversion behind (about
    500 MB for the embedded model). Nothing is pruned unless asked: another install that shares the
    cache with an older transformers would convert again (about 30 s) once.
    """
    from ragguard.generation.cache import cached_models
    from ragguard.generation.cache import prune as prune_cache
    from ragguard.generation.models import cache_dir

    pruned = prune_cache() if prune else None
    models = cached_models()
    if as_json:
        typer.echo(json_line({"cache": str(cache_dir()), "models": [m.to_dict() for m in models], "pruned": pruned}))
        return
    typer.echo(f"cache: {cache_dir()}")
    if pruned is not None:
        for r in pruned["removed"]:
            typer.echo(f"removed {r['path']} ({_mb(r['size'])}): {r['why']}")
        for r in pruned["skipped"]:
            typer.echo(f"kept {r['path']}: {r['why']}")
        typer.echo(f"freed {_mb(pruned['freed'])}; {pruned['memos']} stale hash memo(s) removed")
    for m in models:
        state = f"stale: {m.stale}" if m.stale else "kept"
        made = f"transformers {m.transformers}" if m.transformers else "unfinished"
        typer.echo(f"{_mb(m.size):>9}  {m.path.name}  ({made}; {state})")
    if not models:
        typer.echo("no converted model")
    elif pruned is None and any(m.stale for m in models):
        total = sum(m.size for m in models if m.stale)
        typer.echo(f"{_mb(total)} is stale: ragguard cache --prune removes it")


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


@app.command()
@handle_errors
def tune(
    data: Path = typer.Argument(..., help="Training records: .jsonl or .json list (instruction/input/output or "
                                "question/context/answer)."),
    out: Path = typer.Option(..., "--out", help="Folder for the adapter, its metadata, checkpoints and logs."),
    config: Path | None = typer.Option(None, "--config", help="Tune config YAML (default: configs/tune-qlora.yaml)."),
    sets: list[str] = typer.Option([], "--set", help="Override a config value: --set train.epochs=1 (repeatable)."),
    base: str | None = typer.Option(None, "--base", help="Base model: 'embedded', a folder or a hub id."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Passes over the data."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    learning_rate: float | None = typer.Option(None, "--lr", min=0.0, help="Peak learning rate."),
    four_bit: bool | None = typer.Option(None, "--4bit/--no-4bit", help="Hold the base in 4-bit NF4 (QLoRA)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Eager attention + full determinism."),
    fp32: bool = typer.Option(False, "--fp32", help="Train in float32 (slowest, most reproducible)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the metrics."),
) -> None:
    """Tune a LoRA/QLoRA adapter (seed 003 recipe) and record how to reproduce and check it."""
    from ragguard.tuning.config import load_tune_config, parse_override
    from ragguard.tuning.tune import tune as run_tune

    overrides: dict[str, Any] = dict(parse_override(item) for item in sets)
    flags = {"model.base": base, "train.epochs": epochs, "train.max_steps": max_steps,
             "train.learning_rate": learning_rate, "model.load_in_4bit": four_bit}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if deterministic:
        overrides["train.deterministic"] = True
    if fp32:
        overrides["train.fp32"] = True
    cfg = load_tune_config(config, overrides)
    try:
        result = run_tune(data, out, cfg, resume=resume, show_progress=not as_json and sys.stderr.isatty())
    except KeyboardInterrupt:
        from ragguard.tuning.tune import interrupted_message

        _fail(interrupted_message(out, cfg.train.save_steps), 130)
    m = result.metrics
    config = _write_ask_config(result.out)
    if as_json:
        typer.echo(json_line({"out": str(result.out), "steps": result.steps, "resumed_from": result.resumed_from,
                               "losses": result.losses, "metrics": m, "bad_records": result.bad_records,
                               "ask_config": str(config) if config else None}))
        return
    figures = f"train loss {m['train_loss']:.4f}"
    if "eval_loss" in m:
        figures += f", validation loss {m['eval_loss']:.4f}, perplexity {m['perplexity']:.2f}"
    typer.echo(f"wrote adapter {result.out} after {result.steps} steps: {figures}; "
               f"{len(result.bad_records)} records skipped")
    if config is None:
        typer.echo(f"check it: ragguard doctor --adapter {result.out} --config <a config with {_load_keys(result.out)}>")
        return
    typer.echo(f"ask with it: ragguard ask \"your question\" --config {config}")
    typer.echo(f"check it: ragguard doctor --adapter {result.out} --config {config}")


ASK_CONFIG = "ragguard-ask.yaml"


def _recorded_generator(adapter: Path) -> dict[str, Any]:
    """The generator keys that load ``adapter``'s base as it was tuned, from its ragguard-adapter.json
    ({} when it has none: the doctor then loads the config's model and quant_config fails)."""
    from ragguard.tuning.adapters import read_metadata

    meta = read_metadata(adapter) or {}
    base = meta.get("base") or {}
    if not base.get("model"):
        return {}
    model = str(base["model"])
    source = base.get("source")
    if (model != "embedded" and not base.get("gguf_file") and not Path(model).expanduser().is_dir()
            and source and Path(source).is_dir()):
        model = str(source)  # a relative folder recorded by an older ragguard
    keys: dict[str, Any] = {"model": model, "gguf_file": base.get("gguf_file")}
    if base.get("attn_implementation"):
        keys["attn_implementation"] = base["attn_implementation"]
    quant = meta.get("quantization") or {}
    if quant.get("method") == "bitsandbytes-4bit":
        keys.update(load_in_4bit=True, bnb_4bit_quant_type=quant.get("quant_type"),
                    bnb_4bit_use_double_quant=bool(quant.get("double_quant")),
                    bnb_4bit_compute_dtype=quant.get("compute_dtype"))
    elif quant.get("dtype"):
        keys.update(load_in_4bit=False, dtype=quant["dtype"])
    return keys


def _write_ask_config(adapter: Path) -> Path | None:
    """Write ``ADAPTER/ragguard-ask.yaml``: the generator keys that load the adapter as it was tuned, and the
    adapter itself (``adapter: .``, resolved against the file's folder), so the closing hint can be pasted."""
    keys = _load_keys(adapter)
    if not keys.startswith("generator.model: "):
        return None  # no metadata to read the keys from
    lines = ["# written by `ragguard tune`: loads this adapter as it was tuned", "generator:", "  adapter: ."]
    lines += [f"  {k.split('.', 1)[1]}" for k in keys.split(", ")]
    path = Path(adapter) / ASK_CONFIG
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load_keys(adapter: Path) -> str:
    """The generator keys a config needs to load ``adapter`` as it was tuned (from its metadata)."""
    try:
        meta = json.loads((Path(adapter) / "ragguard-adapter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "generator.model = the base"
    keys = [f"generator.model: {meta['base']['model']}"]
    if meta["base"].get("gguf_file"):
        keys.append(f"generator.gguf_file: {meta['base']['gguf_file']}")
    quant = meta.get("quantization") or {}
    if quant.get("method") == "bitsandbytes-4bit":
        keys += ["generator.load_in_4bit: true", f"generator.bnb_4bit_quant_type: {quant.get('quant_type')}",
                 f"generator.bnb_4bit_use_double_quant: {str(bool(quant.get('double_quant'))).lower()}",
                 f"generator.bnb_4bit_compute_dtype: {quant.get('compute_dtype')}"]
    return ", ".join(keys)


@app.command()
@handle_errors
def merge(
    adapter_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="Adapter folder written by ragguard tune."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged model (and merge-parity.json): new, "
                                                "or holding only the merge-parity.json of a failed merge."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16 (never 4-bit)."),
    into: str = typer.Option("dequantized", "--into",
                             help="For a 4-bit adapter: 'dequantized' base weights (as trained) or 'original'."),
    force: bool = typer.Option(False, "--force", help="Write the merged model even when parity fails."),
    device: str = typer.Option("auto", "--device", help="'auto', 'cpu' or 'cuda'."),
    tokens: int = typer.Option(64, "--tokens", min=1, max=1024, help="Greedy tokens compared per probe prompt."),
    as_json: bool = typer.Option(False, "--json", help="Print the parity report as one JSON object."),
) -> None:
    """Merge an adapter into a float32/16-bit copy of its base, only if the merged model behaves the same."""
    from ragguard.tuning.merge import REPORT_FILE, merge_adapter

    result = merge_adapter(adapter_dir, out, dtype=dtype, into=into, force=force, device=device, tokens=tokens)
    r = result.report
    f = r["figures"]
    if as_json:
        typer.echo(json_line(r))
    else:
        mark = typer.style("PASS", fg="green") if result.passed else typer.style("FAIL", fg="red", bold=True)
        typer.echo(f"{mark}  merged into {r['merged_into']} ({r['merged_dtype']}), {r['probes']} probes x "
                   f"{r['tokens_per_probe']} tokens: max |logit diff| {f['max_abs_logit_diff']:.3g}, mean KL "
                   f"{f['mean_kl']:.3g} nats, greedy agreement {f['greedy_agreement']:.1%} (rule: {r['rule']})")
        typer.echo(f"report: {result.out / REPORT_FILE}" + (f"; merged model: {result.out}" if result.written else ""))
    if not result.passed:
        if result.written:
            typer.echo("ragguard: warning: parity failed; the merged model was written because of --force "
                       "(recorded in ragguard-merge.json)", err=True)
        else:
            typer.echo("ragguard: gate failed: the merged model does not reproduce the adapter model; nothing "
                       "written but the report (keep the adapter separate, or rerun with --force: the same --out "
                       "is accepted)", err=True)
            raise typer.Exit(1)
