"""Signals from the answers' token probabilities: per-sample summaries and a weighted entropy.

Pure functions over plain numbers, so they are tested on hand-written values
and work the same for every backend and for ``ragguard check`` input.

* :func:`logprob_summary` turns one answer's token log-probabilities into the
  ``logprob_mean``, ``logprob_min`` and ``tokens`` fields of a
  :class:`~ragguard.core.types.Sample`.
* :func:`weighted_semantic_entropy` is semantic entropy with every cluster
  weighted by the probability mass of its members (Kuhn et al. 2023), beside
  the count-based :func:`semantic_entropy`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["logprob_summary", "semantic_entropy", "weighted_semantic_entropy", "LOGPROB_DECIMALS"]

# The summaries are rounded to 4 decimals. A prompt decoded inside a batch gets float32 logits
# summed in another order than when decoded alone: the tokens are the same but their
# log-probabilities differ by up to about 5e-7 (measured on the tiny test models), which 6
# decimals would show. Rounded here, the record and everything derived from it (the weighted
# entropy) are the same alone and in a batch unless a value sits that close to a rounding
# boundary; 1e-4 is far below any difference the signals can use.
LOGPROB_DECIMALS = 4


def logprob_summary(token_logprobs: Sequence[float] | None) -> dict[str, Any]:
    """``logprob_mean``, ``logprob_min`` and ``tokens`` of one answer.

    Args:
        token_logprobs: natural-log probabilities of the answer's tokens, or
            ``None`` when the backend gave none.

    Returns:
        A dict with the three :class:`~ragguard.core.types.Sample` fields, the
        mean and minimum rounded to :data:`LOGPROB_DECIMALS` decimals. All
        are ``None`` when ``token_logprobs`` is ``None`` or holds a value that
        is not a finite number (a server's ``-inf`` or ``NaN`` never reaches
        JSON); an empty list gives ``tokens`` 0 and no mean or minimum.
    """
    if token_logprobs is None:
        return {"logprob_mean": None, "logprob_min": None, "tokens": None}
    values = list(token_logprobs)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return {"logprob_mean": None, "logprob_min": None, "tokens": None}
    if not values:
        return {"logprob_mean": None, "logprob_min": None, "tokens": 0}
    try:
        total = math.fsum(values) / len(values)
    except OverflowError:  # finite values whose sum is not (-1e308 twice, from a hand-made record)
        total = math.fsum(v / len(values) for v in values)
    mean = round(total, LOGPROB_DECIMALS) + 0.0  # + 0.0: no -0.0 in JSON
    low = round(float(min(values)), LOGPROB_DECIMALS) + 0.0
    return {"logprob_mean": mean, "logprob_min": low, "tokens": len(values)}


def semantic_entropy(cluster_sizes: Sequence[int]) -> float:
    """Entropy of cluster shares normalised to 0..1 by ``log(total)``."""
    total = sum(cluster_sizes)
    if total <= 1:
        return 0.0
    h = -sum((s / total) * math.log(s / total) for s in cluster_sizes if s > 0)
    return min(1.0, max(0.0, h / math.log(total)))


def weighted_semantic_entropy(labels: Sequence[int], logprob_means: Sequence[float | None]) -> float | None:
    """Entropy of the clusters' probability mass, normalised to 0..1 by ``log(len(labels))``.

    A sample weighs its length-normalised sequence probability,
    ``exp(logprob_mean)``; a cluster's mass is the sum over its members, and
    the masses are renormalised to sum to 1. Dividing by ``log(n)`` (``n``
    samples) puts it on the scale of the count-based semantic entropy: 0 when
    every answer falls in one cluster, 1 only when every answer is its own
    cluster with equal mass.

    Args:
        labels: the cluster of each sample.
        logprob_means: each sample's mean token log-probability.

    Returns:
        The normalised entropy, or ``None`` when any sample lacks a mean (or
        the lists differ in length). 0.0 for fewer than two samples.
    """
    if len(labels) != len(logprob_means) or any(m is None or not math.isfinite(m) for m in logprob_means):
        return None
    n = len(labels)
    if n <= 1:
        return 0.0
    # Shift by the largest mean before exp: the weights' ratios are what count, and a long
    # answer's mean can be far enough below 0 that exp underflows alone.
    top = max(logprob_means)  # type: ignore[type-var]
    mass: dict[int, float] = {}
    for label, mean in zip(labels, logprob_means, strict=True):
        mass[label] = mass.get(label, 0.0) + math.exp(mean - top)  # type: ignore[operator]
    total = math.fsum(mass.values())
    h = -math.fsum((m / total) * math.log(m / total) for m in mass.values() if m > 0)
    return min(1.0, max(0.0, h / math.log(n)))
