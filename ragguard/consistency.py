"""Cluster answers by meaning, vote, score and decide a verdict.

This module holds pure functions over plain arrays (testable on hand-written
vectors) and :class:`ConsistencyChecker`, which only adds an embedder.

Rules, all deterministic:

* **Contradictions**: the offline detectors of :mod:`ragguard.contradictions`
  (``polarity``, ``quantity``) run on every pair of answers.
* **Clusters**: average-linkage agglomerative clustering of answer
  embeddings at ``similarity_threshold`` (see :mod:`ragguard.clustering`).
  Empty answers are never merged with non-empty ones, and two answers a
  detector found contradicting never share a cluster (embeddings alone put
  "yes, you must" next to "no, you need not"). Answers that open with the
  same yes/no marker count as similar enough to share a cluster.
* **Winner**: the largest cluster; ties go to the cluster holding the greedy
  answer, then to the cluster with the smallest id.
* **Representative** of a cluster: the greedy answer when it is a member,
  otherwise the medoid (highest mean similarity to the other members, ties to
  the lowest sample index).
* **Agreement**: winning cluster size / number of samples.
* **Semantic entropy**: Shannon entropy of the cluster shares divided by
  ``log(n_samples)``, so 0 means all agree and 1 means every answer differs.
* **Verdict**: ``abstain`` when the voted answer is empty; ``contradiction``
  when a detector of a contradiction kind fired; ``consistent`` when agreement
  is at least ``consistent_agreement``; otherwise ``inconsistent``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ragguard.clustering import agglomerative_clusters, cosine_matrix
from ragguard.contradictions import detect_all, same_lead_pairs
from ragguard.protocols import Embedder
from ragguard.types import Cluster, Contradiction, Sample, Verdict

__all__ = [
    "ConsistencySettings",
    "ConsistencyResult",
    "ConsistencyChecker",
    "cluster_answers",
    "pick_winner",
    "representative",
    "semantic_entropy",
    "decide_verdict",
    "divergent_pairs",
]

# Kinds that make the verdict ``contradiction``. ``divergent`` only says two
# clusters differ in meaning, which is what ``inconsistent`` already reports.
CONTRADICTION_KINDS = frozenset({"polarity", "quantity", "entity", "nli"})


@dataclass(frozen=True)
class ConsistencySettings:
    """Thresholds of the consistency check (see the module docstring)."""

    similarity_threshold: float = 0.8
    consistent_agreement: float = 0.8


@dataclass
class ConsistencyResult:
    """What the checker decided about a set of samples."""

    answer: str
    verdict: Verdict
    agreement: float
    semantic_entropy: float
    samples: list[Sample]
    clusters: list[Cluster]
    contradictions: list[Contradiction]


def cluster_answers(
    texts: Sequence[str], similarity: np.ndarray, threshold: float, cannot_link: Iterable[tuple[int, int]] = ()
) -> list[int]:
    """Cluster answers; empty answers form their own group, and contradicting pairs never share one."""
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if not empty:
        return agglomerative_clusters(similarity, threshold, cannot_link)
    sim = np.array(similarity, dtype=np.float64, copy=True)
    for i in empty:
        for j in range(len(texts)):
            if i != j:
                both_empty = j in empty
                sim[i, j] = sim[j, i] = 1.0 if both_empty else -1.0
    return agglomerative_clusters(sim, threshold, cannot_link)


def agree_on_leads(
    similarity: np.ndarray,
    pairs: Iterable[tuple[int, int]],
    findings: dict[tuple[int, int], list],
    settings: ConsistencySettings,
) -> np.ndarray:
    """Raise the similarity of answers that open with the same yes/no to the threshold.

    "Yes, ask HR for form HR-07" and "Yes. An employment certificate is
    required" agree on what a yes/no question asks, though their embeddings
    may sit below the threshold. Pairs a detector separated are left alone.
    """
    sim = np.array(similarity, dtype=np.float64, copy=True)
    for i, j in pairs:
        if (i, j) not in findings:
            sim[i, j] = sim[j, i] = max(sim[i, j], settings.similarity_threshold)
    return sim


def representative(members: Sequence[int], similarity: np.ndarray, greedy_index: int | None) -> int:
    """Pick the sample that stands for a cluster (greedy if present, else medoid)."""
    if greedy_index is not None and greedy_index in members:
        return greedy_index
    if len(members) == 1:
        return members[0]
    best, best_score = members[0], -math.inf
    for m in members:
        others = [o for o in members if o != m]
        score = round(float(similarity[m, others].mean()), 9)
        if score > best_score:
            best, best_score = m, score
    return best


def pick_winner(labels: Sequence[int], greedy_index: int | None) -> int:
    """Return the winning cluster label (largest; ties: greedy's, then lowest id)."""
    sizes: dict[int, int] = {}
    for label in labels:
        sizes[label] = sizes.get(label, 0) + 1
    greedy_label = labels[greedy_index] if greedy_index is not None else None

    def key(label: int) -> tuple[int, int, int]:
        return (-sizes[label], 0 if label == greedy_label else 1, label)

    return min(sizes, key=key)


def semantic_entropy(cluster_sizes: Sequence[int]) -> float:
    """Entropy of cluster shares normalised to 0..1 by ``log(total)``."""
    total = sum(cluster_sizes)
    if total <= 1:
        return 0.0
    h = -sum((s / total) * math.log(s / total) for s in cluster_sizes if s > 0)
    return min(1.0, max(0.0, h / math.log(total)))


def decide_verdict(
    answer: str, agreement: float, contradictions: Sequence[Contradiction], settings: ConsistencySettings
) -> Verdict:
    """Apply the verdict rules of the module docstring."""
    if not answer.strip():
        return "abstain"
    if any(c.kind in CONTRADICTION_KINDS for c in contradictions):
        return "contradiction"
    if agreement + 1e-9 >= settings.consistent_agreement:
        return "consistent"
    return "inconsistent"


def divergent_pairs(
    clusters: Sequence[Cluster],
    texts: Sequence[str],
    similarity: np.ndarray,
    covered: Iterable[tuple[int, int]] = (),
) -> list[Contradiction]:
    """One ``divergent`` entry per pair of clusters, between their representatives.

    Cluster pairs listed in ``covered`` (already explained by a detector) are skipped.
    """
    reps = [_rep_index(c, texts) for c in clusters]
    skip = set(covered)
    out: list[Contradiction] = []
    for i in range(len(clusters)):
        for j in range(i + 1, len(clusters)):
            if (clusters[i].id, clusters[j].id) in skip:
                continue
            a, b = reps[i], reps[j]
            sim = float(similarity[a, b])
            out.append(
                Contradiction(
                    a=a,
                    b=b,
                    kind="divergent",
                    score=round(max(0.0, 1.0 - sim), 6),
                    explanation=(
                        f"clusters {clusters[i].id} and {clusters[j].id} differ in meaning "
                        f"(cosine {sim:.2f}): {_quote(texts[a])} vs {_quote(texts[b])}"
                    ),
                )
            )
    return out


def _rep_index(cluster: Cluster, texts: Sequence[str]) -> int:
    for m in cluster.members:
        if texts[m] == cluster.representative:
            return m
    return cluster.members[0]


def _quote(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return f'"{flat[: limit - 1]}…"' if len(flat) > limit else f'"{flat}"'


class ConsistencyChecker:
    """Clusters samples with an embedder and applies the voting rules.

    Args:
        embedder: any object with ``embed(texts) -> np.ndarray``.
        settings: thresholds; defaults are documented on
            :class:`ConsistencySettings`.
    """

    def __init__(self, embedder: Embedder, settings: ConsistencySettings | None = None) -> None:
        self.embedder = embedder
        self.settings = settings or ConsistencySettings()

    def check(self, question: str, samples: Sequence[Sample]) -> ConsistencyResult:
        """Score ``samples`` (answers to ``question``) and return the voted result."""
        if not samples:
            return ConsistencyResult("", "abstain", 0.0, 0.0, [], [], [])
        texts = [s.text.strip() for s in samples]
        vectors = self.embedder.embed(texts)
        similarity = cosine_matrix(vectors)
        return self.check_with_similarity(samples, similarity, question)

    def check_with_similarity(
        self, samples: Sequence[Sample], similarity: np.ndarray, question: str = ""
    ) -> ConsistencyResult:
        """Like :meth:`check` with a precomputed similarity matrix."""
        texts = [s.text.strip() for s in samples]
        greedy_index = next((i for i, s in enumerate(samples) if s.greedy), None)
        findings = detect_all(texts, question)
        similarity = agree_on_leads(similarity, same_lead_pairs(texts, question), findings, self.settings)
        labels = cluster_answers(texts, similarity, self.settings.similarity_threshold, findings.keys())
        members_of: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            members_of.setdefault(label, []).append(i)
        clusters = []
        for label in sorted(members_of):
            members = members_of[label]
            rep = representative(members, similarity, greedy_index)
            clusters.append(Cluster(id=label, size=len(members), representative=texts[rep], members=members))
        winner = pick_winner(labels, greedy_index)
        answer = clusters[winner].representative
        agreement = clusters[winner].size / len(samples)
        entropy = semantic_entropy([c.size for c in clusters])
        detected = [
            Contradiction(a=i, b=j, kind=f.kind, score=f.score, explanation=f.explanation())
            for (i, j), found in sorted(findings.items())
            for f in found
        ]
        covered = {tuple(sorted((labels[c.a], labels[c.b]))) for c in detected}
        contradictions = detected + divergent_pairs(clusters, texts, similarity, covered)  # type: ignore[arg-type]
        verdict = decide_verdict(answer, agreement, contradictions, self.settings)
        labelled = [Sample(text=texts[i], seed=s.seed, greedy=s.greedy, cluster=labels[i]) for i, s in enumerate(samples)]
        return ConsistencyResult(
            answer=answer,
            verdict=verdict,
            agreement=agreement,
            semantic_entropy=entropy,
            samples=labelled,
            clusters=clusters,
            contradictions=contradictions,
        )
