"""The ``ragguard`` command line: parse, call the library, print.

Answers go to stdout, progress and logs to stderr; ``--json`` prints exactly
one JSON object. Every error is one line on stderr with exit code 2 (usage)
or 3 (runtime); ``RAGGUARD_DEBUG=1`` shows the traceback as well.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from ragguard._version import __version__
from ragguard.errors import RagGuardError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="ragguard",
    help="Trustworthy RAG answers: retrieve, sample several answers, vote, flag contradictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build, inspect and search knowledge indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")

VERDICT_COLOURS = {"consistent": "green", "inconsistent": "yellow", "contradiction": "red", "abstain": "blue"}


def _fail(message: str, code: int) -> None:
    typer.echo(f"ragguard: error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn ragguard errors (and surprises) into one stderr line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except RagGuardError as exc:
            if os.environ.get("RAGGUARD_DEBUG"):
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - the CLI must never show a raw traceback
            if os.environ.get("RAGGUARD_DEBUG"):
                traceback.print_exc()
            first = (str(exc).splitlines() or [""])[0][:300]
            _fail(f"unexpected {type(exc).__name__}: {first} (rerun with RAGGUARD_DEBUG=1 and report it)", 3)

    return wrapper  # type: ignore[return-value]


def _setup_logging() -> None:
    """ragguard's own progress messages go to stderr, one line each."""
    logger = logging.getLogger("ragguard")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("ragguard: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if os.environ.get("RAGGUARD_DEBUG") else logging.INFO)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ragguard {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    """ragguard command line."""
    _setup_logging()


def build_guard(config: Path | None, index: Path | None) -> Any:
    """Construct the pipeline (a seam tests replace with fakes)."""
    from ragguard.pipeline import RagGuard

    return RagGuard.from_config(config, index=index)


def _progress(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="The question to answer."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: the bundled example index)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: embedded offline models)."),
    samples: int | None = typer.Option(None, "--samples", min=1, max=64, help="Answers to draw (default 5)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Base seed (default 0)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the contract form)."),
) -> None:
    """Answer QUESTION from the index with a consistency verdict."""
    from ragguard.errors import UsageError

    if not question.strip():
        raise UsageError('the question is empty: pass a question, e.g. ragguard ask "How many leave days do I get?"')
    guard = build_guard(config, index)
    if not as_json:
        from ragguard.pipeline import samples_adaptively

        count = samples or guard.config.sampling.samples
        upto = "up to " if samples_adaptively(guard.config.sampling.adaptive, count) else ""
        _progress(f"retrieving and sampling {upto}{count} answers…")
    report = guard.ask(question, samples=samples, seed=seed)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    colour = VERDICT_COLOURS.get(report.verdict, "white")
    typer.echo(report.answer or "(no answer: abstaining)")
    typer.echo("")
    verdict = typer.style(report.verdict.upper(), fg=colour, bold=True)
    grounded = {True: "yes", False: "NO", None: "n/a"}[report.grounded]
    drawn = str(len(report.samples))
    if report.adaptive:
        drawn += f" of {report.adaptive['of']} (adaptive: {report.adaptive['stopped']})"
    typer.echo(f"verdict: {verdict}  agreement: {report.agreement:.0%}  confidence: {report.confidence:.2f}  "
               f"grounded: {grounded}  semantic entropy: {report.semantic_entropy:.2f}  samples: {drawn}")
    for warning in report.warnings:
        typer.echo(typer.style(f"warning: {warning}", fg="yellow"))
    if len(report.clusters) > 1:
        typer.echo("clusters:")
        for c in sorted(report.clusters, key=lambda c: (-c.size, c.id)):
            text = " ".join(c.representative.split())
            typer.echo(f"  [{c.id}] x{c.size}: {text[:150]}{'…' if len(text) > 150 else ''}")
    flagged = [c for c in report.contradictions if c.kind != "divergent"]
    if flagged:
        typer.echo("contradictions:")
    for c in flagged[:3]:
        typer.echo(typer.style(f"  samples {c.a} and {c.b}, {c.kind}: {c.explanation}", fg="red"))
    if len(flagged) > 3:
        typer.echo(f"  (+{len(flagged) - 3} more; see --json)")
    if report.sources:
        typer.echo("sources:")
        for p in report.sources:
            typer.echo(f"  {p.score:.3f}  {p.doc_id}")


@app.command()
@handle_errors
def check(
    samples_file: Path = typer.Argument(..., help=".jsonl/.json/.csv records with question, samples, context?"),
    config: Path | None = typer.Option(None, "--config", help="YAML config (embedder and thresholds)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {\"results\": [...]}."),
) -> None:
    """Score answers generated elsewhere (any LLM): cluster, detect contradictions, vote."""
    from ragguard.apps.check import check_record
    from ragguard.apps.records import BadRecord, read_records
    from ragguard.config import load_config
    from ragguard.errors import UsageError
    from ragguard.generation.backends import build_embedder

    cfg = load_config(config)
    embedder = build_embedder(cfg.embedder)
    results: list[dict[str, Any]] = []
    bad = 0
    for record in read_records(samples_file):
        if isinstance(record, BadRecord):
            entry: dict[str, Any] = record.to_dict()
        else:
            try:
                report = check_record(record.data, embedder, cfg)
                entry = {"line": record.line, **report.to_dict()}
                entry.pop("fingerprint", None)
                entry.pop("timings", None)
            except UsageError as exc:
                entry = {"line": record.line, "error": str(exc)}
        if "error" in entry:
            bad += 1
            _progress(f"{samples_file}:{entry['line']}: skipped: {entry['error']}")
        results.append(entry)
    if not results:
        raise UsageError(f"{samples_file} holds no records: add one JSON object per line with question and samples")
    if as_json:
        typer.echo(json.dumps({"results": results}, ensure_ascii=False))
    else:
        for entry in results:
            if "error" in entry:
                continue
            colour = VERDICT_COLOURS.get(entry["verdict"], "white")
            verdict = typer.style(entry["verdict"].upper(), fg=colour, bold=True)
            typer.echo(f"{entry['line']:>5}  {verdict:<13}  {entry['agreement']:.0%}  {entry['question'][:70]}")
            for c in entry["contradictions"]:
                if c["kind"] != "divergent":
                    typer.echo(f"       {c['kind']}: {c['explanation']}")
    if bad == len(results):
        raise typer.Exit(2)


@app.command()
@handle_errors
def audit(
    questions_file: Path = typer.Argument(..., help=".jsonl/.json/.csv with question and optional id, reference, tags."),
    out: Path = typer.Option(..., "--out", help="Folder for results.jsonl, summary.json, results.csv, report.html."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: the bundled example index)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: embedded offline models)."),
    fail_under: float | None = typer.Option(
        None, "--fail-under", min=0.0, max=1.0,
        help="Exit 1 when the consistent share (or reference accuracy) is below this fraction.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="With --resume: redo questions that errored."),
    only: str | None = typer.Option(None, "--only", help="Rerun a subset: id:ID,.. tag:TAG,.. verdict:V,.. status:S"),
    samples: int | None = typer.Option(None, "--samples", min=1, max=64, help="Answers per question."),
    batch: int | None = typer.Option(
        None, "--batch", min=1, max=256, help="Questions per generation pass (default 8)."
    ),
) -> None:
    """Ask every question of a set and write a report to read before shipping."""
    from ragguard.apps.audit import run_audit
    from ragguard.progress import ProgressBar

    guard = build_guard(config, index)
    if samples is not None:
        guard.config = guard.config.replace("sampling", samples=samples)
    bar = ProgressBar(0, sys.stderr)
    try:
        result = run_audit(questions_file, out, guard, resume=resume or retry_errors, retry_errors=retry_errors,
                           only=only, fail_under=fail_under, batch_questions=batch, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        _fail(f"interrupted; finished questions are saved in {out}/results.jsonl: rerun with --resume", 130)
    s = result.summary
    typer.echo(f"audited {s['questions']} records ({result.ran} run now, {result.skipped} already done): "
               + ", ".join(f"{k} {v}" for k, v in s["verdicts"].items())
               + f"; errors {s['errors']}, invalid {s['invalid']}")
    if s["reference"]["accuracy"] is not None:
        typer.echo(f"reference accuracy {s['reference']['accuracy']:.0%} over {s['reference']['with_reference']} questions")
    typer.echo(f"report: {result.out / 'report.html'}")
    for message in result.gate_messages:
        typer.echo(f"ragguard: gate failed: {message}", err=True)
    if result.gate_failed:
        raise typer.Exit(1)


@app.command("audit-diff")
@handle_errors
def audit_diff(
    old: Path = typer.Argument(..., help="Audit folder of the earlier run."),
    new: Path = typer.Argument(..., help="Audit folder of the later run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compare two audits: questions whose verdict or answer changed, and each summary figure."""
    from ragguard.apps.audit import diff_audits

    d = diff_audits(old, new)
    if as_json:
        typer.echo(json.dumps(d, ensure_ascii=False))
        return
    typer.echo(f"{d['compared']} questions in both; {len(d['changed'])} changed")
    for c in d["changed"]:
        typer.echo(f"  {c['id']}: {c['old']['verdict']} -> {c['new']['verdict']}  ({', '.join(c['changed'])})")
    typer.echo("figures:")
    for key, v in d["figures"].items():
        if v["change"]:
            typer.echo(f"  {key}: {v['old']} -> {v['new']} ({v['change']:+.3f})")


@app.command()
@handle_errors
def doctor(
    config: Path | None = typer.Option(None, "--config", help="YAML config of the model to examine."),
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter folder to load on the base."),
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
        # A mismatch is reported by the quant_config check (exit 1) rather than refused at load.
        cfg = cfg.replace("generator", adapter=str(adapter), adapter_mismatch="warn")
    # Short probes: the checks compare tokens, they do not judge answers.
    probe = cfg.replace("sampling", max_new_tokens=min(cfg.sampling.max_new_tokens, 24)).sampling
    generator = TransformersGenerator.from_config(cfg.generator, probe)
    generator.load()
    checks = run_checks(generator)
    fingerprint = {"model": generator.name, "adapter": generator.adapter, "model_sha256": generator.model_sha256,
                   "config_hash": cfg.hash(), "versions": library_versions(), "device": generator.device,
                   "quantization": getattr(generator, "quantization", None), "dtype": generator.dtype,
                   "cpu": generator.cpu}
    if as_json:
        typer.echo(json.dumps({"fingerprint": fingerprint, "checks": [c.to_dict() for c in checks]}, ensure_ascii=False))
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
        _fail(f"interrupted; rerun with --resume to continue from the last checkpoint in {out}/checkpoints", 130)
    m = result.metrics
    if as_json:
        typer.echo(json.dumps({"out": str(result.out), "steps": result.steps, "resumed_from": result.resumed_from,
                               "losses": result.losses, "metrics": m, "bad_records": result.bad_records},
                              ensure_ascii=False))
        return
    figures = f"train loss {m['train_loss']:.4f}"
    if "eval_loss" in m:
        figures += f", validation loss {m['eval_loss']:.4f}, perplexity {m['perplexity']:.2f}"
    typer.echo(f"wrote adapter {result.out} after {result.steps} steps: {figures}; "
               f"{len(result.bad_records)} records skipped")
    typer.echo(f"check it: ragguard doctor --adapter {result.out} --config <config with generator.model = the base>")


@app.command()
@handle_errors
def merge(
    adapter_dir: Path = typer.Argument(..., help="Adapter folder written by ragguard tune."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged model (and merge-parity.json)."),
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
        typer.echo(json.dumps(r, ensure_ascii=False))
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
                       "written (keep the adapter separate, or --force)", err=True)
            raise typer.Exit(1)


def _embedder_from(config: Path | None) -> Any:
    from ragguard.config import load_config
    from ragguard.generation.backends import build_embedder

    return build_embedder(load_config(config).embedder)


def _print_summary(summary: Any, as_json: bool, verb: str) -> None:
    for skipped in summary.skipped:
        _progress(f"skipped {skipped['path']}: {skipped['reason']}")
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    if not summary.written:
        typer.echo(f"{summary.out} is up to date: {summary.chunks} chunks from {summary.documents} documents")
        return
    rate = f", {summary.embedded / summary.embed_seconds:.1f} chunks/s" if summary.embed_seconds > 0 else ""
    typer.echo(f"{verb} {summary.out}: {summary.chunks} chunks from {summary.documents} documents in "
               f"{summary.sources} files ({summary.dimension}-d, {summary.embedder}, {summary.index_type}) in "
               f"{summary.seconds:.1f}s; embedded {summary.embedded}{rate}, reused {summary.reused}; "
               f"{len(summary.skipped)} files skipped, {summary.excluded} excluded")
    for label, names in (("added", summary.added), ("changed", summary.changed), ("removed", summary.removed)):
        if names and verb != "wrote":
            typer.echo(f"  {label}: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}")


INCLUDE_HELP = "Only read files matching this glob (relative path or name; repeatable)."
EXCLUDE_HELP = "Leave out files matching this glob (relative path or name; repeatable)."


@index_app.command("build")
@handle_errors
def index_build(
    sources: list[Path] = typer.Argument(..., help="Folders or files: .md .txt .html .pdf .docx, FAQ .csv/.jsonl."),
    out: Path = typer.Option(..., "--out", help="Folder to write the index to (replaced atomically)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (the embedder section is used)."),
    index_type: str = typer.Option("auto", "--index-type", help="auto (by size), flat, hnsw, ivf or ivfpq."),
    include: list[str] = typer.Option([], "--include", help=INCLUDE_HELP),
    exclude: list[str] = typer.Option([], "--exclude", help=EXCLUDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the build summary as JSON."),
) -> None:
    """Build an index from SOURCE folders (walked recursively) or files."""
    from ragguard.retrieval.index import build_index

    summary = build_index(sources, out, _embedder_from(config), progress=_progress, index_type=index_type,
                          include=include, exclude=exclude)
    _print_summary(summary, as_json, "wrote")


@index_app.command("add")
@handle_errors
def index_add(
    directory: Path = typer.Argument(..., help="Index folder to update."),
    sources: list[Path] = typer.Argument(..., help="Folders or files to add or refresh."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (the embedder section is used)."),
    include: list[str] = typer.Option([], "--include", help=INCLUDE_HELP),
    exclude: list[str] = typer.Option([], "--exclude", help=EXCLUDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the update summary as JSON."),
) -> None:
    """Add new and changed files of SOURCE to an index; drop files gone from SOURCE (only they are embedded)."""
    from ragguard.retrieval.index import update_index

    summary = update_index(directory, sources, _embedder_from(config), progress=_progress, include=include,
                           exclude=exclude)
    _print_summary(summary, as_json, "updated")


@index_app.command("remove")
@handle_errors
def index_remove(
    directory: Path = typer.Argument(..., help="Index folder to update."),
    pattern: str = typer.Argument(..., help="Source path glob (e.g. 'handbook/old-*') or folder prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the update summary as JSON."),
) -> None:
    """Remove the chunks of every indexed source matching PATTERN."""
    from ragguard.retrieval.index import remove_from_index

    _print_summary(remove_from_index(directory, pattern, progress=_progress), as_json, "updated")


@index_app.command("info")
@handle_errors
def index_info(
    directory: Path = typer.Argument(..., help="Index folder."),
    recall_sample: int = typer.Option(200, "--recall-sample", min=0, max=100000,
                                      help="Stored vectors used to measure recall@10 of approximate types (0 = skip)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show what an index holds (verifies its checksums; measures recall of approximate types)."""
    from ragguard.retrieval.index import KnowledgeIndex

    info = KnowledgeIndex.load(directory).info(recall_sample=recall_sample)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    typer.echo(f"index:     {info['path']}")
    typer.echo(f"embedder:  {info['embedder']['name']} ({info['embedder']['dimension']}-d)")
    typer.echo(f"type:      {info['index_type']} ({info['metric']}) {info['index_params'] or ''}".rstrip())
    typer.echo(f"contents:  {info['chunks']} chunks from {info['documents']} documents in {info['sources']} files, "
               f"{info['bytes']} bytes")
    per = f", {info['bytes_per_vector']} bytes/vector" if info["bytes_per_vector"] is not None else ""
    typer.echo(f"memory:    {info['faiss_bytes']} bytes of FAISS index{per}")
    if info["recall_at_10"] is not None:
        typer.echo(f"recall@10: {info['recall_at_10']:.3f} against exact search ({info['recall_sample']} stored vectors)")
    typer.echo(f"languages: {', '.join(f'{k} {v}' for k, v in info['languages'].items())}")
    typer.echo(f"chunking:  {info['chunking']}")
    if info["skipped"]:
        typer.echo(f"skipped:   {len(info['skipped'])} files at build time (see --json)")


@index_app.command("search")
@handle_errors
def index_search(
    directory: Path = typer.Argument(..., help="Index folder."),
    query: str = typer.Argument(..., help="Search text."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="Number of results."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (embedder and retrieval sections)."),
    mode: str | None = typer.Option(None, "--mode", help="dense or hybrid (dense + BM25); default from config."),
    mmr: float | None = typer.Option(None, "--mmr", min=0.0, max=1.0, help="MMR relevance weight (diversity)."),
    source: str | None = typer.Option(None, "--source", help="Only sources matching this glob."),
    tag: list[str] = typer.Option([], "--tag", help="Only chunks with one of these tags (repeatable)."),
    lang: str | None = typer.Option(None, "--lang", help="Only chunks in this language (en, zh, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Search an index and print the best chunks."""
    from ragguard.config import load_config
    from ragguard.errors import UsageError
    from ragguard.generation.backends import build_embedder
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex
    from ragguard.retrieval.search import RetrievalOptions

    if not query.strip():
        raise UsageError("the query is empty: pass some search text")
    cfg = load_config(config)
    changes: dict[str, Any] = {}
    for key, value in (("mode", mode), ("mmr_lambda", mmr), ("source_glob", source), ("language", lang)):
        if value is not None:
            changes[key] = value
    if tag:
        changes["tags"] = list(tag)
    if changes:
        from ragguard.errors import ConfigError

        try:
            cfg = cfg.replace("retrieval", **changes)
        except ConfigError as exc:
            raise UsageError(str(exc).replace("config key 'retrieval.", "option '")) from None
    knowledge = KnowledgeIndex.load(directory)
    embedder = build_embedder(cfg.embedder)
    knowledge.check_embedder(embedder)
    results = IndexRetriever(knowledge, embedder, RetrievalOptions.from_config(cfg.retrieval)).search(query, k)
    if as_json:
        typer.echo(json.dumps({"query": query, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
        return
    for r in results:
        snippet = " ".join(r.text.split())
        typer.echo(f"{r.score:.3f}  {r.chunk_id}\n       {snippet[:200]}")


@app.command()
@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: embedded offline models)."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: the bundled example index)."),
    guard_factory: str | None = typer.Option(
        None, "--guard", help="MODULE:FUNCTION returning a ragguard.RagGuard (instead of --config/--index)."
    ),
    max_batch: int | None = typer.Option(
        None, "--max-batch", min=1, max=1024,
        help="Questions per shared generation call (default: 8; 1 for an in-process model on the CPU).",
    ),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", min=0, max=10_000, help="How long a batch waits to fill."),
    queue_size: int = typer.Option(64, "--queue-size", min=1, help="Waiting requests before answering 503."),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, max=4096, help="Largest max_tokens a request may ask."),
    max_samples: int = typer.Option(16, "--max-samples", min=1, max=64, help="Largest samples a request may ask."),
    max_body_kb: int = typer.Option(64, "--max-body-kb", min=1, help="Largest request body in KiB."),
    model_name: str = typer.Option("ragguard", "--model-name", help="Model name the server answers to."),
) -> None:
    """Serve ragguard over HTTP: OpenAI-compatible /v1/chat/completions, /ask, /healthz, /metrics."""
    from ragguard.apps.serve import ServeSettings, create_app, load_guard_factory
    from ragguard.errors import UsageError

    try:
        import uvicorn
    except ImportError:
        raise UsageError('ragguard serve needs uvicorn: run `pip install "ragguard[serve]"`') from None
    if guard_factory is not None and (config is not None or index is not None):
        raise UsageError("pass either --guard or --config/--index, not both")
    import socket

    try:  # fail before loading any model when the address is taken
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --port or --host") from None
    guard = load_guard_factory(guard_factory) if guard_factory else build_guard(config, index)
    api_key = os.environ.get("RAGGUARD_API_KEY") or None
    load = getattr(guard.generator, "load", None)
    if callable(load):
        _progress("loading the models…")
        load()  # before the first request, which would otherwise wait for it
    guard.embedder.embed(["warm-up"])
    if max_batch is None:
        # On a small CPU a batched pass costs about what its rows cost one by one, and padding adds
        # to it (bench/serve_load.py --generator embedded: 0.58x); servers and GPUs batch well.
        max_batch = 1 if str(getattr(guard.generator, "device", "")) == "cpu" else 8
    settings = ServeSettings(max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
                             max_body_bytes=max_body_kb * 1024, max_tokens=max_tokens, max_samples=max_samples,
                             api_key=api_key, model_name=model_name)
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        _progress(f"warning: serving on {host} without RAGGUARD_API_KEY: anyone who can reach it may use it")
    _progress(f"serving {model_name} on http://{host}:{port} (/v1/chat/completions, /ask, /healthz, /metrics; "
              f"batches of up to {max_batch}, {max_wait_ms:g} ms wait, auth {'on' if api_key else 'off'})")
    uvicorn.run(create_app(guard, settings), host=host, port=port, log_level="warning", access_log=False)


def run() -> None:
    """Console-script entry point.

    ``ragguard audit diff OLD NEW`` (the documented spelling) is routed to the
    ``audit-diff`` command: typer cannot hold both ``audit FILE`` and a
    ``diff`` sub-command under one name.
    """
    if sys.argv[1:3] == ["audit", "diff"]:
        sys.argv[1:3] = ["audit-diff"]
    try:
        app()
    except BrokenPipeError:  # e.g. `ragguard ask ... | head -1`
        sys.stderr.close()


if __name__ == "__main__":  # pragma: no cover
    run()
