"""``ragguard audit`` (ask a question set, write a report) and ``ragguard audit diff``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ragguard._io import json_line
from ragguard._text import one_line
from ragguard.apps.cli.common import _fail, app, guard_for, handle_errors


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
    seed: int | None = typer.Option(None, "--seed", min=0, help="Base seed (default: the config's sampling.seed, 0 in the embedded default)."),
    batch: int | None = typer.Option(
        None, "--batch", min=1, max=256, help="Questions per generation pass (default: 1 for a model on this CPU, where a record is then "
             "exactly the one `ask` gives alone; 8 otherwise). 8 is faster on a CPU too, with log-probabilities "
             "that can differ in the last digit."
    ),
    stop_after_errors: int = typer.Option(
        5, "--stop-after-errors", min=0,
        help="Stop when this many questions in a row end in error (a server that went away); they are asked "
             "again by --resume. 0: never stop, record every error.",
    ),
    progress_every: float = typer.Option(
        10.0, "--progress-every", min=0.0,
        help="When stderr is not a terminal (a CI log), print a progress line at most every this many seconds, "
             "plus the first and the last (0: one line per question). A terminal redraws one bar in place.",
    ),
) -> None:
    """Ask every question of a set and write a report to read before shipping."""
    from ragguard.apps.audit import run_audit
    from ragguard.apps.audit_io import read_json
    from ragguard.locking import refuse_if_held
    from ragguard.progress import ProgressBar

    refuse_if_held(out, what="audit folder")  # before the models load: a second run into --out is refused at once
    guard = guard_for(config, index)
    if samples is not None:
        guard.config = guard.config.replace("sampling", samples=samples)
    if seed is not None:  # as in the config: audit.json's settings and a refused --resume name it
        guard.config = guard.config.replace("sampling", seed=seed)
    bar = ProgressBar(0, sys.stderr, every=progress_every)
    try:
        result = run_audit(questions_file, out, guard, resume=resume or retry_errors, retry_errors=retry_errors,
                           only=only, fail_under=fail_under, batch_questions=batch, progress=bar,
                           stop_after_errors=stop_after_errors)
    except KeyboardInterrupt:
        bar.close()
        partial = (read_json(out / "summary.json") or {}).get("partial")
        shown = (f" (summary.json, results.csv and report.html show what is done; {partial['not_done']} question(s) "
                 "not yet)") if isinstance(partial, dict) and isinstance(partial.get("not_done"), int) else ""
        _fail(f"interrupted; finished questions are saved in {out}/results.jsonl{shown}: rerun with --resume", 130)
    s = result.summary
    counts = [f"{result.ran} run now", f"{result.skipped} already done"]
    if result.unselected:
        counts.append(f"{result.unselected} not selected by --only")
    typer.echo(f"audited {s['questions']} records ({', '.join(counts)}): "
               + ", ".join(f"{k} {v}" for k, v in s["verdicts"].items())
               + f"; errors {s['errors']}, invalid {s['invalid']}")
    if s["reference"]["accuracy"] is not None:
        typer.echo(f"reference accuracy {s['reference']['accuracy']:.0%} over {s['reference']['with_reference']} questions")
    typer.echo(f"report: {result.out / 'report.html'}")
    drift = s.get("calibration_drift") or {}
    if drift.get("flagged"):  # the calibrated confidence is extrapolated for these questions: said, not an exit status
        typer.echo(f"ragguard: warning: {drift['message']}", err=True)
    if result.gate_inherited:  # the folder's gate from an earlier run, checked again: said, not an exit status
        gate = s["gates"]
        typer.echo(f"gate --fail-under {gate['fail_under']} of an earlier run into {out}: "
                   + ("passed" if gate["passed"] else "fails now: " + "; ".join(gate["failures"])), err=True)
    if s["errors"] and not result.gate_failed:  # a CI log must not pass over them in silence (the gate counts them)
        typer.echo(f"ragguard: warning: {s['errors']} question(s) ended in error and were not measured (results.jsonl "
                   "holds why): rerun with --resume --retry-errors", err=True)
    for message in result.gate_messages if result.gate_failed else []:
        typer.echo(f"ragguard: gate failed: {message}", err=True)
    if result.gate_failed:
        raise typer.Exit(1)


@app.command("audit-diff")
@handle_errors
def audit_diff(
    old: Path = typer.Argument(..., help="Audit folder of the earlier run."),
    new: Path = typer.Argument(..., help="Audit folder of the later run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (every changed question included)."),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression",
        help="Exit 1 when a question consistent in OLD is flagged in NEW, a reference match is lost, or the "
             "consistent share or reference accuracy dropped by more than --tolerance (a CI gate).",
    ),
    tolerance: float | None = typer.Option(
        None, "--tolerance", min=0.0, max=1.0,
        help="How far the consistent share or reference accuracy may drop (a fraction) before it is a regression; "
             "a smaller drop is reported, not failed (default 0.01; 0: any drop).",
    ),
    show_all: bool = typer.Option(
        False, "--all", help="Also list each question whose answer alone was reworded (otherwise counted per verdict).",
    ),
) -> None:
    """Compare two audits: a verdict transition table, the questions whose verdict changed, each summary figure.

    Spelled `ragguard audit diff OLD NEW` (as the README writes it) or `ragguard audit-diff OLD NEW`.
    """
    from ragguard.apps.audit import diff_audits

    d = diff_audits(old, new) if tolerance is None else diff_audits(old, new, tolerance=tolerance)
    if as_json:
        typer.echo(json_line(d))
    else:
        _print_diff(d, show_all)
    failing = d["regression"]["failing"]
    if fail_on_regression and failing:
        questions = len(d["regression"]["questions"])
        typer.echo(f"ragguard: gate failed: {failing} regression(s) from {old} to {new}: {questions} question(s), "
                   f"{failing - questions} figure(s) beyond --tolerance {d['regression']['tolerance']:g} "
                   "(--fail-on-regression)", err=True)
        raise typer.Exit(1)


def _print_diff(d: dict, show_all: bool = False) -> None:
    names = {"config_hash": "config", "index_id": "index", "input_sha256": "questions file",
             "ragguard_version": "ragguard version", "model_sha256": "model weights", "adapter_sha256": "adapter weights",
             "calibration": "calibration file (consistency.calibration: confidence and the calibration figures)"}
    for key, v in d["setup_changed"].items():
        if key == "config_hash" and d["settings_changed"]:
            # name the settings (a config hash alone says only that something differs)
            settings = "; ".join(f"{k} {_setting(c['old'])} -> {_setting(c['new'])}"
                                 for k, c in d["settings_changed"].items())
            _say(f"the runs differ in their settings: {settings} (config {v['old']} -> {v['new']}; changes "
                       "may come from it)")
            continue
        if key == "input_sha256" and all((d.get("input_files") or {}).get(side) for side in ("old", "new")):
            files = d["input_files"]  # the file names say more than two hashes
            which = (f"{files['old']} -> {files['new']}" if files["old"] != files["new"]
                     else f"{files['new']} was edited between the runs")
            _say(f"the runs differ in their questions file: {which} (sha256 {v['old'][:12]} -> {v['new'][:12]}; "
                 "changes may come from it)")
            continue
        _say(f"the runs differ in their {names[key]}: {v['old']} -> {v['new']} (changes may come from it)")
    changed, counts = d["changed"], d["changed_counts"]
    kinds = [f"{counts['verdict']} verdict", f"{counts['reference']} reference match only",
             f"{counts['answer']} answer only"]
    _say(f"{d['compared']} records in both (invalid lines included); {len(changed)} changed"
         + (f" ({', '.join(kinds)})" if changed else ""))
    moved = [t for t in d["transitions"] if t["from"] != t["to"]]
    if moved:
        _say("verdict OLD -> NEW:")
        width = max(len(f"{t['from']} -> {t['to']}") for t in moved)
        for t in moved:
            _say(f"  {t['from'] + ' -> ' + t['to']:<{width}}  {t['count']}")
        kept = ", ".join(f"{t['from']} {t['count']}" for t in d["transitions"] if t["from"] == t["to"])
        _say(f"  unchanged: {kept or 'none'}")
    order = {(t["from"], t["to"]): n for n, t in enumerate(d["transitions"])}  # rows grouped as the table lists them
    verdict = sorted((c for c in changed if c["kind"] == "verdict"),
                     key=lambda c: order.get((_side(c, "old"), _side(c, "new")), len(order)))
    if verdict:
        _say(f"verdict changed ({len(verdict)}):")
        for c in verdict:
            _say(f"  {_row(c)}: {_side(c, 'old')} -> {_side(c, 'new')}  ({', '.join(c['changed'])})")
    reference = [c for c in changed if c["kind"] == "reference"]
    if reference:
        _say(f"reference match changed, same verdict ({len(reference)}):")
        for c in reference:
            _say(f"  {_row(c)}: {_side(c, 'new')}, reference {c['old']['reference_match'] or 'none'} -> "
                 f"{c['new']['reference_match'] or 'none'}  ({', '.join(c['changed'])})")
    reworded = [c for c in changed if c["kind"] == "answer"]
    if reworded:
        per = {}
        for c in reworded:
            per[_side(c, "new")] = per.get(_side(c, "new"), 0) + 1
        split = ", ".join(f"{k} {n}" for k, n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0])))
        if show_all:
            _say(f"answer reworded, same verdict and reference match ({len(reworded)}: {split}):")
            for c in reworded:
                _say(f"  {_row(c)}: {_side(c, 'new')}  (answer)")
        else:
            _say(f"answer reworded, same verdict and reference match: {len(reworded)} ({split}); --all or --json "
                 "lists them")
    for side, rows in (("NEW", d["added"]), ("OLD", d["dropped"])):
        if rows:
            _say(f"only in {side} ({len(rows)}): " + ", ".join(f"{r['id']} ({r['verdict'] or r['status']})"
                                                                     for r in rows))
    # A figure that one run has and the other does not (no question answered) is a change too: "0.17 -> n/a".
    figures = {k: v for k, v in d["figures"].items() if v["old"] != v["new"] and not k.startswith("calibration.")}
    _say("figures:" if figures else "figures: none changed")
    for key, v in figures.items():
        counted = isinstance(v["old"], int) and isinstance(v["new"], int)  # verdict, error and invalid counts
        change = "" if v["change"] is None else f" ({int(v['change']):+d})" if counted else f" ({v['change']:+.3f})"
        _say(f"  {key}: {_raw(v['old'])} -> {_raw(v['new'])}{change}")
    # Calibration figures are printed whenever either audit has them, changed or not: "the ECE
    # stayed at 0.04" is as much an answer as a change.
    calibration = {k: v for k, v in d["figures"].items() if k.startswith("calibration.")}
    if any(v["old"] is not None or v["new"] is not None for v in calibration.values()):
        _say("calibration (answers with a reference):")
        for key, v in calibration.items():
            change = "" if v["change"] is None else f" ({v['change']:+.3f})"
            _say(f"  {key.removeprefix('calibration.')}: {_num(v['old'])} -> {_num(v['new'])}{change}")
    _print_regressions(d["regression"])


def _print_regressions(report: dict) -> None:
    """One line per regressed question (all its aspects), then the figures; drops within the tolerance apart."""
    from ragguard.apps.audit_summary import aspect_change, figure_message

    failing = [f for f in report["figures"] if not f["within_tolerance"]]
    if report["questions"] or failing:
        _say(f"regressions ({len(report['questions'])} question(s), {len(failing)} figure(s)):")
    for q in report["questions"]:
        _say(f"  {q['id']}: {'; '.join(aspect_change(a, q['old'], q['new']) for a in q['aspects'])}")
    for f in failing:
        _say(f"  {figure_message(f)}")
    for f in report["figures"]:
        if f["within_tolerance"]:
            _say(f"within --tolerance {report['tolerance']:g} (not a regression): {figure_message(f)}")


def _side(change: dict, side: str) -> str:
    return str(change[side]["verdict"] or change[side]["status"])


def _row(change: dict) -> str:
    moved = f" ({change['old_id']} in OLD)" if change.get("old_id") else ""
    return f"{change['id']}{moved}"


def _raw(value: float | None) -> str:
    return "n/a" if value is None else str(value)


def _setting(value: object) -> str:
    from ragguard._text import shorten

    return shorten(repr(value), 60) if isinstance(value, str) else str(value)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _say(text: str) -> None:
    """One line of ``audit diff``: ids, answers and error texts are data, so their control characters are escaped."""
    typer.echo(one_line(text))
