"""Deterministic clustering of answer embeddings (numpy only).

The algorithm is average-linkage agglomerative clustering with a similarity
threshold:

1. Every answer starts in its own cluster.
2. Repeatedly merge the two clusters with the highest *average* pairwise
   cosine similarity, as long as that average is at least ``threshold``.
3. Ties between candidate merges are broken by the smallest
   ``(min member of first, min member of second)`` pair, so the result never
   depends on floating-point ordering quirks or dictionary order.

Clusters are then numbered by their smallest member index (cluster 0 holds
sample 0). With N answers this is O(N^3), which is nothing for N <= 64.
Average linkage (rather than single linkage) stops chaining: a run of
answers that each differ a little from the last does not collapse into one
cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["normalize", "cosine_matrix", "agglomerative_clusters"]


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Return rows scaled to unit length (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``vectors``."""
    unit = normalize(vectors)
    sim = unit @ unit.T
    return np.clip(sim, -1.0, 1.0)


def agglomerative_clusters(
    similarity: np.ndarray, threshold: float, cannot_link: Iterable[tuple[int, int]] = ()
) -> list[int]:
    """Cluster items given their pairwise similarity matrix.

    Args:
        similarity: square symmetric matrix of pairwise similarities.
        threshold: two clusters merge while their average similarity is at
            least this value.
        cannot_link: pairs of items that must never share a cluster (for
            example two answers that contradict each other).

    Returns:
        A label per item; labels are 0..k-1, numbered by each cluster's
        smallest member.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity must be a square matrix, got shape {sim.shape}")
    n = sim.shape[0]
    forbidden = {(min(i, j), max(i, j)) for i, j in cannot_link}
    groups: list[list[int]] = [[i] for i in range(n)]
    while len(groups) > 1:
        best: tuple[float, int, int] | None = None
        for gi in range(len(groups)):
            for gj in range(gi + 1, len(groups)):
                avg = float(sim[np.ix_(groups[gi], groups[gj])].mean())
                # Round so that last-bit float noise cannot decide a merge order.
                avg = round(avg, 9)
                if avg < threshold:
                    continue
                if forbidden and any(
                    (min(a, b), max(a, b)) in forbidden for a in groups[gi] for b in groups[gj]
                ):
                    continue
                # Higher similarity first; groups are kept sorted by their smallest
                # member, so (gi, gj) order is the documented tie-break.
                if best is None or avg > best[0]:
                    best = (avg, gi, gj)
        if best is None:
            break
        _, gi, gj = best
        merged = sorted(groups[gi] + groups[gj])
        groups = [g for k, g in enumerate(groups) if k not in (gi, gj)] + [merged]
        groups.sort(key=lambda g: g[0])
    labels = [0] * n
    for label, members in enumerate(groups):
        for m in members:
            labels[m] = label
    return labels
