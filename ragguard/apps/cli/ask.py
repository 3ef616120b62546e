"""``ragguard ask`` (answer from the index) and ``ragguard check`` (score answers generated elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard._text import counted, one_line, shorten, terminal_text
from ragguard.apps.cli.common import VERDICT_COLOURS, _progress, app, guard_for, handle_errors
from ragguard.core.types import DIVERGENT


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="The question to answer."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: the bundled example index)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: embedded offline models)."),
    samples: int | None = typer.Option(None, "--samples", min=1, max=64, help="Answers to draw (default: the config's sampling.samples, 5 in the embedded default)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Base seed (default: the config's sampling.seed, 0 in the embedded default)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the contract form)."),
) -> None:
    """Answer QUESTION from the index with a consistency verdict."""
    from ragguard.pipeline import require_question

    require_question(question)
    guard = guard_for(config, index)
    if not as_json:
        from ragguard.pipeline import samples_adaptively

        count = samples or guard.config.sampling.samples
        upto = "up to " if samples_adaptively(guard.config.sampling.adaptive, count) else ""
        _progress(f"retrieving and sampling {upto}{counted(count, 'answer')}…")
    report = guard.ask(question, samples=samples, seed=seed)
    if as_json:
        typer.echo(json_line(report.to_dict()))
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    colour = VERDICT_COLOURS.get(report.verdict, "white")
    typer.echo(terminal_text(report.answer) if report.answer else "(no answer: abstaining)")
    typer.echo("")
    verdict = typer.style(report.verdict.upper(), fg=colour, bold=True)
    grounded = {True: "yes", False: "NO", None: "n/a"}[report.grounded]
    drawn = str(len(report.samples))
    if report.adaptive:
        drawn += f" of {report.adaptive['of']} (adaptive: {report.adaptive['stopped']})"
    calibrated = ""
    if report.calibrated:  # P(right) for the setup the calibration was fitted on
        stale = (report.calibration or {}).get("fitted_for_this_setup") is False
        calibrated = " (calibrated for another setup)" if stale else " (calibrated)"
    typer.echo(f"verdict: {verdict}  agreement: {report.agreement:.0%}  confidence: {report.confidence:.2f}"
               f"{calibrated}  grounded: {grounded}  semantic entropy: {report.semantic_entropy:.2f}  samples: {drawn}")
    for warning in report.warnings:
        typer.echo(typer.style(f"warning: {one_line(warning)}", fg="yellow"))
    if len(report.clusters) > 1:
        typer.echo("clusters:")
        for c in sorted(report.clusters, key=lambda c: (-c.size, c.id)):
            typer.echo(f"  [{c.id}] x{c.size}: {shorten(c.representative, 150, columns=True)}")
    # One line per finding: a detector may report the same pair and reason twice (from two sentences).
    flagged = list({(min(c.a, c.b), max(c.a, c.b), c.kind, c.explanation): c
                    for c in report.contradictions if c.kind != DIVERGENT}.values())
    if flagged:
        typer.echo("contradictions:")
    for c in flagged[:3]:
        typer.echo(typer.style(f"  samples {c.a} and {c.b}, {c.kind}: {one_line(c.explanation)}", fg="red"))
    if len(flagged) > 3:
        typer.echo(f"  (+{len(flagged) - 3} more; see --json)")
    _print_grounding(report.grounding)
    if report.sources:
        typer.echo("sources:")
        for p in report.sources:
            typer.echo(f"  {p.score:.3f}  {one_line(p.doc_id)}")


def _print_grounding(grounding: dict[str, Any] | None) -> None:
    """The voted answer's claims that its passages do not support, and values found in no passage."""
    if not grounding:
        return
    support = grounding.get("support")
    unsupported, absent = grounding.get("unsupported") or [], grounding.get("absent") or []
    if support is not None and (unsupported or absent):
        typer.echo(f"grounding: {support:.0%} of what the answer adds is in its best passages")
    for claim in unsupported[:3]:
        typer.echo(typer.style(f"  unsupported: {shorten(claim, 150, columns=True)}", fg="yellow"))
    for value in absent[:5]:
        typer.echo(typer.style(f"  '{one_line(value)}' appears in no retrieved passage", fg="yellow"))


@app.command()
@handle_errors
def check(
    samples_file: Path = typer.Argument(..., help=".jsonl/.json/.csv records with question, samples, context?"),
    config: Path | None = typer.Option(None, "--config", help="YAML config (embedder and thresholds)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {\"results\": [...]}."),
) -> None:
    """Score answers generated elsewhere (any LLM): cluster, detect contradictions, vote."""
    from ragguard.apps.check import check_record, record_from_csv
    from ragguard.apps.records import BadRecord, no_records, read_records
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
                data = record_from_csv(record.data) if samples_file.suffix.lower() == ".csv" else record.data
                report = check_record(data, embedder, cfg)
                report.warnings[:0] = record.warnings
                own_id = record.data.get("id")
                # The record's own id comes back with its result, so results can be joined to the input.
                entry = {"line": record.line, **({"id": own_id} if isinstance(own_id, (str, int)) else {}),
                         **report.to_dict()}
                entry.pop("fingerprint", None)
                entry.pop("timings", None)
            except UsageError as exc:
                entry = {"line": record.line, "error": str(exc)}
        if "error" in entry:
            bad += 1
            _progress(f"{samples_file}:{entry['line']}: skipped: {entry['error']}")
        results.append(entry)
    if not results:
        raise no_records(samples_file, "question and samples",
                         "question and samples (or sample_1, sample_2, ...) columns")
    if as_json:
        typer.echo(json_line({"results": results}))
    else:
        for entry in results:
            if "error" in entry:
                continue
            colour = VERDICT_COLOURS.get(entry["verdict"], "white")
            verdict = typer.style(entry["verdict"].upper(), fg=colour, bold=True)
            typer.echo(f"{entry['line']:>5}  {verdict:<13}  {entry['agreement']:.0%}  {shorten(entry['question'], 70, columns=True)}")
            for c in entry["contradictions"]:
                if c["kind"] != DIVERGENT:  # the pair, as `ask` prints it: two pairs may share an explanation
                    typer.echo(f"       samples {c['a']} and {c['b']}, {c['kind']}: {one_line(c['explanation'])}")
            if entry.get("grounded") is False:
                absent = (entry.get("grounding") or {}).get("absent") or []
                named = f": {', '.join(repr(v) for v in absent[:3])} in no passage" if absent else ""
                typer.echo(typer.style(f"       not grounded in its context{named}", fg="yellow"))
            for warning in entry.get("warnings") or []:
                typer.echo(typer.style(f"       warning: {one_line(warning)}", fg="yellow"))
    if bad == len(results):
        raise typer.Exit(2)
