"""``ragguard calibrate``: fit the probability that the voted answer is right, on audit results.

Each audit record with a reference is one example: its label is
``reference_match == "match"`` and its features are
:func:`ragguard.core.calibration.features`. The fit is scikit-learn's
logistic regression on standardised features (missing values filled with the
training median), and for ``method="isotonic"`` an isotonic map of the
logistic score fitted on out-of-fold scores. ``method="mean"`` fits no weight
per signal: the score is the equal-weight mean of the standardised signals,
each in its fixed direction (:data:`RISK_DIRECTION`), and only the map from
that score to a probability (two numbers) is fitted. With a few dozen right
answers the weights of a logistic fit are mostly noise (on the Debian dev sets
the weights learnt on one set did not carry to the other,
``bench/calibration_design.py``); equal weights have nothing to carry over
(Dawes' "improper linear models"). Seeds are fixed, so the same records give
the same file.

The figures (AUROC and AUPRC for a wrong answer, Brier score, expected
calibration error over 10 bins) are cross-validated: every record is scored by
a model that did not see it. The same figures are printed for every single
signal (AUROC and AUPRC, each signal read in its fixed direction) and for the
uncalibrated confidence. The threshold is the lowest calibrated confidence at
which the answers kept reach the target precision, on the out-of-fold scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragguard._text import shorten
from ragguard.apps.audit_io import read_json, read_results
from ragguard.apps.audit_summary import given
from ragguard.apps.calibration_io import ANSWER_NEUTRAL
from ragguard.core.calibration import FEATURES, METHODS, Calibration, features
from ragguard.core.consistency import formula_confidence
from ragguard.core.grounding import has_cjk
from ragguard.core.metrics import bootstrap_aurocs, brier_score, ece_by_chance, expected_calibration_error
from ragguard.errors import UsageError

log = logging.getLogger("ragguard.calibrate")

__all__ = ["MIN_RECORDS", "MIN_PER_CLASS", "METHODS", "RISK_DIRECTION", "read_labelled", "fit_calibration", "fit_data", "results_file", "content_key", "figures",
           "ranking", "auroc_interval", "threshold_for", "against_direction", "mixed_setups", "mixed_setups_refusal", "describe_mixed_setups"]

MIN_RECORDS = 30
# Right and wrong answers each: below it the folds (and the isotonic map's inner folds) cannot each hold both
# classes, and the figures of a handful say nothing.
MIN_PER_CLASS = 5
# Where read_labelled puts the settings of the audit a record came from (audit.json's, less ANSWER_NEUTRAL).
SETTINGS_KEY = "_audit_settings"
# +1: a higher value means a wrong answer is more likely; -1: less likely. Fixed in advance, so a
# single signal's AUROC is never flattered by flipping it on the data.
RISK_DIRECTION: dict[str, int] = {
    "agreement": -1, "semantic_entropy": 1, "semantic_entropy_weighted": 1, "logprob_mean_greedy": -1,
    "logprob_min_greedy": -1, "logprob_mean_voted": -1, "logprob_min_voted": -1, "claim_support": -1,
    "embedding_support": -1, "passage_overlap": -1, "anchored_support": -1, "question_coverage": -1,
    "key_sentence_hits": -1, "unsupported_claims": 1,
    "absent_values": 1, "findings": 1, "findings_polarity": 1, "findings_quantity": 1, "findings_entity": 1, "findings_nli": 1, "findings_divergent": 1,
    "retrieval_top": -1, "retrieval_mean": -1, "answer_tokens": 1, "question_echo": 1,
}
assert set(RISK_DIRECTION) == set(FEATURES)


def against_direction(calibration: Calibration) -> list[str]:
    """The signals whose fitted weight points against their fixed direction in :data:`RISK_DIRECTION`.

    Such a weight (a more probable answer counted as *less* likely right, say)
    is what a fit on a few dozen right answers can learn from noise: on the
    Debian sets, a fit with one led on the dev splits and not on unseen ones
    (README, Calibrated confidence). ``mean`` fits no weight per signal: never any.
    """
    if calibration.method == "mean":
        return []
    # A signal that never varies in the data gets a weight of about 1e-17 of either sign: not a weight.
    return [name for name, weight in zip(calibration.feature_names, calibration.coef, strict=True)
            if weight * RISK_DIRECTION[name] > 1e-6]


def read_labelled(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The answered records with a reference label from audit folders (the last record per id wins).

    A record found again in another folder (a copied audit, the same folder named twice) counts once: a copy
    is not more evidence, and counting it would pass the minimum of records with half the data. Each record
    carries its audit's settings under :data:`SETTINGS_KEY` (for :func:`mixed_setups` and ``fitted_for``),
    and the records come in one order whatever the order of the folders, so the same records give the same file.
    Withheld answers are kept here: :func:`fit_calibration` leaves them out and counts them.
    """
    records: dict[tuple[str, str], dict[str, Any]] = {}
    folders = list(folders)
    named = [str(Path(f).resolve()) for f in folders]
    twice = sorted({f for f in named if named.count(f) > 1})
    if twice:
        log.warning("%s is named more than once: its records count once", ", ".join(twice))
    for folder in folders:
        path = results_file(folder)
        info = read_json(Path(folder) / "audit.json") or {}
        settings = info.get("settings") if isinstance(info.get("settings"), dict) else None
        if settings is not None:
            settings = {k: v for k, v in settings.items() if k not in ANSWER_NEUTRAL}
        for record in read_results(path, repair=False):  # a torn last line is left out; any other bad line named
            if record.get("status", "ok") == "ok" and record.get("reference_match"):
                records[(str(Path(folder).resolve()), str(record.get("id")))] = {**record, SETTINGS_KEY: settings}
    unique = {content_key(r): r for r in records.values()}
    if len(unique) < len(records):
        log.warning("%d record(s) appear in more than one audit folder and count once", len(records) - len(unique))
    return [unique[key] for key in sorted(unique)]


def results_file(folder: str | Path) -> Path:
    """An audit folder's ``results.jsonl``; a folder that is not an audit is refused (:class:`UsageError`)."""
    path = Path(folder) / "results.jsonl"
    if not Path(folder).is_dir():
        raise UsageError(f"audit folder {str(folder)!r} does not exist: pass folders written by `ragguard audit`")
    if not path.is_file():
        raise UsageError(f"{folder} holds no results.jsonl: pass folders written by `ragguard audit`")
    return path


def content_key(record: dict[str, Any]) -> str:
    """What makes a record the same evidence: everything but where and when it was written."""
    return json.dumps({k: v for k, v in record.items() if k not in ("id", "line", "tags", "timings", SETTINGS_KEY)},
                      sort_keys=True, ensure_ascii=False)


# From the fingerprint: the weights themselves (the settings name them by path or by a served name only).
_WEIGHTS = ("model_sha256", "adapter_sha256")
# Without the audit's settings (an audit.json from before they were recorded): all the fingerprint says.
_FINGERPRINT = ("model", "adapter", "embedder", "setup_hash")


def _setup_of(record: dict[str, Any], with_settings: bool) -> dict[str, Any]:
    fingerprint = record.get("fingerprint") if isinstance(record.get("fingerprint"), dict) else {}
    keys = _WEIGHTS if with_settings else _WEIGHTS + _FINGERPRINT
    out = {f"fingerprint.{k}": fingerprint[k] for k in keys if fingerprint.get(k) is not None}
    if with_settings:
        out.update(record[SETTINGS_KEY])
    return out


def mixed_setups(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The settings whose value differs among the records' audits: ``{key: {value (JSON): records}}``.

    A setting is ``section.key`` of the audits' ``audit.json`` (the settings of how requests reach a server,
    :data:`~ragguard.apps.calibration_io.ANSWER_NEUTRAL`, never count), or ``fingerprint.model_sha256`` and
    ``fingerprint.adapter_sha256`` (other weights under one name); where an audit did not record its
    settings, its fingerprint's model, adapter, embedder and setup hash stand for them.
    """
    if not records:
        return {}
    with_settings = all(isinstance(r.get(SETTINGS_KEY), dict) for r in records)
    setups = [_setup_of(r, with_settings) for r in records]
    out: dict[str, dict[str, int]] = {}
    for key in sorted(set().union(*setups)):
        counts = Counter(json.dumps(s.get(key), sort_keys=True, ensure_ascii=False) for s in setups)
        if len(counts) > 1:
            out[key] = dict(counts.most_common())
    return out


def mixed_setups_refusal(records: Sequence[dict[str, Any]]) -> str | None:
    """Why these records should not be fitted together (their audits ran different setups), or ``None``."""
    mixed = describe_mixed_setups(records)
    return None if mixed is None else (
        f"{mixed}. A calibration holds for one setup: calibrate the folders of the setup you serve on their own, "
        "or pass --mixed-setups to fit them together anyway")


def describe_mixed_setups(records: Sequence[dict[str, Any]]) -> str | None:
    """``the audits come from N setups (records per value): KEY VALUE (n), VALUE (n); ...``, or ``None``."""
    mixed = mixed_setups(records)
    if not mixed:
        return None
    setups = len({json.dumps([r.get(SETTINGS_KEY), (r.get("fingerprint") or {}).get("model_sha256")], sort_keys=True,
                             default=str) for r in records})
    parts = [f"{key} " + ", ".join(f"{shorten(value, 32)} ({n})" for value, n in counts.items())
             for key, counts in list(mixed.items())[:4]]
    more = f"; {len(mixed) - 4} more" if len(mixed) > 4 else ""
    return f"the audits come from {max(setups, 2)} setups (records per value): {'; '.join(parts)}{more}"


def _matrix(rows: Sequence[dict[str, float | None]], names: Sequence[str]):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.array([[math.nan if row[n] is None else row[n] for n in names] for row in rows], dtype=float)


def _fit_arrays(  # type: ignore[no-untyped-def]
    x, y, method: str, folds: int, seed: int, names: Sequence[str]
) -> dict[str, Any]:
    """Fit on arrays (columns named by ``names``); returns the plain-number parameters."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    medians = np.nanmedian(x, axis=0)
    filled = np.where(np.isnan(x), medians, x)
    means = filled.mean(axis=0)
    scales = filled.std(axis=0)
    scales[scales < 1e-12] = 1.0  # a constant feature: its weight is 0 whatever the scale
    z = (filled - means) / scales
    if method == "mean":  # equal weights in the fixed directions; only the score's slope and intercept are fitted
        weights = np.array([-RISK_DIRECTION[n] for n in names], dtype=float) / len(names)
        link = LogisticRegression(C=100.0, max_iter=2000, random_state=seed).fit((z @ weights)[:, None], y)
        return {"C": None, "medians": medians, "means": means, "scales": scales,
                "coef": weights * float(link.coef_[0][0]), "intercept": float(link.intercept_[0]),
                "iso_x": [], "iso_y": []}
    # The regularisation is chosen by an inner cross-validation on log-loss: with a few dozen right
    # answers and ~20 signals, a fixed weak penalty overfits (on 80 real answers, 8 right, C=1 gave a
    # cross-validated AUROC of 0.13).
    c = _choose_c(z, y, folds, seed)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z, y)
    params: dict[str, Any] = {"C": c, "medians": medians, "means": means, "scales": scales, "coef": model.coef_[0],
                              "intercept": float(model.intercept_[0]), "iso_x": [], "iso_y": []}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        inner = StratifiedKFold(n_splits=_folds(y, folds), shuffle=True, random_state=seed)
        scores = np.zeros(len(y))
        for train, test in inner.split(z, y):
            sub = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z[train], y[train])
            scores[test] = sub.decision_function(z[test])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        params["iso_x"], params["iso_y"] = list(iso.X_thresholds_), list(iso.y_thresholds_)
    return params


C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def _choose_c(z, y, folds: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    """The inverse regularisation strength with the best inner cross-validated log-loss (ties: the stronger)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    k = _folds(y, folds)
    best, best_loss = C_GRID[0], math.inf
    for c in C_GRID:
        probs = np.zeros(len(y))
        for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + 1).split(z, y):
            if len(set(y[train])) < 2:
                continue
            probs[test] = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(
                z[train], y[train]).predict_proba(z[test])[:, 1]
        loss = log_loss(y, np.clip(probs, 1e-6, 1 - 1e-6), labels=[0, 1])
        if loss < best_loss - 1e-9:
            best, best_loss = c, loss
    return best


def _folds(y, folds: int) -> int:  # type: ignore[no-untyped-def]
    import numpy as np

    return max(2, min(folds, int(np.bincount(y, minlength=2).min())))


def _calibration(params: dict[str, Any], names: Sequence[str], method: str) -> Calibration:
    def floats(values: Any) -> tuple[float, ...]:
        return tuple(float(v) for v in values)

    return Calibration(method=method, feature_names=tuple(names), medians=floats(params["medians"]),
                       means=floats(params["means"]), scales=floats(params["scales"]), coef=floats(params["coef"]),
                       intercept=float(params["intercept"]), isotonic_x=floats(params["iso_x"]),
                       isotonic_y=floats(params["iso_y"]))


def fit_data(x) -> dict[str, tuple[float, ...]]:  # type: ignore[no-untyped-def]
    """Where each feature's values lay in the fit data (the ``fit_data`` of :class:`Calibration`).

    Per column of ``x`` (``NaN`` where a record lacks the feature): the 5th and 95th percentiles of the
    values present, the shares of those values below the one and above the other (about 5 % each, less
    where values tie, as a count's zeros do), and the share of records missing the feature. What
    ``ragguard calibrate --check`` and the audit's ``calibration_drift`` read answers against.
    """
    import numpy as np

    out: dict[str, list[float]] = {key: [] for key in ("p05", "p95", "below", "above", "missing")}
    for column in x.T:
        present = column[~np.isnan(column)]  # never empty: a feature no record has is not fitted
        low, high = (float(v) for v in np.percentile(present, [5, 95]))
        out["p05"].append(low)
        out["p95"].append(high)
        out["below"].append(float(np.mean(present < low)))
        out["above"].append(float(np.mean(present > high)))
        out["missing"].append(float(np.mean(np.isnan(column))))
    return {key: tuple(values) for key, values in out.items()}


def figures(confidence: Sequence[float], right: Sequence[bool]) -> dict[str, float | None]:
    """AUROC and AUPRC of ``1 - confidence`` for a wrong answer, Brier score and ECE of ``confidence``."""
    return {
        **ranking([1.0 - c for c in confidence], right),
        "brier": brier_score(confidence, right),  # the audit report's figures, computed the same way
        "ece": expected_calibration_error(confidence, right),
    }


def ranking(risk: Sequence[float], right: Sequence[bool]) -> dict[str, float | None]:
    """AUROC and AUPRC of ``risk`` for a wrong answer (``None`` with one class only)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    wrong = [not r for r in right]
    both = 0 < sum(wrong) < len(wrong)
    return {"auroc": float(roc_auc_score(wrong, risk)) if both else None,
            "auprc": float(average_precision_score(wrong, risk)) if both else None}


def auroc_interval(risk: list[float], wrong: list[bool], rounds: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """A 95 % bootstrap interval of the AUROC (resampling the answers): how far a few dozen right answers let it move."""
    import numpy as np

    values = bootstrap_aurocs(risk, wrong, rounds, seed)
    if not len(values):
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def threshold_for(
    confidence: Sequence[float], right: Sequence[bool], target: float, min_kept: int = 1
) -> dict[str, Any]:
    """The lowest confidence at which the answers kept (confidence >= it) reach ``target`` precision.

    A threshold must keep at least ``min_kept`` answers: the precision of a handful says nothing.
    When none reaches ``target``, ``reachable`` says what can be had: the threshold (keeping at
    least ``min_kept``) with the highest precision, and its coverage.
    """
    pairs = sorted(zip(confidence, right, strict=True), key=lambda p: -p[0])
    best: dict[str, Any] = {"threshold": None, "precision": None, "coverage": 0.0}
    reachable: dict[str, Any] | None = None
    kept_right = 0
    for i, (c, r) in enumerate(pairs):
        kept_right += int(r)
        if i + 1 < len(pairs) and pairs[i + 1][0] == c:
            continue  # a threshold keeps every answer with that confidence
        precision = kept_right / (i + 1)
        if i + 1 < min_kept:
            continue
        point = {"threshold": float(c), "precision": precision, "coverage": (i + 1) / len(pairs)}
        if precision >= target:
            best = point
        if reachable is None or precision > reachable["precision"]:
            reachable = point
    if best["threshold"] is None:
        best["reachable"] = reachable
    return best


def fit_calibration(
    records: Sequence[dict[str, Any]], right: Sequence[bool] | None = None, *, method: str = "logistic",
    folds: int = 5, target_precision: float = 0.9, seed: int = 0, signals: Sequence[str] | None = None,
    keep_withheld: bool = False, min_per_class: int = MIN_PER_CLASS,
) -> Calibration:
    """Fit a :class:`Calibration` on audit records and attach its cross-validated figures.

    Args:
        records: audit records (ask records with ``reference_match``).
        right: the labels; default ``reference_match == "match"`` of each record.
        method: ``"logistic"``, ``"isotonic"`` or ``"mean"`` (see the module docstring).
        folds: cross-validation folds for the figures (fewer when a class is smaller).
        target_precision: precision the threshold is chosen for.
        seed: seed of the folds and the solver.
        signals: the features to fit on (default: every one of
            :data:`~ragguard.core.calibration.FEATURES` that some record has).
        keep_withheld: fit the records without an answer too (retrieval abstains and answers withheld
            under ``on_flagged: abstain``, as wrong answers). By default they are left out, and counted
            in ``figures.no_answer_left_out``: such an answer gets confidence 0 without the calibration,
            and its label says nothing of the answer that was voted (``bench/`` keeps them, to reproduce
            the shipped file's figures).
        min_per_class: the fewest right, and wrong, answers fitted (``bench/`` passes 2, what it always
            fitted on: its per-set figures of sets with a handful of right answers stay as documented).

    Raises:
        UsageError: fewer than :data:`MIN_RECORDS` labelled records, or fewer than :data:`MIN_PER_CLASS`
            right or wrong answers.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not known: use one of {', '.join(METHODS)}")
    labels = [r.get("reference_match") == "match" for r in records] if right is None else list(right)
    withheld = 0
    if not keep_withheld:
        kept = [(r, lab) for r, lab in zip(records, labels, strict=True) if given(r)]
        withheld = len(records) - len(kept)
        records, labels = [r for r, _ in kept], [lab for _, lab in kept]
    left_out = f" ({withheld} without an answer left out: retrieval or on_flagged abstained)" if withheld else ""
    if len(records) < MIN_RECORDS:
        mix = f" ({sum(labels)} right, {len(labels) - sum(labels)} wrong)" if records else ""
        raise UsageError(f"only {len(records)} labelled records{mix}{left_out}: calibrating needs at least "
                         f"{MIN_RECORDS} audit results with a reference, both right and wrong ones")
    if len(set(labels)) < 2:
        only = "right" if labels[0] else "wrong"
        raise UsageError(f"all {len(labels)} labelled answers are {only}{left_out}: calibrating needs both right and "
                         "wrong answers (" + ("audit more, or harder, questions)" if labels[0] else
                                              "audit more, or easier, questions, or a model that answers some right)"))
    fewer = min(sum(labels), len(labels) - sum(labels))
    if fewer < min_per_class:
        which = "right" if sum(labels) == fewer else "wrong"
        raise UsageError(
            f"only {fewer} {which} answer{'s' if fewer != 1 else ''} among {len(labels)} labelled{left_out}: "
            f"calibrating needs at least {min_per_class} right and {min_per_class} wrong answers, for the "
            "cross-validation folds to hold both (audit more, or " + ("easier" if which == "right" else "harder")
            + ", questions)")
    unknown = [n for n in signals or [] if n not in FEATURES]
    if unknown:
        raise UsageError(f"unknown signal(s) {', '.join(unknown)}: choose from {', '.join(FEATURES)}")
    table = [features(r) for r in records]
    names = [n for n in (signals or FEATURES) if any(row[n] is not None for row in table)]
    if not names:
        raise UsageError("none of the chosen signals is in the records: audit with the current ragguard")
    x, y = _matrix(table, names), np.array(labels, dtype=int)
    k = _folds(y, folds)
    oof = np.zeros(len(y))
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
        cal = _calibration(_fit_arrays(x[train], y[train], method, k, seed, names), names, method)
        oof[test] = [cal.probability(table[i]) for i in test]
    final_params = _fit_arrays(x, y, method, k, seed, names)
    final = _calibration(final_params, names, method)
    # At least 10 answers, and 5 % of them, must stay above a threshold for its precision to mean anything.
    chosen = threshold_for(list(oof), labels, target_precision, min_kept=max(10, math.ceil(0.05 * len(labels))))
    signals = {}
    for name in names:
        pairs = [(RISK_DIRECTION[name] * row[name], lab) for row, lab in zip(table, labels, strict=True)
                 if row[name] is not None]
        if len({lab for _, lab in pairs}) == 2:
            signals[name] = {**ranking([p[0] for p in pairs], [p[1] for p in pairs]), "n": len(pairs)}
    # The hand-made formula, recomputed from each record's fields: records already calibrated (the embedded
    # default ships a file) hold the calibrated value in `confidence`, not the formula's.
    uncalibrated = figures([formula_confidence(r) for r in records], labels)
    data = "\n".join(sorted(f"{r.get('id')}\t{r.get('question')}\t{r.get('answer')}\t{int(lab)}"
                            for r, lab in zip(records, labels, strict=True)))
    calibrated = {**figures(list(oof), labels), "auroc_95": auroc_interval([1.0 - c for c in oof], [not lab for lab in labels])}
    return replace(
        final, fit_data=fit_data(x), threshold=chosen["threshold"], target_precision=target_precision, fitted_for=fitted_for(records),
        data={"records": len(records), "right": int(sum(labels)), "no_answer_left_out": withheld,
              "sha256": hashlib.sha256(data.encode("utf-8")).hexdigest(),
              # the questions' languages: a confidence fitted on English questions says little of Chinese ones
              "languages": sorted({"zh" if has_cjk(str(r.get("question") or "")) else "en" for r in records})},
        figures={"method": method, "folds": k, "C": final_params["C"],
                 # records without an answer, left out of the fit (see keep_withheld)
                 "no_answer_left_out": withheld,
                 "calibrated": calibrated,
                 # the calibrated confidence ranks wrong answers worse than the formula it replaces, beyond chance
                 "worse_than_uncalibrated": bool(calibrated["auroc_95"] and uncalibrated["auroc"] is not None
                                                 and calibrated["auroc_95"][1] < uncalibrated["auroc"]),
                 # the ECE a perfectly calibrated confidence would show on this many records: read the ECE against it
                 "ece_by_chance": ece_by_chance(list(oof)),
                 "uncalibrated": uncalibrated, "signals": signals, "target": chosen},
    )


def fitted_for(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The setup the records came from: the most common fingerprint values, and the samples per question.

    Records read by :func:`read_labelled` also give their audit's settings (``settings``: the most common,
    less :data:`~ragguard.apps.calibration_io.ANSWER_NEUTRAL`), so that a use under another setup names the
    setting that differs; records of several setups (``--mixed-setups``) give ``mixed``, the values of each
    setting that differs with their counts (:func:`mixed_setups`).
    """
    out: dict[str, Any] = {}
    prints = [r.get("fingerprint") or {} for r in records]
    for key in ("model", "model_sha256", "adapter", "embedder", "setup_hash", "config_hash"):
        values = [json.dumps(p.get(key)) for p in prints if key in p]
        if values:
            out[key] = json.loads(max(sorted(set(values)), key=values.count))
    if "setup_hash" in out:  # the config hash also names the audit's index folder: the setup hash is what counts
        out.pop("config_hash", None)
    sizes = [len(r.get("samples") or []) for r in records]
    out["samples"] = max(sorted(set(sizes)), key=sizes.count) if sizes else None
    if records and all(isinstance(r.get(SETTINGS_KEY), dict) for r in records):
        settings = [json.dumps(r[SETTINGS_KEY], sort_keys=True, ensure_ascii=False) for r in records]
        out["settings"] = json.loads(max(sorted(set(settings)), key=settings.count))
    mixed = mixed_setups(records)
    if mixed:
        out["mixed"] = mixed
    return out
