"""Whether a calibration still holds for an audit's answers: the audit's ``calibration_drift``, and
``ragguard calibrate --check``.

:func:`ragguard.core.drift.calibration_drift` does the comparison; this module finds the calibration an
audit's records used (:func:`audit_drift`), reads audit folders with or without references
(:func:`read_answers`), adds what the calibration achieves on the answers that have a reference
(:func:`check_calibration`) and prints it (:func:`format_check`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ragguard.apps.audit_io import latest_per_id, read_results
from ragguard.apps.audit_summary import given
from ragguard.apps.calibrate import content_key, results_file
from ragguard.core.calibration import Calibration
from ragguard.core.drift import MAX_SHIFT, MISSING_EXCESS, OUTSIDE_EXCESS, calibrated_probability, calibration_drift
from ragguard.core.metrics import auroc, brier_score, ece_by_chance, expected_calibration_error
from ragguard.errors import ConfigError

__all__ = ["audit_drift", "check_calibration", "format_check", "read_answers"]


def audit_drift(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """``summary.json``'s ``calibration_drift``: the answered records against the calibration they used.

    ``None`` when no answer is calibrated. The file is the one the records name (``calibration.file``,
    the shipped one under ``calibration: auto``); where it cannot be read again, was changed since
    (another sha256) or the records name several, the object says why under ``skipped`` instead.
    """
    answered = [r for r in records if r.get("status", "ok") == "ok"]
    notes = [r["calibration"] for r in answered if r.get("calibrated") is True and isinstance(r.get("calibration"), dict)]
    if not notes:
        return None
    files = sorted({(str(n.get("file") or ""), str(n.get("sha256") or "")) for n in notes})
    if len(files) > 1:
        return {"skipped": f"the answers used {len(files)} calibration files: a drift check reads one"}
    file, sha256 = files[0]
    if not file:
        return {"skipped": "the records do not name their calibration file"}
    from ragguard.apps.calibration_io import load_calibration

    try:
        calibration = load_calibration(file)
    except ConfigError as exc:
        return {"file": file, "skipped": f"the calibration file cannot be read again ({exc})"}
    if sha256 and calibration.data.get("file_sha256") != sha256:
        return {"file": file, "skipped": "the calibration file was changed since the answers used it "
                                         f"(sha256 {sha256[:12]} then): rerun the audit to check it"}
    drift = calibration_drift(calibration, [r for r in answered if given(r)])
    return {"file": file, "sha256": sha256 or calibration.data.get("file_sha256"), **drift.to_dict(),
            "message": drift.message()}


def read_answers(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The answered records of audit folders, with or without a reference (the latest per id; one copy of each).

    A folder that is not an audit is refused (:class:`~ragguard.errors.UsageError`). A record found in two
    folders (a copied audit, one folder named twice) counts once, as in ``ragguard calibrate``.
    """
    seen: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for record in latest_per_id(read_results(results_file(folder), repair=False)).values():
            if record.get("status", "ok") == "ok":
                seen[content_key(record)] = record
    return [seen[key] for key in sorted(seen)]


def _performance(calibration: Calibration, records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """What the calibration achieves on the answers with a reference (``None``: none has one).

    The probability is recomputed from each record with the file (an audit made without it, or with another
    one, is read the same way); answers withheld, and those without any signal the file reads, are left out.
    """
    labelled = [r for r in records if r.get("reference_match") and given(r)]
    if not labelled:
        return None
    pairs = [(p, r["reference_match"] == "match") for r in labelled
             if (p := calibrated_probability(calibration, r)) is not None]
    conf, right = [p for p, _ in pairs], [ok for _, ok in pairs]
    auc = auroc([1.0 - c for c in conf], [not ok for ok in right]) if conf else None
    ece = expected_calibration_error(conf, right) if conf else None
    chance = ece_by_chance(conf) if conf else None
    fitted = calibration.figures.get("calibrated") if isinstance(calibration.figures.get("calibrated"), dict) else {}

    def r(x: Any) -> float | None:
        return round(float(x), 6) if isinstance(x, (int, float)) else None

    return {"labelled": len(pairs), "right": sum(right), "no_signal_left_out": len(labelled) - len(pairs),
            "auroc_confidence_wrong": r(auc), "ece": r(ece), "brier": r(brier_score(conf, right) if conf else None),
            "ece_by_chance": chance,
            # the file's own cross-validated figures, on the data it was fitted on
            "fitted": {"auroc": r(fitted.get("auroc")), "ece": r(fitted.get("ece"))}}


def check_calibration(folders: Sequence[str | Path], calibration: Calibration) -> dict[str, Any]:
    """``ragguard calibrate --check``: drift of the folders' answers from the fit data, and what the file
    achieves on those with a reference; plus what differs between the setup it was fitted for and theirs."""
    from ragguard.apps.calibration_io import mismatches

    records = read_answers(folders)
    drift = calibration_drift(calibration, [r for r in records if given(r)])
    prints = {json.dumps(r["fingerprint"], sort_keys=True): r for r in records if isinstance(r.get("fingerprint"), dict)}
    setup = sorted({m for r in prints.values() for m in mismatches(calibration, r["fingerprint"],
                                                                   len(r.get("samples") or []) or None)})
    return {"calibration": calibration.source, "sha256": calibration.data.get("file_sha256"),
            "audits": [str(f) for f in folders], "records": len(records), **drift.to_dict(),
            "message": drift.message(), "performance": _performance(calibration, records),
            "setup_mismatch": setup}


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def format_check(result: dict[str, Any]) -> str:
    """The drift table (and the figures on answers with a reference) of :func:`check_calibration`."""
    fit = f"fitted on {result['fit_records']} records" if result.get("fit_records") else "fit size not recorded"
    lines = [f"{result['answers']} answers from {len(result['audits'])} audit(s) against {result['calibration']} "
             f"({fit})" + (f"; {result['left_out']} without an answer left out" if result["left_out"] else "")]
    lines.append(f"{'signal':24} {'shift':>6} {'mean':>8} {'fit mean':>8} {'missing':>8} {'outside':>8}  flag")
    for name, f in result["features"].items():
        missing = _pct(f["missing"]) + (f" ({_pct(f['fit_missing'])})" if f["fit_missing"] is not None else "")
        outside = _pct(f["outside"]) + (f" ({_pct(f['fit_outside'])})" if f["fit_outside"] is not None else "")
        flag = ", ".join(f["reasons"]) if result["enough"] and f["reasons"] else ("no weight" if not f["weighted"] else "")
        lines.append(f"{name:24} {f['shift']:+6.2f} {_num(f['mean']):>8} {_num(f['fit_mean']):>8} {missing:>8} "
                     f"{outside:>8}  {flag}".rstrip())
    lines.append(f"shift: the answers' mean minus the fit data's, in the fit's standard deviations (flagged beyond "
                 f"{MAX_SHIFT:g}); missing and outside the fit data's 5th-95th percentiles: the answers' share, the "
                 f"fit data's in brackets (flagged {MISSING_EXCESS * 100:.0f} and {OUTSIDE_EXCESS * 100:.0f} points above it)"
                 + ("" if result["ranges_known"] else "; this file predates the fit data's ranges: shift only"))
    lines.append(result["message"])
    perf = result.get("performance")
    if perf:
        chance = perf["ece_by_chance"]
        lines.append(
            f"on the {perf['labelled']} answers with a reference ({perf['right']} right): AUROC for a wrong answer "
            f"{_num(perf['auroc_confidence_wrong'])} (fitted: {_num(perf['fitted']['auroc'])}), ECE {_num(perf['ece'])} "
            f"(fitted: {_num(perf['fitted']['ece'])}"
            + (f"; a perfectly calibrated confidence would show about {chance['median']:.3f} on this many"
               if chance else "") + f"), Brier {_num(perf['brier'])}"
            + (f"; {perf['no_signal_left_out']} without any signal the file reads left out"
               if perf["no_signal_left_out"] else ""))
    for line in result.get("setup_mismatch") or []:
        lines.append(f"fitted for another setup: {line}")
    return "\n".join(lines)
