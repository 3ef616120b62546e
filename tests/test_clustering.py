"""Average-linkage clustering and cosine similarity on hand-written vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragguard.core.clustering import agglomerative_clusters, cosine_matrix


def unit(deg: float) -> list[float]:
    """A 2-d unit vector at ``deg`` degrees."""
    rad = math.radians(deg)
    return [math.cos(rad), math.sin(rad)]


def single_linkage(sim: np.ndarray, threshold: float) -> list[int]:
    """Connected components of ``sim >= threshold`` (what single linkage would give)."""
    n = len(sim)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if sim[i, j] >= threshold:
                parent[find(j)] = find(i)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(n)]


def partition(labels: list[int]) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, set()).add(i)
    return {frozenset(g) for g in groups.values()}


# ------------------------------------------------------------------ cosine_matrix
def test_cosine_matrix_known_values() -> None:
    sim = cosine_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [-3.0, 0.0]]))
    expected = np.array(
        [
            [1.0, 1 / math.sqrt(2), 0.0, -1.0],
            [1 / math.sqrt(2), 1.0, 1 / math.sqrt(2), -1 / math.sqrt(2)],
            [0.0, 1 / math.sqrt(2), 1.0, 0.0],
            [-1.0, -1 / math.sqrt(2), 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(sim, expected, atol=1e-12)


def test_cosine_matrix_ignores_length_and_keeps_zero_rows_at_zero() -> None:
    sim = cosine_matrix(np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]]))
    assert sim[0, 1] == pytest.approx(1.0)
    assert sim[2].tolist() == [0.0, 0.0, 0.0]  # a zero vector is similar to nothing, not NaN
    assert np.isfinite(sim).all()
    assert (sim <= 1.0).all() and (sim >= -1.0).all()


def test_cosine_matrix_rejects_1d_input() -> None:
    with pytest.raises(ValueError, match="2-d"):
        cosine_matrix(np.array([1.0, 2.0, 3.0]))


# ------------------------------------------------------------------ agglomerative_clusters
def test_two_clear_groups() -> None:
    vectors = np.array(
        [[1.0, 0.0, 0.0], [0.95, 0.05, 0.0], [0.0, 1.0, 0.0], [0.02, 0.98, 0.0], [0.97, 0.0, 0.03]]
    )
    assert agglomerative_clusters(cosine_matrix(vectors), 0.8) == [0, 0, 1, 1, 0]


def test_all_identical_is_one_cluster() -> None:
    vectors = np.tile([0.3, -0.2, 0.9], (6, 1))
    assert agglomerative_clusters(cosine_matrix(vectors), 0.99) == [0] * 6


def test_all_orthogonal_gives_n_clusters() -> None:
    assert agglomerative_clusters(cosine_matrix(np.eye(5)), 0.5) == [0, 1, 2, 3, 4]


def test_labels_are_numbered_by_smallest_member() -> None:
    b, a = [0.0, 1.0], [1.0, 0.0]
    # Groups in input order: B (0, 3, 5), A (1, 2), C (4).
    vectors = np.array([b, a, a, b, [-1.0, -1.0], b])
    assert agglomerative_clusters(cosine_matrix(vectors), 0.9) == [0, 1, 1, 0, 2, 0]


def test_average_linkage_does_not_chain() -> None:
    # a ~ b ~ c ~ d ~ e, 20 degrees apart: neighbours have cosine 0.94, a and e are 80 degrees apart.
    vectors = np.array([unit(d) for d in (0, 20, 40, 60, 80)])
    sim = cosine_matrix(vectors)
    threshold = 0.9
    assert sim[0, 1] > threshold and sim[0, 4] < 0.2
    assert single_linkage(sim, threshold) == [0, 0, 0, 0, 0]  # single linkage chains a..e into one
    labels = agglomerative_clusters(sim, threshold)
    assert labels[0] != labels[4]
    # (a, b) merge first (tie broken by smallest index); {a, b} vs c averages cos 40 and cos 20 = 0.853.
    assert labels == [0, 0, 1, 1, 2]


def test_average_linkage_three_item_chain() -> None:
    # cos(a, b) = cos(b, c) = 0.85, cos(a, c) = cos(2 * acos 0.85) = 0.445.
    angle = math.degrees(math.acos(0.85))
    sim = cosine_matrix(np.array([unit(0), unit(angle), unit(2 * angle)]))
    assert single_linkage(sim, 0.8) == [0, 0, 0]
    assert agglomerative_clusters(sim, 0.8) == [0, 0, 1]


def test_non_square_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="square"):
        agglomerative_clusters(np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError, match="square"):
        agglomerative_clusters(np.ones(4), 0.5)


def test_similarity_exactly_at_threshold_merges() -> None:
    sim = cosine_matrix(np.array([[1.0, 0.0], [0.8, 0.6]]))  # cosine 0.8 up to float noise
    assert agglomerative_clusters(sim, 0.8) == [0, 0]
    assert agglomerative_clusters(sim, 0.8 + 1e-6) == [0, 1]
    # Last-bit noise (0.1 + 0.7 == 0.7999999999999999) does not decide a merge.
    noisy = np.array([[1.0, 0.1 + 0.7], [0.1 + 0.7, 1.0]])
    assert noisy[0, 1] < 0.8
    assert agglomerative_clusters(noisy, 0.8) == [0, 0]


def test_merge_ties_go_to_the_smallest_indexes_and_are_repeatable() -> None:
    # Item 0 is equally close (0.9) to items 1 and 2, which are unrelated to each other.
    sim = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, 0.0], [0.9, 0.0, 1.0]])
    first = agglomerative_clusters(sim, 0.8)
    assert first == [0, 0, 1]  # (0, 1) wins the tie; {0, 1} vs 2 averages 0.45
    assert all(agglomerative_clusters(sim.copy(), 0.8) == first for _ in range(5))
    # Swapping items 1 and 2 makes the other one win, by the same documented rule.
    swap = [0, 2, 1]
    assert agglomerative_clusters(sim[np.ix_(swap, swap)], 0.8) == [0, 0, 1]


def test_permuting_the_input_permutes_the_partition() -> None:
    rng = np.random.default_rng(7)
    centres = np.eye(4)[:3] * 5
    vectors = np.vstack([c + rng.normal(0, 0.4, size=(4, 4)) for c in centres])
    sim = cosine_matrix(vectors)
    base = agglomerative_clusters(sim, 0.75)
    assert len(set(base)) == 3
    assert agglomerative_clusters(sim, 0.75) == base
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(len(vectors))
        labels = agglomerative_clusters(sim[np.ix_(perm, perm)], 0.75)
        # Map permuted positions back to original items before comparing partitions.
        back = {frozenset(int(perm[i]) for i in group) for group in partition(labels)}
        assert back == partition(base)
        # Labels still follow the smallest-member numbering in the new order.
        first_seen = [label for i, label in enumerate(labels) if label not in labels[:i]]
        assert first_seen == [0, 1, 2]


def test_cannot_link_keeps_identical_items_apart() -> None:
    sim = np.ones((3, 3))
    assert agglomerative_clusters(sim, 0.9) == [0, 0, 0]
    assert agglomerative_clusters(sim, 0.9, cannot_link=[(2, 0)]) == [0, 0, 1]
