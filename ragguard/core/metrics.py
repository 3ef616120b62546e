"""Small metrics over plain lists (no numpy needed; a large AUROC by scikit-learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["accuracy_at_coverage", "auroc", "bootstrap_aurocs", "brier_score", "ece_by_chance", "expected_calibration_error",
           "histogram", "reliability"]


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for predicting ``positives``.

    The Mann-Whitney statistic with tied scores counted half, so it equals the probability that a
    random positive scores above a random negative: counted pair by pair for small sets, by
    scikit-learn's ``roc_auc_score`` (sorting, the same value) beyond :data:`_PAIRS` pairs. ``None``
    when either class is empty (the AUROC is undefined).
    """
    labels = [bool(p) for p in positives]
    if len(labels) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    pos = [s for s, p in zip(scores, labels, strict=True) if p]
    neg = [s for s, p in zip(scores, labels, strict=True) if not p]
    if not pos or not neg:
        return None
    if len(pos) * len(neg) > _PAIRS:  # sorting: a summary of 40,000 rows counted 10^8 pairs for 27 s
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(labels, [float(s) for s in scores]))
    wins = 0.0  # few pairs: counting them is quicker than importing scikit-learn (about 2 s)
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(pos) * len(neg))


# Up to this many (positive, negative) pairs the AUROC counts them (about 0.05 s), beyond it scikit-learn sorts.
_PAIRS = 250_000


def histogram(values: Sequence[float], bins: int = 5) -> dict[str, int]:
    """Counts of values in ``bins`` equal-width bins over [0, 1] (1.0 falls in the last)."""
    edges = [i / bins for i in range(bins + 1)]
    counts = {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": 0 for i in range(bins)}
    keys = list(counts)
    for v in values:
        index = min(bins - 1, max(0, int(v * bins)))
        counts[keys[index]] += 1
    return counts


def _checked(confidences: Sequence[float], correct: Sequence[bool]) -> list[tuple[float, bool]]:
    pairs = [(float(c), bool(k)) for c, k in zip(confidences, correct, strict=True)]
    bad = [c for c, _ in pairs if not math.isfinite(c)]
    if bad:
        raise ValueError(f"confidence {bad[0]!r} is not a finite number: drop or fix that record before computing metrics")
    return pairs


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict[str, Any]]:
    """The reliability table: ``bins`` equal-width bins of confidence over [0, 1].

    Bins are closed on the left, as in :func:`histogram` (``[0.0, 0.1)``,
    ..., ``[0.9, 1.0]``: 1.0 falls in the last; values outside [0, 1] in the
    nearest end bin). Each bin holds ``lower``, ``upper``, ``count``,
    ``mean_confidence`` and ``accuracy`` (the share of ``correct``); the last
    two are ``None`` for an empty bin, never NaN.
    """
    pairs = _checked(confidences, correct)
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for c, k in pairs:
        members[_bin_of(c, bins)].append((c, k))
    table = []
    for i, rows in enumerate(members):
        n = len(rows)
        table.append({
            "lower": i / bins,
            "upper": (i + 1) / bins,
            "count": n,
            "mean_confidence": sum(c for c, _ in rows) / n if n else None,
            "accuracy": sum(k for _, k in rows) / n if n else None,
        })
    return table


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float | None:
    """Count-weighted mean of ``|accuracy - mean confidence|`` over the non-empty bins of :func:`reliability`.

    ``None`` when there is nothing to measure.
    """
    table = reliability(confidences, correct, bins)
    total = sum(b["count"] for b in table)
    if not total:
        return None
    return sum(b["count"] * abs(b["accuracy"] - b["mean_confidence"]) for b in table if b["count"]) / total


def _bin_of(c: float, bins: int) -> int:
    return min(bins - 1, max(0, int(c * bins)))


def _ece_rows(confidences: Sequence[float], outcomes: Any, bins: int = 10) -> Any:
    """The ECE of ``confidences`` against each row of the 0/1 matrix ``outcomes`` (one row per draw)."""
    import numpy as np

    c = np.asarray(confidences, dtype=float)
    which = np.clip((c * bins).astype(int), 0, bins - 1)  # _bin_of, for every answer at once
    onehot = np.zeros((len(c), bins))
    onehot[np.arange(len(c)), which] = 1.0
    # count * |accuracy - mean confidence| = |right in the bin - confidence summed over the bin|
    right = np.asarray(outcomes, dtype=float) @ onehot
    return np.abs(right - c @ onehot).sum(axis=1) / len(c)


_CELLS = 1_000_000  # draws held in memory at once by ece_by_chance and bootstrap_aurocs


def _batches(rounds: int, width: int, cells: int | None = None) -> Any:
    """Rounds per batch, so that a batch holds at most ``cells`` (default :data:`_CELLS`) draws of ``width``."""
    step = max(1, (_CELLS if cells is None else cells) // max(1, width))
    for done in range(0, rounds, step):
        yield min(step, rounds - done)


def ece_by_chance(confidences: Sequence[float], bins: int = 10, rounds: int = 1000, seed: int = 0) -> dict[str, float] | None:
    """The ECE that a perfectly calibrated confidence shows on this many answers: ``{"median", "p95"}``.

    Each round draws every answer's outcome from its own confidence (right with
    probability ``c``), so the confidence is calibrated by construction and the
    ECE measured is sampling noise alone. On a hundred answers with a few
    right it is far from 0: read a measured ECE against it. Seeded, so the same
    confidences give the same figures; ``None`` when there are none.
    """
    import numpy as np

    pairs = _checked(confidences, [False] * len(confidences))
    if not pairs:
        return None
    c = np.clip([v for v, _ in pairs], 0.0, 1.0)
    rng = np.random.default_rng(seed)
    # in batches of rounds: memory stays bounded on a large audit
    values = [_ece_rows(c, rng.random((b, len(c))) < c, bins) for b in _batches(rounds, len(c))]
    median, high = np.percentile(np.concatenate(values), [50, 95])
    return {"median": float(median), "p95": float(high)}


def bootstrap_aurocs(risk: Sequence[float], wrong: Sequence[bool], rounds: int = 1000, seed: int = 0,
                     cells: int | None = None) -> Any:
    """The AUROC of ``risk`` for a wrong answer on each of ``rounds`` resamples of the answers (with replacement).

    The same values as :func:`sklearn.metrics.roc_auc_score` on each resample (tested), skipping resamples of one
    class, but all at once: a resample is a count of draws per answer, and its AUROC the Mann-Whitney statistic
    of those counts over the answers grouped by equal risk (ties count one half). Calling scikit-learn once per
    resample took seconds per interval. At most ``cells`` counts (default :data:`_CELLS`) are held at a time.
    """
    import numpy as np

    r, w = np.asarray(risk, dtype=float), np.asarray(wrong, dtype=bool)
    n = len(r)
    if n == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    _, group = np.unique(r, return_inverse=True)  # answers of equal risk share a group, in rising order
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    wrong_sorted, right_sorted = w[order], ~w[order]
    values = []
    for b in _batches(rounds, n, cells):
        picks = rng.integers(0, n, (b, n))  # the same draws as b successive resamples of n
        counts = np.bincount((picks + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)[:, order]
        pos = np.add.reduceat(counts * wrong_sorted, starts, axis=1)  # wrong answers drawn, per risk group
        neg = np.add.reduceat(counts * right_sorted, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # right answers drawn with a lower risk
        u = (pos * (below + 0.5 * neg)).sum(axis=1)
        npos, nneg = pos.sum(axis=1), neg.sum(axis=1)
        both = (npos > 0) & (nneg > 0)
        values.append(u[both] / (npos[both] * nneg[both]))
    return np.concatenate(values)


def brier_score(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Mean squared difference between confidence and the outcome (1 right, 0 wrong); ``None`` when empty."""
    pairs = _checked(confidences, correct)
    if not pairs:
        return None
    return sum((c - (1.0 if k else 0.0)) ** 2 for c, k in pairs) / len(pairs)


def accuracy_at_coverage(confidences: Sequence[float], correct: Sequence[bool], steps: int = 10) -> list[dict[str, Any]]:
    """Accuracy of the answers kept when only the most confident ones are kept.

    Answers are sorted by confidence, highest first; ties keep the input order
    (so the figure is deterministic; pass records in a stable order). For each
    coverage ``i / steps`` (i = 1..steps) the first ``ceil(coverage * n)``
    answers are kept. Each point holds ``coverage``, ``kept`` (answers kept),
    ``threshold`` (the lowest confidence kept) and ``accuracy``. Empty input
    gives an empty list.
    """
    pairs = _checked(confidences, correct)
    ranked = sorted(pairs, key=lambda p: -p[0])  # sorted() is stable: ties stay in input order
    n = len(ranked)
    points: list[dict[str, Any]] = []
    if not n:
        return points
    for i in range(1, steps + 1):
        kept = -(-i * n // steps)  # ceil(i * n / steps) in integers, free of float rounding
        points.append({
            "coverage": i / steps,
            "kept": kept,
            "threshold": ranked[kept - 1][0],
            "accuracy": sum(k for _, k in ranked[:kept]) / kept,
        })
    return points
