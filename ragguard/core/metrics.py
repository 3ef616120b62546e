"""Small metrics over plain lists (no numpy needed)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["auroc", "histogram"]


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for predicting ``positives``.

    Computed as the Mann-Whitney statistic with tied scores counted half, so
    it equals the probability that a random positive scores above a random
    negative. ``None`` when either class is empty (the AUROC is undefined).
    """
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    if not pos or not neg:
        return None
    wins = 0.0
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(pos) * len(neg))


def histogram(values: Sequence[float], bins: int = 5) -> dict[str, int]:
    """Counts of values in ``bins`` equal-width bins over [0, 1] (1.0 falls in the last)."""
    edges = [i / bins for i in range(bins + 1)]
    counts = {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": 0 for i in range(bins)}
    keys = list(counts)
    for v in values:
        index = min(bins - 1, max(0, int(v * bins)))
        counts[keys[index]] += 1
    return counts
