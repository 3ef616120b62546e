"""``ragguard ask`` (answer from the index) and ``ragguard check`` (score answers generated elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard._text import columns, counted, one_line, shorten, terminal_text
from ragguard.apps.cli.common import VERDICT_COLOURS, _fail, _progress, app, guard_for, handle_errors
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


# Inputs of at least this many records get a progress bar on stderr (rate, ETA, counts per verdict).
PROGRESS_FROM = 20


@app.command()
@handle_errors
def check(
    samples_file: Path = typer.Argument(..., help=".jsonl/.json/.csv records with question, samples, context? (each "
                                        "may be gzipped: .jsonl.gz); - reads JSON lines from stdin."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (embedder and thresholds)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {\"results\": [...]}."),
    skip: int = typer.Option(0, "--skip", min=0, help="Start after the first N records of the file (blank lines are "
                             "not records): an interrupted run says which N continues it."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any record was skipped as invalid (a CI gate); "
                                "without it a run exits 0 while some record was scored."),
) -> None:
    """Score answers generated elsewhere (any LLM): cluster, detect contradictions, vote.

    Results are printed at the end; an interrupt (Ctrl-C, SIGTERM) prints those so far, exits 130 and names the --skip that continues the run.
    """
    from ragguard.apps.check import checker_from_config
    from ragguard.apps.records import STDIN, BadRecord, no_records, read_records, record_type
    from ragguard.config import load_config
    from ragguard.errors import UsageError
    from ragguard.generation.backends import build_embedder
    from ragguard.progress import ProgressBar

    cfg = load_config(config)
    embedder = build_embedder(cfg.embedder)
    # Config-level problems (a missing consistency.calibration file) are one usage error here, before any
    # record, and the calibration is read once for the whole file.
    checker = checker_from_config(cfg, embedder)
    records = list(read_records(samples_file, stdin=True))
    if not records:
        raise no_records(samples_file, "question and samples",
                         "question and samples (or sample_1, sample_2, ...) columns")
    shown = "stdin" if str(samples_file) == STDIN else str(samples_file)
    if skip >= len(records):
        raise UsageError(f"--skip {skip} skips every record: {shown} holds {counted(len(records), 'record')}")
    todo = records[skip:]
    suffix = record_type(samples_file)
    unit = "item" if suffix == ".json" else "line"  # a .json list's positions are items, not lines of the file
    bar = ProgressBar(len(todo), sys.stderr, unit="records") if len(todo) >= PROGRESS_FROM else None
    say = bar.note if bar is not None else _progress
    step = 1 if bar is None or bar.live else max(1, len(todo) // 100)  # a log gets at most ~100 progress lines
    results: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for record in records[:skip]:  # their ids are taken: a continued run warns of a duplicate as one whole run does
        if not isinstance(record, BadRecord):
            _record_id(record.data, record.line, seen, unit)
    pending = 0
    try:
        for record in todo:
            entry = _check_entry(record, suffix == ".csv", embedder, cfg, checker, seen, unit)
            results.append(entry)
            place = f"{shown} item {entry['line']}" if unit == "item" else f"{shown}:{entry['line']}"
            if "error" in entry:
                say(f"{place}: skipped: {entry['error']}")
                for warning in entry.get("warnings") or []:  # e.g. the rows an unclosed quote swallowed
                    say(f"{place}: warning: {warning}")
            if bar is not None:
                bar.counts["invalid" if "error" in entry else entry["verdict"]] += 1
                pending += 1
                if pending >= step or len(results) == len(todo):
                    bar.advance("", count=pending)  # the label was counted above
                    pending = 0
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        done = len(results)
        _print_check(results, as_json, {"interrupted": True, "checked": done, "next_skip": skip + done})
        shown = "on stdout" if as_json else "above"
        _fail(f"interrupted after {done} of {counted(len(todo), 'record')} (the results so far are {shown}): "
              f"rerun with --skip {skip + done} to check the rest", 130)
    if bar is not None:
        bar.close()
    _print_check(results, as_json)
    bad = sum(1 for entry in results if "error" in entry)
    if bad == len(results):
        raise typer.Exit(2)
    if strict and bad:
        typer.echo(f"ragguard: gate failed: {bad} of {counted(len(results), 'record')} skipped as invalid (--strict)",
                   err=True)
        raise typer.Exit(1)


def _record_id(data: dict[str, Any], line: int, seen: dict[str, int], unit: str) -> tuple[dict[str, Any], list[str]]:
    """The record's own id as it comes back (``{"id": ...}`` or ``{}``), and warnings about it.

    The rules of ``audit``: the whitespace around an id is dropped; an id is a string or a whole number (not a
    bool, a float or a list), holds no control character, and is not another record's. ``check`` scores the record anyway: an id of another
    type is left out, the others are kept, each with a warning saying why.
    """
    from ragguard.apps.records import ID_CONTROL, id_given, id_has_control, id_key, id_trim_note, id_typed

    raw = data.get("id")
    if not id_given(raw):  # an empty CSV cell is no id
        return {}, []
    if not id_typed(raw):
        kind = "a bool" if isinstance(raw, bool) else type(raw).__name__
        shown = shorten(repr(raw), 40)
        return {}, [f"'id' {shown} is {kind}, not a string or a whole number: it is left out of the result"]
    key = id_key(raw)
    notes = [note for note in (id_trim_note(raw),) if note]
    if id_has_control(key):
        notes.append(ID_CONTROL)
    if key in seen:
        notes.append(f"duplicate id {shorten(repr(key), 40)}: {unit} {seen[key]} has it too")
    else:
        seen[key] = line
    return {"id": key if isinstance(raw, str) else raw}, notes


def _check_entry(record: Any, csv: bool, embedder: Any, cfg: Any, checker: Any, seen: dict[str, int],
                 unit: str) -> dict[str, Any]:
    """One result of ``check --json``: the report, or ``{"line", "id"?, "error", "warnings"?}``."""
    from ragguard.apps.check import check_record, record_from_csv
    from ragguard.apps.records import BadRecord
    from ragguard.errors import UsageError

    if isinstance(record, BadRecord):
        return record.to_dict()
    # The record's own id comes back with its result, failed or not, so results can be joined to the input.
    own_id, id_notes = _record_id(record.data, record.line, seen, unit)
    warnings = [*record.warnings, *id_notes]
    try:
        data = record_from_csv(record.data) if csv else record.data
        report = check_record(data, embedder, cfg, checker=checker)
    except UsageError as exc:
        # Its warnings stay: "the cell spans lines 2-4" is what says which rows an unclosed quote swallowed.
        return {"line": record.line, **own_id, "error": str(exc), **({"warnings": warnings} if warnings else {})}
    report.warnings[:0] = warnings
    entry = {"line": record.line, **own_id, **report.to_dict()}
    entry.pop("fingerprint", None)
    entry.pop("timings", None)
    return entry


def _print_check(results: list[dict[str, Any]], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """``check``'s output: one JSON object, or a table of the scored records (plain text padded first,
    then styled, so columns line up with colours off as in a CI log)."""
    if as_json:
        typer.echo(json_line({"results": results, **(extra or {})}))
        return
    scored = [entry for entry in results if "error" not in entry]
    ids = [shorten(str(entry["id"]), 16, columns=True) if "id" in entry else "" for entry in scored]
    id_width = max((columns(i) for i in ids), default=0)
    verdict_width = max(len(v) for v in VERDICT_COLOURS)
    for entry, own_id in zip(scored, ids, strict=True):
        colour = VERDICT_COLOURS.get(entry["verdict"], "white")
        verdict = typer.style(f"{entry['verdict'].upper():<{verdict_width}}", fg=colour, bold=True)
        id_cell = f"{own_id}{' ' * (id_width - columns(own_id))}  " if id_width else ""
        typer.echo(f"{entry['line']:>5}  {id_cell}{verdict}  {entry['agreement']:>4.0%}  "
                   f"conf {entry['confidence']:.2f}  {shorten(entry['question'], 70, columns=True)}")
        for c in entry["contradictions"]:
            if c["kind"] != DIVERGENT:  # the pair, as `ask` prints it: two pairs may share an explanation
                typer.echo(f"       samples {c['a']} and {c['b']}, {c['kind']}: {one_line(c['explanation'])}")
        if entry.get("grounded") is False:
            absent = (entry.get("grounding") or {}).get("absent") or []
            named = f": {', '.join(repr(v) for v in absent[:3])} in no passage" if absent else ""
            typer.echo(typer.style(f"       not grounded in its context{named}", fg="yellow"))
        for warning in entry.get("warnings") or []:
            typer.echo(typer.style(f"       warning: {one_line(warning)}", fg="yellow"))
