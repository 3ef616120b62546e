"""A calibrated confidence: the probability that the voted answer is right.

``ragguard calibrate`` (:mod:`ragguard.apps.calibrate`) fits a model of "the
voted answer matched its reference" on audit results; this module holds what
is needed to *use* the fit, in plain numbers and without scikit-learn:

* :func:`features` turns one ask record (the JSON form of a report, or the
  in-process result through :func:`record_view`) into the named signals that
  issue 9 recorded: agreement, both semantic entropies, token
  log-probabilities, claim and embedding support, passage overlap and anchored
  support, the question's coverage by the retrieved passages, the answer's
  hits in the question's key sentence, detector findings by
  kind, retrieval scores and answer length. A
  signal the record lacks (no log-probabilities from ``check`` input, no
  context) is ``None`` and is filled with the training median.
* :class:`Calibration` is the fitted model: the medians, the standardisation,
  the logistic coefficients (for ``method: mean``, equal weights times the
  fitted slope) and, for ``method: isotonic``, the isotonic map of the
  logistic score to a probability. It reads and writes plain JSON (no
  pickle) and refuses a file that is not one.
* :func:`apply_calibration` sets a checker result's ``confidence`` to the
  calibrated probability and applies ``min_confidence``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragguard.core.grounding import has_cjk
from ragguard.core.reference import normalize_tokens

__all__ = ["FEATURES", "FORMAT", "METHODS", "Calibration", "CalibrationFileError", "features", "record_view", "apply_calibration",
           "flag"]

FORMAT = "ragguard-calibration/1"
METHODS = ("logistic", "isotonic", "mean")  # see ragguard.apps.calibrate

# The signals a calibration can use, in a fixed order (the file names the subset it was fitted on).
FEATURES: tuple[str, ...] = (
    "agreement",
    "semantic_entropy",
    "semantic_entropy_weighted",
    "logprob_mean_greedy",
    "logprob_min_greedy",
    "logprob_mean_voted",
    "logprob_min_voted",
    "claim_support",
    "embedding_support",
    "passage_overlap",
    "anchored_support",
    "question_coverage",
    "key_sentence_hits",
    "unsupported_claims",
    "absent_values",
    "findings",
    "findings_polarity",
    "findings_quantity",
    "findings_entity",
    "findings_nli",
    "findings_divergent",
    "retrieval_top",
    "retrieval_mean",
    "answer_tokens",
    "question_echo",
)


class CalibrationFileError(ValueError):
    """A calibration file that is not one ragguard wrote (the message says what is wrong)."""


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


def features(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The calibration signals of one ask record (``None`` where the record lacks one)."""
    samples = list(record.get("samples") or [])
    clusters = list(record.get("clusters") or [])
    answer = str(record.get("answer") or "")
    winner = next((c for c in clusters if c.get("representative") == answer), None)
    voted = [samples[i] for i in (winner or {}).get("members", []) if 0 <= i < len(samples)]
    greedy = next((s for s in samples if s.get("greedy")), None) or {}
    grounding = record.get("grounding") or None
    sources = list(record.get("sources") or [])
    n = max(1, len(samples))
    kinds: dict[str, int] = {}
    for c in record.get("contradictions") or []:
        kinds[str(c.get("kind"))] = kinds.get(str(c.get("kind")), 0) + 1
    claims = list((grounding or {}).get("claims") or [])
    scores = [float(p["score"]) for p in sources if isinstance(p.get("score"), (int, float))]
    out: dict[str, float | None] = {
        "agreement": _float(record.get("agreement")),
        "semantic_entropy": _float(record.get("semantic_entropy")),
        "semantic_entropy_weighted": _float(record.get("semantic_entropy_weighted")),
        "logprob_mean_greedy": _float(greedy.get("logprob_mean")),
        "logprob_min_greedy": _float(greedy.get("logprob_min")),
        "logprob_mean_voted": _mean([_float(s.get("logprob_mean")) for s in voted]),
        # Each member's own lowest token, averaged: a minimum over the members would fall as the
        # cluster grows, and a big cluster is the mark of a right answer (it ranked backwards).
        "logprob_min_voted": _mean([_float(s.get("logprob_min")) for s in voted]),
        "claim_support": _float((grounding or {}).get("support")),
        "embedding_support": _float((winner or {}).get("support")),
        "passage_overlap": _float((grounding or {}).get("overlap")),
        "anchored_support": _float((grounding or {}).get("anchored")),
        "question_coverage": _float((grounding or {}).get("coverage")),
        "key_sentence_hits": _log1p((grounding or {}).get("key_hits")),
        "unsupported_claims": None if not claims else len((grounding or {}).get("unsupported") or []) / len(claims),
        "absent_values": None if grounding is None else float(len(grounding.get("absent") or [])),
        "retrieval_top": max(scores) if scores else None,
        "retrieval_mean": _mean(scores),
        "answer_tokens": math.log1p(len(normalize_tokens(answer))),
        "question_echo": _echo(answer, str(record.get("question") or "")),
    }
    out["findings"] = sum(kinds.values()) / n  # every detector finding, per sample
    for kind in ("polarity", "quantity", "entity", "nli", "divergent"):
        out[f"findings_{kind}"] = kinds.get(kind, 0) / n
    return {name: out[name] for name in FEATURES}


def _echo(answer: str, question: str) -> float | None:
    """The share of the answer's tokens that only repeat the question (an answer that restates it says little)."""
    tokens = normalize_tokens(answer)
    if not tokens or not question:
        return None
    asked = set(normalize_tokens(question))
    return sum(t in asked for t in tokens) / len(tokens)


def _log1p(value: Any) -> float | None:
    """``log(1 + value)`` of a count (``None`` stays ``None``): the tenth hit says less than the first."""
    count = _float(value)
    return None if count is None or count < 0 else math.log1p(count)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def record_view(result: Any, sources: Sequence[Any], question: str = "") -> dict[str, Any]:
    """The parts of an ask record that :func:`features` reads, from an in-process checker result."""
    grounding = result.grounding.to_dict() if result.grounding is not None else None
    return {
        "question": question,
        "answer": result.answer,
        "agreement": result.agreement,
        "semantic_entropy": result.semantic_entropy,
        "semantic_entropy_weighted": result.semantic_entropy_weighted,
        "samples": [s.to_dict() for s in result.samples],
        "clusters": [c.to_dict() for c in result.clusters],
        "contradictions": [c.to_dict() for c in result.contradictions],
        "grounding": grounding,
        "sources": [{"score": p.score} for p in sources],
    }


def _numbers(data: Mapping[str, Any], key: str, length: int | None = None, within: str = "") -> tuple[float, ...]:
    values = data.get(key)
    name = f"{within}.{key}" if within else key
    if not isinstance(values, list) or not all(_float(v) is not None for v in values):
        raise CalibrationFileError(f"'{name}' must be a list of finite numbers")
    if length is not None and len(values) != length:
        raise CalibrationFileError(f"'{name}' has {len(values)} values for {length} features")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Calibration:
    """A fitted calibrator (see the module docstring); ``probability`` maps signals to P(right)."""

    method: str
    feature_names: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    isotonic_x: tuple[float, ...] = ()
    isotonic_y: tuple[float, ...] = ()
    threshold: float | None = None
    target_precision: float | None = None
    fitted_for: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    # Where the fit data lay, per feature (files written before it lack it: empty): ``p05`` and ``p95`` of the
    # values the records had, the shares of those values ``below`` p05 and ``above`` p95, and the share of
    # records ``missing`` the feature. ``ragguard.core.drift`` compares answers with it.
    fit_data: dict[str, tuple[float, ...]] = field(default_factory=dict)
    source: str = ""  # the file it was read from (not written)

    def score(self, values: Mapping[str, float | None]) -> float:
        """The logistic model's log-odds of a right answer for these signals."""
        total = self.intercept
        for name, median, mean, scale, weight in zip(
            self.feature_names, self.medians, self.means, self.scales, self.coef, strict=True
        ):
            value = values.get(name)
            x = median if value is None else float(value)
            total += weight * (x - mean) / scale
        return total

    def probability(self, values: Mapping[str, float | None]) -> float:
        """P(the voted answer is right) for these signals, in [0, 1]."""
        s = self.score(values)
        if self.method == "isotonic":
            return _interp(s, self.isotonic_x, self.isotonic_y)
        return 1.0 / (1.0 + math.exp(-s)) if s >= 0 else math.exp(s) / (1.0 + math.exp(s))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain numbers and strings)."""
        return {
            "format": FORMAT,
            "method": self.method,
            "features": list(self.feature_names),
            "medians": list(self.medians),
            "means": list(self.means),
            "scales": list(self.scales),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "isotonic": {"x": list(self.isotonic_x), "y": list(self.isotonic_y)} if self.method == "isotonic" else None,
            "threshold": self.threshold,
            "target_precision": self.target_precision,
            "fitted_for": dict(self.fitted_for),
            "data": dict(self.data),
            "figures": dict(self.figures),
            # Only when known: a file written before it is read back, and written again, as it was.
            **({"fit_data": {k: list(v) for k, v in self.fit_data.items()}} if self.fit_data else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> Calibration:
        """Read the JSON form back; a file ragguard did not write raises :class:`CalibrationFileError`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CalibrationFileError(f"not a ragguard calibration (format {found!r}, expected {FORMAT!r})")
        method = data.get("method")
        if method not in METHODS:
            raise CalibrationFileError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
        names = data.get("features")
        if not isinstance(names, list) or not names or any(n not in FEATURES for n in names):
            unknown = [n for n in names or [] if n not in FEATURES] if isinstance(names, list) else names
            raise CalibrationFileError(f"'features' must name known signals (unknown: {unknown!r})")
        k = len(names)
        scales = _numbers(data, "scales", k)
        if any(s <= 0 for s in scales):
            raise CalibrationFileError("'scales' must be positive")
        iso_x: tuple[float, ...] = ()
        iso_y: tuple[float, ...] = ()
        if method == "isotonic":
            iso = data.get("isotonic")
            if not isinstance(iso, dict):
                raise CalibrationFileError("an isotonic calibration needs 'isotonic': {'x': [...], 'y': [...]}")
            iso_x, iso_y = _numbers(iso, "x"), _numbers(iso, "y")
            if not iso_x or len(iso_x) != len(iso_y) or list(iso_x) != sorted(iso_x):
                raise CalibrationFileError("'isotonic' needs as many increasing x as y values")
        intercept = _float(data.get("intercept"))
        threshold = data.get("threshold")
        if intercept is None or (threshold is not None and _float(threshold) is None):
            raise CalibrationFileError("'intercept' (and 'threshold' when set) must be finite numbers")
        for key in ("threshold", "target_precision"):  # a probability: a gate above 1 would flag every answer
            value = data.get(key)
            if value is not None and not (_float(value) is not None and 0.0 <= float(value) <= 1.0):
                raise CalibrationFileError(f"'{key}' must lie in 0..1 (got {value!r})")
        for key in ("fitted_for", "data", "figures"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise CalibrationFileError(f"'{key}' must be an object (got {type(data[key]).__name__})")
        return cls(
            method=method, feature_names=tuple(names), medians=_numbers(data, "medians", k),
            fit_data=_fit_data(data.get("fit_data"), k),
            means=_numbers(data, "means", k), scales=scales, coef=_numbers(data, "coef", k), intercept=intercept,
            isotonic_x=iso_x, isotonic_y=iso_y, threshold=None if threshold is None else float(threshold),
            target_precision=_float(data.get("target_precision")),
            fitted_for=dict(data.get("fitted_for") or {}), data=dict(data.get("data") or {}),
            figures=dict(data.get("figures") or {}), source=source,
        )


FIT_DATA_KEYS = ("p05", "p95", "below", "above", "missing")


def _fit_data(value: Any, k: int) -> dict[str, tuple[float, ...]]:
    """The validated ``fit_data`` object of a file (``{}`` when the file predates it)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CalibrationFileError(f"'fit_data' must be an object (got {type(value).__name__})")
    absent = [key for key in FIT_DATA_KEYS if key not in value]
    if absent:
        raise CalibrationFileError(f"'fit_data' lacks {', '.join(absent)}: it needs {', '.join(FIT_DATA_KEYS)}, "
                                   "or leave 'fit_data' out")
    out = {key: _numbers(value, key, k, "fit_data") for key in FIT_DATA_KEYS}
    if any(low > high for low, high in zip(out["p05"], out["p95"], strict=True)):
        raise CalibrationFileError("'fit_data': each 'p05' must not exceed its 'p95'")
    for key in ("below", "above", "missing"):
        if any(not 0.0 <= share <= 1.0 for share in out[key]):
            raise CalibrationFileError(f"'fit_data.{key}' holds shares: each must lie in 0..1")
    return out


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation, clipped at both ends (what isotonic regression predicts)."""
    if x <= xs[0]:
        return min(1.0, max(0.0, ys[0]))
    if x >= xs[-1]:
        return min(1.0, max(0.0, ys[-1]))
    lo, hi = 0, len(xs) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if xs[mid] <= x else (lo, mid)
    span = xs[hi] - xs[lo]
    t = 0.0 if span == 0 else (x - xs[lo]) / span
    return min(1.0, max(0.0, ys[lo] + t * (ys[hi] - ys[lo])))


def apply_calibration(
    result: Any, sources: Sequence[Any], calibration: Calibration, min_confidence: float | None,
    on_flagged: str, note: Mapping[str, Any] | None = None, question: str = "",
) -> None:
    """Replace ``result.confidence`` by the calibrated probability and apply ``min_confidence``.

    Args:
        result: a checker result (``answer``, ``samples``, ``clusters`` ... fields), changed in place.
        sources: the passages the answer was checked against (their ``score`` is read).
        calibration: the fitted calibrator.
        min_confidence: below it the answer gets a warning, or is withheld under ``on_flagged: abstain``;
            ``None`` uses the calibration's own threshold (which may be ``None``: no gate).
        on_flagged: ``'warn'`` or ``'abstain'``.
        note: what the record says about the calibration (file, and any mismatch with this setup).
        question: the question (one of the signals is how much of the answer only repeats it).
    """
    result.calibrated = True
    # The file and its sha256 (what `check` records carry; ask, audit and serve add the fitted-for check).
    result.calibration = dict(note or {"file": calibration.source, "sha256": calibration.data.get("file_sha256")})
    if not result.answer:
        result.confidence = 0.0
        return
    values = features(record_view(result, sources, question))
    if all(values.get(name) is None for name in calibration.feature_names):
        # Every signal the file reads is missing (answers checked without context): its probability would
        # be one constant for any answer. The uncalibrated formula stays, and the record says why.
        result.calibrated = False
        reason = (f"this answer has none of the signals the calibration reads ({', '.join(calibration.feature_names)}; "
                  "they need the context the answer was drawn from), so confidence is the uncalibrated formula")
        result.calibration["not_applied"] = reason
        result.warnings.append(f"{reason}: pass the context to calibrate it")
        return
    # One answer measured no agreement: its confidence is 0 (endpoints.mark_single_sample), and the gate reads that.
    result.confidence = 0.0 if len(result.samples) == 1 else round(calibration.probability(values), 6)
    languages = calibration.data.get("languages") or []
    if languages and "zh" not in languages and has_cjk(question):
        result.calibration["fitted_on_languages"] = list(languages)  # and this question is Chinese
        result.warnings.append("the calibration was fitted on English questions only, so this confidence says little "
                               "of a Chinese one (for Chinese documents see configs/chinese-bge-small.yaml, and "
                               "calibrate on an audit of your own questions)")
    gate = calibration.threshold if min_confidence is None else min_confidence
    if gate is None or result.confidence >= gate:
        return
    reason = f"the calibrated confidence {result.confidence:.2f} is below min_confidence {gate:.2f}"
    flag(result, on_flagged, f"abstained: {reason}", f"{reason}: treat this answer with care")


def flag(result: Any, on_flagged: str, abstained: str, warning: str) -> None:
    """The ``on_flagged`` policy on a checker result: withhold the answer with ``abstained``, or warn."""
    if on_flagged == "abstain":
        result.warnings.append(abstained)
        result.answer = ""
        result.verdict = "abstain"
        result.confidence = 0.0
    else:
        result.warnings.append(warning)
