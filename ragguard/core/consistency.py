"""Cluster answers by meaning, vote, score and decide a verdict.

This module holds pure functions over plain arrays (testable on hand-written
vectors) and :class:`ConsistencyChecker`, which only adds an embedder.

Rules, all deterministic:

* **Contradictions**: the offline detectors of :mod:`ragguard.core.detectors`
  (``polarity``, ``quantity``) run on every pair of answers.
* **Clusters**: average-linkage agglomerative clustering of answer
  embeddings at ``similarity_threshold`` (see :mod:`ragguard.core.clustering`).
  Empty answers are never merged with non-empty ones, and two answers a
  detector found contradicting never share a cluster (embeddings alone put
  "yes, you must" next to "no, you need not"). Answers that open with the
  same yes/no marker count as similar enough to share a cluster.
* **Winner**: the largest cluster. A tie goes to the cluster whose
  representative is best ``anchored`` in the retrieved passages (the share of
  what it adds to the question found around the sentence that holds most of
  the question's terms, :func:`ragguard.core.grounding.anchored_shares`), then
  to the cluster holding the greedy answer, then to the smallest id. With
  five samples most questions of a small model end in a tie of single answers,
  and the greedy answer is not the one most often right among them.
* **Representative** of a cluster: the greedy answer when it is a member,
  otherwise the medoid (highest mean similarity to the other members, ties to
  the lowest sample index).
* **Agreement**: winning cluster size / number of samples.
* **Semantic entropy**: Shannon entropy of the cluster shares divided by
  ``log(n_samples)``, so 0 means all agree and 1 means every answer differs.
  ``semantic_entropy_weighted`` weighs each sample by its sequence
  probability instead of counting it
  (:func:`ragguard.core.signals.weighted_semantic_entropy`; ``None`` when a
  sample has no log-probabilities).
* **Verdict**: ``abstain`` when the voted answer is empty; ``contradiction``
  when a detector of a contradiction kind fired; ``consistent`` when agreement
  is at least ``consistent_agreement``; otherwise ``inconsistent``.
* **Grounding** (when context is given): each cluster representative's
  ``support`` is its best cosine similarity to a context passage (each
  passage embedded on its own and remembered, see
  :func:`ragguard.core.passages.embed_alone`); the voted
  answer is ``grounded`` when its support reaches ``grounding_threshold``.
* **Confidence** in 0..1: the agreement, minus the share of samples that
  explicitly contradict the voted answer, halved when the answer is not
  grounded; 0 when abstaining. With a calibration
  (:mod:`ragguard.core.calibration`) it is the fitted probability that the
  voted answer is right, and ``min_confidence`` gates it.
* **Coverage warning**: when no retrieved sentence holds at least
  :data:`LOW_COVERAGE` of the question's content terms (grounding
  ``coverage``), a warning says the passages may not be about the question
  (not for Chinese questions, whose bigram coverage runs low on pages that
  do answer them).
* **Policy** ``on_flagged``: ``warn`` returns the majority answer with a
  warning on ``inconsistent``/``contradiction``; ``abstain`` returns no
  answer (verdict ``abstain``) and a warning that lists the conflicting answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ragguard.core.calibration import Calibration, apply_calibration, flag
from ragguard.core.clustering import agglomerative_clusters, cosine_matrix
from ragguard.core.detectors import Finding, detect_all, first_sentence, same_fact_pairs, same_lead_pairs
from ragguard.core.grounding import Grounding, anchored_shares, ground, has_cjk
from ragguard.core.passages import embed_alone
from ragguard.core.protocols import CONTRADICTION, ENTAILMENT, Embedder, NLIModel
from ragguard.core.signals import semantic_entropy, weighted_semantic_entropy
from ragguard.core.types import (
    DIVERGENT,
    ENTITY,
    NLI,
    POLARITY,
    QUANTITY,
    Cluster,
    Contradiction,
    FindingKind,
    Passage,
    Sample,
    Verdict,
)

__all__ = [
    "ConsistencySettings", "ConsistencyResult", "ConsistencyChecker", "cluster_answers", "pick_winner", "tie_preference",
    "representative", "semantic_entropy", "decide_verdict", "divergent_pairs", "confidence_score",
    "support_scores", "nli_statement",
]

# Kinds that make the verdict ``contradiction``. ``divergent`` only says two
# clusters differ in meaning, which is what ``inconsistent`` already reports.
CONTRADICTION_KINDS: frozenset[FindingKind] = frozenset({POLARITY, QUANTITY, ENTITY, NLI})


# Below this share of the question's content terms in the best retrieved sentence (grounding
# ``coverage``) the result warns that the passages may be about something else. On the dev splits
# of bench/trust.py (faq, reference, handbook5; embedded model) 1 of 61 voted answers below 0.5
# was right, against 40 of 259 at or above it. Chinese questions get no such warning: read by
# character bigrams, their phrasing ("每月几号", "应该怎么") is rarely in the documents, so 6 of the 11
# Chinese questions of examples/faq.jsonl fall below 0.5 against the very pages that answer them.
LOW_COVERAGE = 0.5


@dataclass(frozen=True)
class ConsistencySettings:
    """Thresholds of the consistency check (see the module docstring)."""

    similarity_threshold: float = 0.8
    consistent_agreement: float = 0.8
    grounding_threshold: float = 0.45
    on_flagged: str = "warn"
    clustering: str = "embedding"
    grounding: str = "embedding"
    entailment_threshold: float = 0.5
    nli_contradiction_threshold: float = 0.5
    near_identical: float = 0.97
    claim_support: float = 0.5
    min_confidence: float | None = None  # with a calibration: None = the calibration's threshold


# Lexical claim support at which all of what the answer adds is in its best passages (float noise aside).
FULL_SUPPORT = 0.999


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
    confidence: float = 0.0
    grounded: bool | None = None
    warnings: list[str] = field(default_factory=list)
    semantic_entropy_weighted: float | None = None
    grounding: Grounding | None = None
    calibrated: bool = False
    calibration: dict | None = None  # the file and any mismatch with the setup it was fitted for


def cluster_answers(
    texts: Sequence[str], similarity: np.ndarray, threshold: float, cannot_link: Iterable[tuple[int, int]] = ()
) -> list[int]:
    """Cluster answers; empty answers form their own group, and contradicting pairs never share one."""
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if not empty:
        return agglomerative_clusters(similarity, threshold, cannot_link)
    sim = np.array(similarity, dtype=np.float64, copy=True)
    # Empty answers embed to arbitrary vectors: make them one group, and never part of another.
    sim[np.ix_(empty, empty)] = 1.0
    apart = [(i, j) for i in empty for j in range(len(texts)) if j not in empty]
    return agglomerative_clusters(sim, threshold, [*cannot_link, *apart])


def agree_on_leads(
    similarity: np.ndarray,
    pairs: Iterable[tuple[int, int]],
    findings: dict[tuple[int, int], list],
    threshold: float,
) -> np.ndarray:
    """Raise the similarity of answers that agree on what they commit to up to the threshold.

    ``pairs`` are answers that open with the same yes/no
    (:func:`~ragguard.core.detectors.same_lead_pairs`: "Yes, ask HR for form
    HR-07" and "Yes. An employment certificate is required") or that state
    the same non-empty set of key facts
    (:func:`~ragguard.core.detectors.same_fact_pairs`: "You get 25 days." and
    "25 working days per year."): they agree though their embeddings may sit
    below the threshold. Pairs a detector separated are left alone.
    """
    sim = np.array(similarity, dtype=np.float64, copy=True)
    for i, j in pairs:
        if (i, j) not in findings:
            sim[i, j] = sim[j, i] = max(sim[i, j], threshold)
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


def pick_winner(
    labels: Sequence[int], greedy_index: int | None, preference: dict[int, float | None] | None = None
) -> int:
    """Return the winning cluster label.

    The largest cluster wins; a size tie goes to the cluster with the highest
    ``preference`` (the grounding's ``anchored`` support of its representative;
    ``None`` or missing counts lowest), then to the greedy answer's cluster,
    then to the lowest id.
    """
    sizes: dict[int, int] = {}
    for label in labels:
        sizes[label] = sizes.get(label, 0) + 1
    greedy_label = labels[greedy_index] if greedy_index is not None else None
    prefer = preference or {}

    def key(label: int) -> tuple[int, float, int, int]:
        value = prefer.get(label)
        return (-sizes[label], -round(value, 6) if value is not None else math.inf,
                0 if label == greedy_label else 1, label)

    return min(sizes, key=key)


def tie_preference(
    clusters: Sequence[Cluster], question: str, passages: Sequence[Passage]
) -> dict[int, float | None] | None:
    """The ``anchored`` support of the representatives of the clusters tied for the most members.

    ``None`` when no tie or no passages: the vote then needs no grounding.
    """
    if not clusters or not passages:
        return None
    top = max(c.size for c in clusters)
    tied = [c for c in clusters if c.size == top]
    if len(tied) < 2:
        return None
    shares = anchored_shares([c.representative for c in tied], question, passages)
    return {c.id: v for c, v in zip(tied, shares, strict=True)}


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


def support_scores(answer_vectors: np.ndarray, passage_vectors: np.ndarray) -> list[float]:
    """Best cosine similarity of each answer to any passage (no passages: empty list)."""
    if len(passage_vectors) == 0 or len(answer_vectors) == 0:
        return []
    from ragguard.core.clustering import normalize

    sims = normalize(answer_vectors) @ normalize(passage_vectors).T
    return [round(float(row.max()), 6) for row in sims]


def confidence_score(agreement: float, contradicting_share: float, grounded: bool | None) -> float:
    """See the module docstring: agreement minus explicit contradiction, halved if ungrounded."""
    value = max(0.0, agreement - contradicting_share)
    if grounded is False:
        value *= 0.5
    return round(min(1.0, value), 6)


def contradicting_share(members: Iterable[int], pairs: Iterable[tuple[int, int, str]], samples: int) -> float:
    """Share of the ``samples`` that a detector finds contradicting the voted cluster (its ``members``).

    ``pairs`` are ``(a, b, kind)`` sample pairs; a pair counts when its kind is a contradiction and it
    crosses the cluster's border; each sample outside counts once.
    """
    inside = set(members)
    against = {b if a in inside else a for a, b, kind in pairs
               if kind in CONTRADICTION_KINDS and ((a in inside) != (b in inside))}
    return len(against) / samples if samples else 0.0


def formula_confidence(record: Mapping[str, Any]) -> float:
    """The uncalibrated confidence of an ``ask`` record, recomputed from its fields (what ``confidence``
    holds when no calibration file is set): a calibrated record can still be compared with the formula."""
    samples = record.get("samples") or []
    answer = record.get("answer")
    winner = next((c for c in record.get("clusters") or [] if c.get("representative") == answer), None)
    if not answer or not samples or winner is None:
        return 0.0
    pairs = [(int(c["a"]), int(c["b"]), str(c.get("kind"))) for c in record.get("contradictions") or []]
    share = contradicting_share(winner.get("members") or [], pairs, len(samples))
    return confidence_score(float(record.get("agreement") or 0.0), share, record.get("grounded"))


def divergent_pairs(
    clusters: Sequence[Cluster],
    texts: Sequence[str],
    similarity: np.ndarray,
    covered: Iterable[tuple[int, int]] = (),
    measure: str = "cosine",
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
                    kind=DIVERGENT,
                    score=round(max(0.0, 1.0 - sim), 6),
                    explanation=(
                        f"clusters {clusters[i].id} and {clusters[j].id} differ in meaning "
                        f"({measure} {sim:.2f}): {_quote(texts[a])} vs {_quote(texts[b])}"
                    ),
                )
            )
    return out


def _rep_index(cluster: Cluster, texts: Sequence[str]) -> int:
    for m in cluster.members:
        if texts[m] == cluster.representative:
            return m
    return cluster.members[0]


def _normalised(text: str) -> str:
    """Case, spacing and trailing punctuation do not change an answer's meaning."""
    return " ".join(text.lower().split()).rstrip(" .!。！")


def nli_statement(question: str, answer: str) -> str:
    """What an NLI model compares: the answer read together with its question (as semantic entropy does)."""
    return f"{question} {answer}".strip() if question else answer


def _quote(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return f'"{flat[: limit - 1]}…"' if len(flat) > limit else f'"{flat}"'


class ConsistencyChecker:
    """Clusters samples with an embedder (and optionally an NLI model) and applies the voting rules.

    Args:
        embedder: any object with ``embed(texts) -> np.ndarray``.
        settings: thresholds; defaults are documented on
            :class:`ConsistencySettings`.
        nli: an NLI model (:class:`ragguard.core.protocols.NLIModel`); enables the
            ``nli`` detector, and clustering / grounding by entailment when
            the settings ask for them.
    """

    def __init__(
        self, embedder: Embedder, settings: ConsistencySettings | None = None, nli: NLIModel | None = None,
        calibration: Calibration | None = None, calibration_note: dict | None = None,
    ) -> None:
        self.embedder, self.settings, self.nli = embedder, settings or ConsistencySettings(), nli
        self.calibration, self.calibration_note = calibration, calibration_note
        for key in ("clustering", "grounding"):
            if getattr(self.settings, key) == "entailment" and nli is None:
                raise ValueError(f"{key} by entailment needs an NLI model")

    def check(
        self, question: str, samples: Sequence[Sample], context: Sequence[str | Passage] = ()
    ) -> ConsistencyResult:
        """Score ``samples`` (answers to ``question``) and return the voted result.

        ``context`` (the retrieved passages, as texts or :class:`Passage`
        objects) is used for grounding and to break a tie in the vote.
        """
        if not samples:
            return ConsistencyResult("", "abstain", 0.0, 0.0, [], [], [], warnings=["no samples to check"])
        texts = [s.text.strip() for s in samples]
        sources = [
            p if isinstance(p, Passage) else Passage("context", f"context#{i}", p, 1.0) for i, p in enumerate(context)
        ]
        sources = [p for p in sources if p.text.strip()]
        passages = [p.text for p in sources]
        by_entailment = self.settings.grounding == "entailment"
        vectors = self.embedder.embed(texts)
        similarity = cosine_matrix(vectors)
        result = self.check_with_similarity(samples, similarity, question, sources)
        if passages and result.clusters:
            if by_entailment:
                support = self._entailment_support(result, passages, question)
            else:
                reps = [_rep_index(c, [s.text for s in result.samples]) for c in result.clusters]
                support = support_scores(vectors[reps], embed_alone(self.embedder, passages))
            self._ground(result, support)
            vectors = None if by_entailment else embed_alone(self.embedder, passages)
            self._ground_claims(result, question, sources, vectors)
        result.confidence = self._confidence(result)
        if self.calibration is not None:
            apply_calibration(result, sources, self.calibration, self.settings.min_confidence,
                              self.settings.on_flagged, self.calibration_note, question)
        result = self._apply_policy(result)
        coverage = result.grounding.coverage if result.grounding is not None else None
        if coverage is not None and coverage < LOW_COVERAGE and not has_cjk(question):
            share = "any" if coverage == 0 else f"more than {coverage:.0%}"
            result.warnings.append(
                f"no retrieved sentence holds {share} of the question's terms: the passages may not be about "
                "what was asked (check the sources; the index may lack the document)")
        return result

    def check_with_similarity(
        self, samples: Sequence[Sample], similarity: np.ndarray, question: str = "", passages: Sequence[Passage] = ()
    ) -> ConsistencyResult:
        """Cluster, vote and detect with a precomputed similarity matrix (no grounding, no policy).

        ``passages`` only break a tie for the most members (:func:`tie_preference`).
        """
        texts = [s.text.strip() for s in samples]
        greedy_index = next((i for i, s in enumerate(samples) if s.greedy), None)
        findings = detect_all(texts, question)
        threshold, measure = self.settings.similarity_threshold, "cosine"
        if self.nli is not None:
            entail, nli_found = self._nli_pairs(texts, similarity, question, findings)
            findings = {**findings, **nli_found}
            if self.settings.clustering == "entailment":
                similarity, threshold, measure = entail, self.settings.entailment_threshold, "two-way entailment"
        agreeing = sorted({*same_lead_pairs(texts, question), *same_fact_pairs(texts, question)})
        similarity = agree_on_leads(similarity, agreeing, findings, threshold)
        labels = cluster_answers(texts, similarity, threshold, findings.keys())
        members_of: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            members_of.setdefault(label, []).append(i)
        clusters = []
        for label in sorted(members_of):
            members = members_of[label]
            rep = representative(members, similarity, greedy_index)
            clusters.append(Cluster(id=label, size=len(members), representative=texts[rep], members=members))
        winner = pick_winner(labels, greedy_index, tie_preference(clusters, question, passages))
        answer = clusters[winner].representative
        agreement = clusters[winner].size / len(samples)
        entropy = semantic_entropy([c.size for c in clusters])
        detected = [
            Contradiction(a=i, b=j, kind=f.kind, score=f.score, explanation=f.explanation())
            for (i, j), found in sorted(findings.items())
            for f in found
        ]
        covered = {tuple(sorted((labels[c.a], labels[c.b]))) for c in detected}
        contradictions = detected + divergent_pairs(clusters, texts, similarity, covered, measure)  # type: ignore[arg-type]
        verdict = decide_verdict(answer, agreement, contradictions, self.settings)
        labelled = [replace(s, text=texts[i], cluster=labels[i]) for i, s in enumerate(samples)]
        result = ConsistencyResult(
            answer=answer,
            verdict=verdict,
            agreement=agreement,
            semantic_entropy=entropy,
            samples=labelled,
            clusters=clusters,
            contradictions=contradictions,
            semantic_entropy_weighted=weighted_semantic_entropy(labels, [s.logprob_mean for s in samples]),
        )
        if verdict == "abstain":
            empty = sum(1 for t in texts if not t)
            result.warnings.append(f"{empty} of {len(texts)} answer{'s were' if len(texts) > 1 else ' was'} empty and "
                                   "they are the largest group, so there is no answer (verdict abstain)")
        result.confidence = self._confidence(result)
        return result

    def _nli_pairs(
        self,
        texts: Sequence[str],
        similarity: np.ndarray,
        question: str,
        findings: dict[tuple[int, int], list[Finding]],
    ) -> tuple[np.ndarray, dict[tuple[int, int], list[Finding]]]:
        """Two-way entailment matrix and ``nli`` findings for every pair of answers.

        Identical and near-identical answers (cosine at least ``near_identical``)
        count as mutually entailing without asking the model; empty answers
        entail nothing. Each distinct ordered pair is scored once, all in one
        batched call. Pairs a rule-based detector already flagged get no
        ``nli`` finding (the rule quotes the spans more precisely).
        """
        n = len(texts)
        entail = np.eye(n, dtype=np.float64)
        asked: dict[tuple[str, str], int] = {}
        todo: list[tuple[int, int]] = []
        for i in range(n):
            for j in range(i + 1, n):
                if not texts[i] or not texts[j]:
                    continue
                if _normalised(texts[i]) == _normalised(texts[j]) or similarity[i, j] >= self.settings.near_identical:
                    entail[i, j] = entail[j, i] = 1.0
                    continue
                todo.append((i, j))
                for key in ((texts[i], texts[j]), (texts[j], texts[i])):
                    asked.setdefault(key, len(asked))
        if not todo:
            return entail, {}
        statements = {t: nli_statement(question, t) for t in texts}
        probs = self.nli.predict([(statements[p], statements[h]) for p, h in asked])  # type: ignore[union-attr]
        found: dict[tuple[int, int], list[Finding]] = {}
        for i, j in todo:
            forward, backward = probs[asked[(texts[i], texts[j])]], probs[asked[(texts[j], texts[i])]]
            entail[i, j] = entail[j, i] = min(forward[ENTAILMENT], backward[ENTAILMENT])
            p_contra = round(float(max(forward[CONTRADICTION], backward[CONTRADICTION])), 6)
            if p_contra >= self.settings.nli_contradiction_threshold and (i, j) not in findings:
                found[(i, j)] = [Finding(NLI, p_contra, first_sentence(texts[i]), first_sentence(texts[j]))]
        return entail, found

    def _entailment_support(self, result: ConsistencyResult, passages: Sequence[str], question: str) -> list[float]:
        """Per cluster: the highest probability that one passage entails its representative."""
        hypotheses = [nli_statement(question, c.representative) for c in result.clusters]
        pairs = [(p, h) for h in hypotheses for p in passages]
        probs = self.nli.predict(pairs)[:, ENTAILMENT].reshape(len(hypotheses), len(passages))  # type: ignore[union-attr]
        return [round(float(row.max()), 6) for row in probs]

    def _ground(self, result: ConsistencyResult, support: Sequence[float]) -> None:
        result.clusters = [replace(c, support=v) for c, v in zip(result.clusters, support, strict=True)]
        winner = next(c for c in result.clusters if c.representative == result.answer)
        threshold = (
            self.settings.entailment_threshold
            if self.settings.grounding == "entailment"
            else self.settings.grounding_threshold
        )
        if result.answer:
            result.grounded = bool(winner.support is not None and winner.support >= threshold)

    def _ground_claims(
        self, result: ConsistencyResult, question: str, sources: Sequence[Passage], vectors: np.ndarray | None
    ) -> None:
        """Claim-level grounding of the voted answer (and the lexical support of every cluster).

        The voted answer is ``grounded`` when at least ``claim_support`` of what it adds to the
        question is in its claims' best passages and the embedding (or entailment) threshold is met,
        or all of what it adds is there: a short answer quoted word for word ("Your line manager.")
        has a low cosine to a whole passage, and the threshold would call it ungrounded.
        """
        entails = None
        if self.nli is not None:
            nli = self.nli

            def entails(premise: str, hypothesis: str) -> float:
                return float(nli.predict([(premise, hypothesis)])[0][ENTAILMENT])

        if result.answer:
            embedder = self.embedder if vectors is not None else None  # by entailment: no passage vectors
            result.grounding = ground(
                result.answer, question, sources, embedder=embedder, passage_vectors=vectors, entails=entails
            )
        result.clusters = [
            replace(c, claim_support=result.grounding.support if result.grounding and c.representative == result.answer
                    else ground(c.representative, question, sources, readings=False).support)
            for c in result.clusters
        ]
        support = result.grounding.support if result.grounding else None
        if support is not None and result.grounded is not None:
            result.grounded = (result.grounded or support >= FULL_SUPPORT) and support >= self.settings.claim_support

    def _confidence(self, result: ConsistencyResult) -> float:
        if not result.answer or not result.samples:
            return 0.0
        winner = next(c for c in result.clusters if c.representative == result.answer)
        share = contradicting_share(winner.members, [(c.a, c.b, c.kind) for c in result.contradictions],
                                    len(result.samples))
        return confidence_score(result.agreement, share, result.grounded)

    def _apply_policy(self, result: ConsistencyResult) -> ConsistencyResult:
        if result.verdict not in ("inconsistent", "contradiction"):
            return result
        others = [c.representative for c in result.clusters if c.representative != result.answer][:3]
        listed = "; ".join(f'"{_quote(t, 60)[1:-1]}"' for t in [result.answer, *others])
        said = "contradict each other" if result.verdict == "contradiction" else "disagree"
        flag(result, self.settings.on_flagged, f"abstained: the answers {said} (verdict {result.verdict}: {listed})",
             f"the answers {said} (verdict {result.verdict}, agreement {result.agreement:.0%}): treat this answer "
             "with care")
        return result
