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
    audit_dirs: list[Path] = typer.Argument(..., help="Folders written by `ragguard audit` with references."),
    out: Path = typer.Option(..., "--out", help="Where to write calibration.json."),
    method: str = typer.Option(
        "logistic", "--method",
        help="'logistic' (default), 'isotonic', or 'mean' (equal weights: for a few dozen right answers)."),
    folds: int = typer.Option(5, "--folds", min=2, max=20, help="Cross-validation folds for the figures."),
    target_precision: float = typer.Option(
        0.9, "--target-precision", min=0.0, max=1.0,
        help="Choose the confidence threshold at which the answers kept are right this often."),
    signals: str | None = typer.Option(
        None, "--signals", help="Comma-separated signals to fit on (default: every recorded one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Fit the probability that the voted answer is right, for the model the audits ran."""
    from ragguard.apps.calibrate import against_direction, fit_calibration, read_labelled

    records = read_labelled(audit_dirs)
    chosen = [n.strip() for n in signals.split(",") if n.strip()] if signals else None
    calibration = fit_calibration(records, method=method, folds=folds, target_precision=target_precision,
                                  signals=chosen)
    data = calibration.to_dict()
    against = against_direction(calibration)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    if as_json:
        typer.echo(json_line({"out": str(out), "figures": data["figures"], "threshold": data["threshold"],
                               "data": data["data"], "fitted_for": data["fitted_for"],
                               "against_direction": against}))
        return
    typer.echo(format_figures(data))
    if against:
        typer.echo(f"warning: the fitted weight of {', '.join(against)} points against the signal's usual direction "
                   "(likely noise with this many right answers): try --method mean, or leave it out of --signals",
                   err=True)
    typer.echo(f"wrote {out}: set consistency.calibration: {out} in your config", err=True)


def format_figures(data: dict[str, Any]) -> str:
    """The figures of a calibration as a table (cross-validated)."""
    fig = data["figures"]

    def f(x: float | None) -> str:
        return "    -" if x is None else f"{x:5.3f}"

    lines = [f"{data['data']['records']} labelled records, {data['data']['right']} right; "
             f"{fig['folds']}-fold cross-validated; method {data['method']}",
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
