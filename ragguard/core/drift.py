"""How far a set of answers lies from the data a calibration was fitted on.

A calibration (:class:`~ragguard.core.calibration.Calibration`) holds for data
like the data it was fitted on. When a team's questions differ (other
documents, other kinds of question), its answers' signals can sit where the fit
saw few answers, and the probability there is extrapolated: nothing in the
number says so. :func:`calibration_drift` compares answers with the fit data,
signal by signal, from what the file records:

* **shift**: the answers' mean minus the fit data's mean, in units of the fit
  data's standard deviation (``means`` and ``scales`` of the file; missing
  values count as the fit's median in both, as the calibration reads them).
  Flagged beyond :data:`MAX_SHIFT` (1 scale): for a bell-shaped signal, no more
  than about a sixth of the fit data lay beyond the answers' average.
* **outside** (files that record ``fit_data``; older files are checked by
  shift alone): the share of the answers' values below the fit data's 5th
  percentile or above its 95th, against the share of the fit data itself there
  (about 10 %, less where values tie). Flagged when it exceeds the fit's by
  more than :data:`OUTSIDE_EXCESS` (0.15): of 20 answers drawn like fit data
  with 10 % outside, 6 or more lie outside about once in a hundred sets.
* **missing**: the share of answers that lack the signal (no log-probabilities,
  no context), against the fit's share (known from ``fit_data`` only). Such an
  answer gets the fit's median, so its probability ignores what the signal
  would have said. Flagged when it exceeds the fit's by more than
  :data:`MISSING_EXCESS` (0.2).

A signal whose fitted weight is 0 (one that never varied in the fit data) moves
no probability: it is reported, never flagged. Fewer than :data:`MIN_RECORDS`
(20) answers say nothing: the mean of ``n`` answers drawn like the fit data
moves by about ``1/sqrt(n)`` scale by chance (0.22 at 20, so a 1-scale shift is
4.5 times that; 0.45 at 5), and the result says so instead of flagging.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ragguard.core.calibration import Calibration, features

__all__ = ["MAX_SHIFT", "MIN_RECORDS", "MISSING_EXCESS", "OUTSIDE_EXCESS", "Drift", "FeatureDrift",
           "calibration_drift", "calibrated_probability"]

MIN_RECORDS = 20
MAX_SHIFT = 1.0
OUTSIDE_EXCESS = 0.15
MISSING_EXCESS = 0.2
# A fitted weight below this moves no probability (a constant signal gets about 1e-17 of either sign).
_WEIGHTLESS = 1e-6
# Shares are ratios of counts: 5 of 20 less 0.1 must not pass a 0.15 limit by a rounding error.
_EPS = 1e-9


@dataclass(frozen=True)
class FeatureDrift:
    """One signal of the calibration, in the answers against the fit data (see the module docstring)."""

    name: str
    shift: float  # (answers' mean - fit mean) / fit scale
    mean: float  # the answers' mean (missing values as the fit's median)
    fit_mean: float
    scale: float
    score_shift: float  # weight * shift: how far it moves the mean log-odds of the calibration
    present: int  # answers that have the signal
    missing: float  # share of answers without it
    fit_missing: float | None  # None: the file does not record it
    below: float | None  # share of the answers' values below the fit's 5th percentile (None: not recorded)
    above: float | None  # ... above its 95th
    fit_below: float | None
    fit_above: float | None
    weighted: bool  # the fit gives it a weight (else it is never flagged)
    reasons: tuple[str, ...] = ()  # "shift", "outside", "missing": why it is flagged

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def outside(self) -> float | None:
        return None if self.below is None or self.above is None else self.below + self.above

    @property
    def fit_outside(self) -> float | None:
        return None if self.fit_below is None or self.fit_above is None else self.fit_below + self.fit_above

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 6)

        return {"shift": r(self.shift), "mean": r(self.mean), "fit_mean": r(self.fit_mean), "scale": r(self.scale),
                "score_shift": r(self.score_shift), "present": self.present, "missing": r(self.missing),
                "fit_missing": r(self.fit_missing), "outside": r(self.outside), "fit_outside": r(self.fit_outside),
                "below": r(self.below), "above": r(self.above), "fit_below": r(self.fit_below),
                "fit_above": r(self.fit_above), "weighted": self.weighted, "flagged": self.flagged,
                "reasons": list(self.reasons)}

    def sentence(self) -> str:
        """What a flag means, in one plain clause per reason (``""`` when not flagged)."""
        parts = []
        outside = (f"{_pct(self.outside)} of {{}} values lie outside the fit data's 5th-95th percentiles, mostly "
                   f"{'below' if (self.below or 0) >= (self.above or 0) else 'above'}, against "
                   f"{_pct(self.fit_outside)} of the fit data")
        if "shift" in self.reasons:
            side = "below" if self.shift < 0 else "above"
            parts.append(f"the answers' {self.name} sits {abs(self.shift):.1f} scales {side} the data the calibration "
                         "was fitted on" + (f" ({outside.format('its')})" if "outside" in self.reasons else ""))
        elif "outside" in self.reasons:
            parts.append(outside.format(f"the answers' {self.name}"))
        if "missing" in self.reasons:
            parts.append(f"{self.name} is missing from {_pct(self.missing)} of the answers ({_pct(self.fit_missing)} "
                         "of the fit data)")
        return "; ".join(parts)


def _pct(share: float | None) -> str:
    return "?" if share is None else f"{share * 100:.0f} %"


@dataclass(frozen=True)
class Drift:
    """The answers against a calibration's fit data: per signal, and whether there were enough to say."""

    answers: int  # the answers compared (records with an answer)
    left_out: int  # records without an answer (a probability is never given to them)
    features: tuple[FeatureDrift, ...]
    fit_records: int | None  # how many records the calibration was fitted on (None: not recorded)
    ranges_known: bool  # the file records fit_data (else: shift only)
    min_records: int = MIN_RECORDS
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "max_shift": MAX_SHIFT, "outside_excess": OUTSIDE_EXCESS, "missing_excess": MISSING_EXCESS})

    @property
    def enough(self) -> bool:
        return self.answers >= self.min_records

    @property
    def flagged(self) -> list[str]:
        return [f.name for f in self.features if f.flagged] if self.enough else []

    def message(self) -> str:
        """One line: too few answers, drift and what to do, or none found."""
        if not self.enough:
            return (f"only {self.answers} answer{'s' if self.answers != 1 else ''}: a drift check needs at least "
                    f"{self.min_records} (the mean of a handful moves by a scale by chance), so it says nothing here")
        if not self.flagged:
            scope = "shift" if not self.ranges_known else "shift, range or missing signals"
            return (f"no drift: the {self.answers} answers' signals lie near the data the calibration was fitted on "
                    f"({scope} checked)")
        flagged = [f for f in self.features if f.flagged]
        said = "; ".join(f.sentence() for f in flagged)
        beyond = any({"shift", "outside"} & set(f.reasons) for f in flagged)
        why = ("the calibrated probabilities are extrapolated here" if beyond else
               "an answer without a signal gets the fit's median for it, so its probability ignores that signal")
        return (f"calibration drift: {said}: {why}; refit with `ragguard calibrate` on a labelled audit of your "
                "own questions")

    def to_dict(self) -> dict[str, Any]:
        return {"answers": self.answers, "left_out": self.left_out, "min_records": self.min_records,
                "enough": self.enough, "fit_records": self.fit_records, "ranges_known": self.ranges_known,
                "thresholds": dict(self.thresholds), "flagged": self.flagged,
                "features": {f.name: f.to_dict() for f in self.features}}


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


def calibration_drift(calibration: Calibration, records: Iterable[Mapping[str, Any]],
                      min_records: int = MIN_RECORDS) -> Drift:
    """Compare ask records with the data ``calibration`` was fitted on (see the module docstring).

    Args:
        calibration: the fitted calibration (its ``means``, ``scales``, ``medians`` and, when the file
            records it, ``fit_data``).
        records: ask records (the JSON form: ``answer``, ``samples``, ``grounding``, ``sources`` ...). Those
            without an answer are left out (counted in ``left_out``): no probability is given to them.
        min_records: below this many answers nothing is flagged (:attr:`Drift.enough` is false).
    """
    rows, left_out = [], 0
    for record in records:
        if str(record.get("answer") or "").strip():
            rows.append(features(record))
        else:
            left_out += 1
    fit = calibration.fit_data
    out = []
    for i, name in enumerate(calibration.feature_names):
        median, mean, scale = calibration.medians[i], calibration.means[i], calibration.scales[i]
        values = [row[name] for row in rows]
        present = [float(v) for v in values if v is not None]
        filled = [median if v is None else float(v) for v in values]
        answers_mean = math.fsum(filled) / len(filled) if filled else mean
        shift = (answers_mean - mean) / scale
        missing = (len(values) - len(present)) / len(values) if values else 0.0
        below = above = fit_below = fit_above = fit_missing = None
        if fit:
            low, high = fit["p05"][i], fit["p95"][i]
            below, above = _share(v < low for v in present), _share(v > high for v in present)
            fit_below, fit_above, fit_missing = fit["below"][i], fit["above"][i], fit["missing"][i]
        weighted = abs(calibration.coef[i]) > _WEIGHTLESS
        reasons: list[str] = []
        if weighted:
            if abs(shift) > MAX_SHIFT + _EPS:
                reasons.append("shift")
            if below is not None and above is not None and fit_below is not None and fit_above is not None \
                    and (below + above) - (fit_below + fit_above) > OUTSIDE_EXCESS + _EPS:
                reasons.append("outside")
            if fit_missing is not None and missing - fit_missing > MISSING_EXCESS + _EPS:
                reasons.append("missing")
        out.append(FeatureDrift(
            name=name, shift=shift, mean=answers_mean, fit_mean=mean, scale=scale,
            score_shift=calibration.coef[i] * shift, present=len(present), missing=missing, fit_missing=fit_missing,
            below=below, above=above, fit_below=fit_below, fit_above=fit_above, weighted=weighted,
            reasons=tuple(reasons)))
    fit_records = calibration.data.get("records")
    return Drift(answers=len(rows), left_out=left_out, features=tuple(out),
                 fit_records=fit_records if isinstance(fit_records, int) else None, ranges_known=bool(fit),
                 min_records=min_records)


def calibrated_probability(calibration: Calibration, record: Mapping[str, Any]) -> float | None:
    """The probability ``calibration`` gives the answer of an ask record, as :func:`apply_calibration` does.

    ``None`` where it gives none: a record without an answer, or one that has none of the signals the
    calibration reads (its confidence stays the uncalibrated formula). One sample alone gets 0.
    """
    if not str(record.get("answer") or "").strip():
        return None
    values = features(record)
    if all(values.get(name) is None for name in calibration.feature_names):
        return None
    return 0.0 if len(record.get("samples") or []) == 1 else calibration.probability(values)
