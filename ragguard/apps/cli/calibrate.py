"""``ragguard calibrate``: fit a calibrated confidence on audit results and write calibration.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard.apps.cli.common import app, handle_errors


@app.command()
@handle_errors
def calibrate(
    ctx: typer.Context,
    audit_dirs: list[Path] = typer.Argument(
        ..., help="Folders written by `ragguard audit`: with references to fit; with or without them for --check."),
    out: Path | None = typer.Option(None, "--out", help="Where to write calibration.json (needed to fit)."),
    method: str = typer.Option(
        "logistic", "--method",
        help="'logistic' (default), 'isotonic', or 'mean' (equal weights: for a few dozen right answers)."),
    folds: int = typer.Option(5, "--folds", min=2, max=20, help="Cross-validation folds for the figures."),
    target_precision: float = typer.Option(
        0.9, "--target-precision", min=0.0, max=1.0,
        help="Choose the confidence threshold at which the answers kept are right this often."),
    signals: str | None = typer.Option(
        None, "--signals", help="Comma-separated signals to fit on (default: every recorded one)."),
    mixed: bool = typer.Option(
        False, "--mixed-setups",
        help="Fit audits of different setups (model, samples, prompt, ...) together; refused without it."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
    check: bool = typer.Option(
        False, "--check",
        help="Fit nothing: compare the audits' answers with the data --calibration was fitted on (drift), and "
             "show what it achieves on those with a reference."),
    calibration_file: str | None = typer.Option(
        None, "--calibration",
        help="With --check: the calibration.json to check ('auto': the file the embedded default ships)."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="With --check: exit 1 when drift is flagged."),
) -> None:
    """Fit the probability that the voted answer is right, for the model the audits ran (or --check a fitted one)."""
    from ragguard.apps.calibrate import (
        against_direction,
        describe_mixed_setups,
        fit_calibration,
        mixed_setups_refusal,
        read_labelled,
    )
    from ragguard.errors import UsageError

    if check:
        _check_drift(ctx, audit_dirs, calibration_file, fail_on_drift, as_json)
        return
    for name, flag in (("calibration_file", "--calibration"), ("fail_on_drift", "--fail-on-drift")):
        if _given(ctx, name):
            raise UsageError(f"{flag} goes with --check: add --check to check a calibration, or drop {flag} to fit one")
    if out is None:
        raise UsageError("--out is missing: pass --out calibration.json to fit one, or --check --calibration FILE to "
                         "check a fitted one")
    _check_out(out)  # before the fit: a bad path is refused at once, not after a minute of fitting
    records = read_labelled(audit_dirs)
    refusal = mixed_setups_refusal(records)
    if refusal and not mixed:
        raise UsageError(refusal)
    chosen = [n.strip() for n in signals.split(",") if n.strip()] if signals else None
    calibration = fit_calibration(records, method=method, folds=folds, target_precision=target_precision,
                                  signals=chosen)
    data = calibration.to_dict()
    against = against_direction(calibration)
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write it ({exc.strerror or exc}): pass a writable file path") from None
    finally:
        tmp.unlink(missing_ok=True)
    if as_json:
        typer.echo(json_line({"out": str(out), "figures": data["figures"], "threshold": data["threshold"],
                               "data": data["data"], "fitted_for": data["fitted_for"],
                               "against_direction": against}))
        return
    typer.echo(format_figures(data))
    if refusal:
        typer.echo(f"warning: {describe_mixed_setups(records)}: the file holds for the most common one "
                   "(fitted_for; fitted_for.mixed lists the values), answers of the others are marked as "
                   "calibrated for another setup", err=True)
    if against:
        typer.echo(f"warning: the fitted weight of {', '.join(against)} points against the signal's usual direction "
                   "(likely noise with this many right answers): try --method mean, or leave it out of --signals",
                   err=True)
    if data["figures"].get("worse_than_uncalibrated"):
        cal, unc = data["figures"]["calibrated"], data["figures"]["uncalibrated"]
        typer.echo(f"warning: the calibrated confidence ranks wrong answers worse than the uncalibrated formula "
                   f"(AUROC {cal['auroc']:.3f}, 95 % interval {cal['auroc_95'][0]:.3f}-{cal['auroc_95'][1]:.3f}, "
                   f"against {unc['auroc']:.3f}): try another --method, or --signals with the signals that rank "
                   "best above", err=True)
    # A relative path in a config is read from the config file's folder: the absolute one works from anywhere.
    typer.echo(f"wrote {out}: set consistency.calibration: {out.resolve()} in your config", err=True)


# The options that shape a fit: --check fits nothing, so it refuses them rather than ignore them.
_FIT_OPTIONS = {"out": "--out", "method": "--method", "folds": "--folds", "target_precision": "--target-precision",
                "signals": "--signals", "mixed": "--mixed-setups"}


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)  # by name: typer may bring its own copy of click's enum
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _check_drift(ctx: typer.Context, audit_dirs: list[Path], calibration_file: str | None, fail_on_drift: bool,
                 as_json: bool) -> None:
    """``ragguard calibrate --check``: print the drift table (and the figures on answers with a reference)."""
    from ragguard.apps.calibration_drift import check_calibration, format_check
    from ragguard.apps.calibration_io import EMBEDDED_CALIBRATION, load_calibration
    from ragguard.errors import ConfigError, UsageError

    given = [flag for name, flag in _FIT_OPTIONS.items() if _given(ctx, name)]
    if given:
        raise UsageError(f"--check fits nothing, so {', '.join(given)} does not apply: drop it, or drop --check to fit")
    if not calibration_file:
        raise UsageError("--check needs --calibration FILE: the calibration.json to check (auto: the shipped one)")
    path = EMBEDDED_CALIBRATION if calibration_file.strip().lower() == "auto" else Path(calibration_file).expanduser()
    if not path.is_file():
        raise UsageError(f"--calibration {path} is not a file: pass a calibration.json written by `ragguard calibrate` "
                         "(or auto for the shipped one)")
    try:
        calibration = load_calibration(path)
    except ConfigError as exc:  # its message names the config key: here it is the option
        raise UsageError(str(exc).replace("consistency.calibration: ", "--calibration ", 1)) from None
    result = check_calibration(audit_dirs, calibration)
    if as_json:
        typer.echo(json_line(result))
    else:
        typer.echo(format_check(result))
    if fail_on_drift and result["flagged"]:
        raise typer.Exit(1)


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written (a folder, a read-only place) before anything is fitted."""
    import tempfile

    from ragguard.errors import UsageError

    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: pass a file, e.g. {out / 'calibration.json'}")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders missing are made when the file is written
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ragguard-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc}): pass a writable file path") from None


def format_figures(data: dict[str, Any]) -> str:
    """The figures of a calibration as a table (cross-validated)."""
    fig = data["figures"]

    def f(x: float | None) -> str:
        return "    -" if x is None else f"{x:5.3f}"

    withheld = fig.get("no_answer_left_out") or 0
    lines = [f"{data['data']['records']} labelled records, {data['data']['right']} right; "
             f"{fig['folds']}-fold cross-validated; method {data['method']}"
             + (f"; {withheld} without an answer left out (retrieval or on_flagged abstained: such an answer gets "
                "confidence 0 without the calibration)" if withheld else ""),
             f"{'':28} {'AUROC':>6} {'AUPRC':>6} {'Brier':>6} {'ECE':>6}"]
    for name, row in (("calibrated confidence", fig["calibrated"]), ("uncalibrated confidence", fig["uncalibrated"])):
        if row:
            lines.append(f"{name:28} {f(row['auroc']):>6} {f(row['auprc']):>6} {f(row['brier']):>6} {f(row['ece']):>6}")
    # How far to trust the two figures above (files written before these were recorded lack them).
    interval, chance = (fig["calibrated"] or {}).get("auroc_95"), fig.get("ece_by_chance")
    notes = ([f"the calibrated AUROC's 95 % bootstrap interval: {interval[0]:.3f}-{interval[1]:.3f} "
              f"(with {data['data']['right']} right answers)"] if interval else []) + \
            ([f"a perfectly calibrated confidence would show an ECE of {chance['median']:.3f} here by chance "
              f"(95th percentile {chance['p95']:.3f})"] if chance else [])
    lines += [f"{'':28} {note}" for note in notes]
    for name, row in fig["signals"].items():
        lines.append(f"{name:28} {f(row['auroc']):>6} {f(row['auprc']):>6}")
    target = fig["target"]
    if target["threshold"] is None:
        lines.append(f"no confidence threshold keeping at least 10 answers (and 5 %) reaches precision "
                     f"{data['target_precision']:.2f}: min_confidence stays unset (no gate)")
        reach = target.get("reachable")
        if reach:
            lines.append(f"  the best reachable: precision {reach['precision']:.2f} at coverage {reach['coverage']:.1%} "
                         f"(confidence >= {reach['threshold']:.3f}); pass a lower --target-precision to gate there")
    else:
        lines.append(f"threshold {target['threshold']:.3f}: precision {target['precision']:.2f} at coverage "
                     f"{target['coverage']:.1%} (target {data['target_precision']:.2f})")
    return "\n".join(lines)
