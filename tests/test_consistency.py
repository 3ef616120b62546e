"""Voting rules (entropy, winner, representative, verdict) and the consistency checker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragguard.core.consistency import (
    ConsistencyChecker,
    ConsistencySettings,
    decide_verdict,
    pick_winner,
    representative,
    semantic_entropy,
    tie_preference,
)
from ragguard.core.types import Cluster, Contradiction, Passage, Sample

WHERE = "Where do I send the signed form?"  # not a yes/no question: the polarity detector stays quiet


def samples_of(texts: list[str]) -> list[Sample]:
    """Sample 0 is the greedy answer, the others carry seeds 101, 102, ..."""
    return [Sample(text=t, seed=None if i == 0 else 100 + i, greedy=i == 0) for i, t in enumerate(texts)]


# ------------------------------------------------------------------ semantic_entropy
def test_entropy_is_zero_when_all_agree() -> None:
    assert semantic_entropy([5]) == 0.0


def test_entropy_is_one_when_all_differ() -> None:
    assert semantic_entropy([1, 1, 1, 1, 1]) == pytest.approx(1.0)


def test_entropy_of_2_1_1_1_by_hand() -> None:
    # Shares 2/5, 1/5, 1/5, 1/5: H = -(0.4 ln 0.4 + 3 * 0.2 ln 0.2), normalised by ln 5.
    h = -(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2))
    assert h == pytest.approx(1.332179, abs=1e-6)
    assert semantic_entropy([2, 1, 1, 1]) == pytest.approx(h / math.log(5))
    assert semantic_entropy([2, 1, 1, 1]) == pytest.approx(0.827729, abs=1e-6)


def test_entropy_edge_cases() -> None:
    assert semantic_entropy([]) == 0.0
    assert semantic_entropy([1]) == 0.0
    assert semantic_entropy([2, 0, 1, 1, 1]) == semantic_entropy([2, 1, 1, 1])  # empty clusters add nothing
    assert semantic_entropy([4, 1]) < semantic_entropy([3, 2]) < semantic_entropy([1, 1, 1, 1, 1])


# ------------------------------------------------------------------ pick_winner
def test_largest_cluster_wins_over_the_greedy_one() -> None:
    assert pick_winner([0, 1, 1, 1, 0], greedy_index=0) == 1


def test_size_tie_goes_to_the_greedy_cluster() -> None:
    labels = [0, 0, 1, 1, 2]
    assert pick_winner(labels, greedy_index=2) == 1
    assert pick_winner(labels, greedy_index=3) == 1
    assert pick_winner(labels, greedy_index=0) == 0


def test_size_tie_without_greedy_goes_to_the_smallest_id() -> None:
    labels = [0, 0, 1, 1, 2]
    assert pick_winner(labels, greedy_index=None) == 0
    # Greedy sits in a smaller cluster: the tie between 0 and 1 is still broken by id.
    assert pick_winner(labels, greedy_index=4) == 0
    assert pick_winner([2, 1, 0], greedy_index=None) == 0
    assert pick_winner([0, 1, 2], greedy_index=2) == 2


def test_size_tie_goes_to_the_preferred_cluster_before_the_greedy_one() -> None:
    labels = [0, 1, 2, 3, 4]  # five single answers, greedy is sample 0
    assert pick_winner(labels, greedy_index=0, preference={0: 0.2, 1: 0.5, 2: 0.9, 3: None, 4: 0.9}) == 2
    # equal preference: greedy's cluster, then the smallest id
    assert pick_winner(labels, greedy_index=4, preference={2: 0.9, 4: 0.9}) == 4
    assert pick_winner(labels, greedy_index=0, preference={2: 0.9, 4: 0.9}) == 2
    # None and a missing label count lowest, below 0.0
    assert pick_winner([0, 1], greedy_index=0, preference={0: None, 1: 0.0}) == 1
    assert pick_winner([0, 1], greedy_index=0, preference={1: 0.0}) == 1
    # preference never beats size
    assert pick_winner([0, 0, 1], greedy_index=None, preference={0: 0.0, 1: 1.0}) == 0


def test_tie_preference_reads_only_the_clusters_tied_for_the_most_members() -> None:
    question = "Which office handles the signed expense form?"
    passages = [Passage("d", "d#0", "The canteen opens at noon. The signed expense form goes to the Finance office.", 1.0)]
    clusters = [
        Cluster(id=0, size=2, representative="It goes to the Legal office.", members=[0, 1]),
        Cluster(id=1, size=2, representative="It goes to the Finance office.", members=[2, 3]),
        Cluster(id=2, size=1, representative="The Finance office.", members=[4]),
    ]
    pref = tie_preference(clusters, question, passages)
    assert set(pref) == {0, 1}  # the single answer is not tied for the top
    assert pref[1] > pref[0]
    assert tie_preference(clusters[:1] + clusters[2:], question, passages) is None  # no tie
    assert tie_preference(clusters, question, []) is None  # nothing retrieved
    # no retrieved sentence shares a term with the question: no preference either way
    assert tie_preference(clusters, question, [Passage("d", "d#0", "Parking is free.", 1.0)]) == {0: None, 1: None}


def test_among_single_answers_the_vote_takes_the_one_the_passages_hold(make_embedder) -> None:
    question = "Which office handles the signed expense form?"
    texts = ["It goes to the Legal office.", "Ask the canteen.", "It goes to the Finance office.", "Nobody knows."]
    passages = ["The canteen opens at noon. The signed expense form goes to the Finance office."]
    vectors = {t: [float(i == k) for k in range(5)] for i, t in enumerate([*texts, *passages])}  # all different
    checker = ConsistencyChecker(make_embedder(vectors))
    result = checker.check(question, samples_of(texts), passages)
    assert [c.size for c in result.clusters] == [1, 1, 1, 1] and result.agreement == pytest.approx(0.25)
    assert result.answer == "It goes to the Finance office."
    assert result.grounding.anchored == 1.0
    # without passages the tie goes to the greedy answer, as before
    assert checker.check(question, samples_of(texts)).answer == texts[0]


# ------------------------------------------------------------------ representative
def test_representative_is_greedy_when_it_is_a_member() -> None:
    sim = np.eye(4)
    assert representative([0, 2, 3], sim, greedy_index=0) == 0
    assert representative([1, 2, 3], sim, greedy_index=2) == 2


def test_representative_is_the_medoid_otherwise() -> None:
    sim = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.6, 0.9],
            [0.0, 0.6, 1.0, 0.8],
            [0.0, 0.9, 0.8, 1.0],
        ]
    )
    # Mean similarity to the others: 1 -> 0.75, 2 -> 0.70, 3 -> 0.85.
    assert representative([1, 2, 3], sim, greedy_index=0) == 3
    assert representative([1, 2, 3], sim, greedy_index=None) == 3
    assert representative([2], sim, greedy_index=0) == 2


def test_medoid_ties_go_to_the_lowest_index() -> None:
    sim = np.full((4, 4), 0.9)
    np.fill_diagonal(sim, 1.0)
    assert representative([1, 2, 3], sim, greedy_index=0) == 1


# ------------------------------------------------------------------ decide_verdict
SETTINGS = ConsistencySettings()  # consistent_agreement 0.8


def contradiction(kind: str) -> Contradiction:
    return Contradiction(a=0, b=1, kind=kind, score=1.0, explanation="x")


def test_empty_answer_abstains() -> None:
    assert decide_verdict("", 1.0, [], SETTINGS) == "abstain"
    assert decide_verdict("  \n", 1.0, [contradiction("polarity")], SETTINGS) == "abstain"


def test_agreement_exactly_at_the_threshold_is_consistent() -> None:
    assert decide_verdict("Yes.", 4 / 5, [], SETTINGS) == "consistent"
    # Float noise around the threshold does not flip the verdict.
    noisy = ConsistencySettings(consistent_agreement=0.1 + 0.2)  # 0.30000000000000004
    assert decide_verdict("Yes.", 3 / 10, [], noisy) == "consistent"


def test_agreement_below_the_threshold_is_inconsistent() -> None:
    assert decide_verdict("Yes.", 3 / 5, [], SETTINGS) == "inconsistent"
    assert decide_verdict("Yes.", 0.79, [], SETTINGS) == "inconsistent"


def test_polarity_contradiction_but_not_divergent_gives_contradiction() -> None:
    assert decide_verdict("Yes.", 1.0, [contradiction("polarity")], SETTINGS) == "contradiction"
    assert decide_verdict("Yes.", 0.8, [contradiction("quantity")], SETTINGS) == "contradiction"
    assert decide_verdict("Yes.", 0.8, [contradiction("divergent")], SETTINGS) == "consistent"
    assert decide_verdict("Yes.", 0.6, [contradiction("divergent")], SETTINGS) == "inconsistent"


# ------------------------------------------------------------------ ConsistencyChecker
AGREE = [
    "Send it to the HR office.",
    "Send the form to HR.",
    "Hand it to the HR office.",
    "The canteen opens at noon.",
    "Give it to HR.",
]
AGREE_VECTORS = {
    AGREE[0]: [1.0, 0.0, 0.0],
    AGREE[1]: [0.98, 0.2, 0.0],
    AGREE[2]: [0.97, 0.0, 0.24],
    AGREE[3]: [0.0, 0.0, 1.0],
    AGREE[4]: [0.99, 0.1, 0.1],
}


def test_four_of_five_agreeing_is_consistent_with_a_divergent_pair(make_embedder) -> None:
    checker = ConsistencyChecker(make_embedder(AGREE_VECTORS))
    result = checker.check(WHERE, samples_of(AGREE))
    assert result.verdict == "consistent"
    assert result.agreement == pytest.approx(0.8)
    assert result.answer == AGREE[0]  # the greedy answer represents the winning cluster
    assert [s.cluster for s in result.samples] == [0, 0, 0, 1, 0]
    assert [(c.id, c.size, c.members) for c in result.clusters] == [(0, 4, [0, 1, 2, 4]), (1, 1, [3])]
    assert result.semantic_entropy == pytest.approx(semantic_entropy([4, 1]))
    assert len(result.contradictions) == 1
    (c,) = result.contradictions
    assert c.kind == "divergent"
    # a and b index samples: the two clusters' representatives.
    assert (c.a, c.b) == (0, 3)
    assert result.samples[c.a].text == result.clusters[0].representative
    assert result.samples[c.b].text == result.clusters[1].representative
    assert c.score == pytest.approx(1.0)  # cosine 0 between the two representatives
    assert AGREE[0] in c.explanation and AGREE[3] in c.explanation
    assert result.samples[0].greedy and result.samples[0].seed is None
    assert [s.seed for s in result.samples[1:]] == [101, 102, 103, 104]


def test_divergent_pair_points_at_the_medoid_when_greedy_is_in_the_minority(make_embedder) -> None:
    texts = ["The canteen opens at noon.", AGREE[1], AGREE[0], AGREE[4], AGREE[2]]
    checker = ConsistencyChecker(make_embedder(AGREE_VECTORS))
    result = checker.check(WHERE, samples_of(texts))
    assert [s.cluster for s in result.samples] == [0, 1, 1, 1, 1]
    assert result.verdict == "consistent" and result.agreement == pytest.approx(0.8)
    # Greedy (sample 0) is not in the winning cluster, so the medoid represents it: sample 3
    # ("Give it to HR.", [0.99, 0.1, 0.1]) has the highest mean cosine to the other members.
    sim = np.array([[np.dot(AGREE_VECTORS[x], AGREE_VECTORS[y]) for y in texts] for x in texts])
    sim /= np.sqrt(np.outer(np.diag(sim), np.diag(sim)))
    means = {m: np.mean([sim[m, o] for o in (1, 2, 3, 4) if o != m]) for m in (1, 2, 3, 4)}
    assert max(means, key=means.get) == 3
    assert result.answer == texts[3]
    (c,) = result.contradictions
    assert (c.kind, c.a, c.b) == ("divergent", 0, 3)


def test_three_of_five_is_inconsistent(make_embedder) -> None:
    vectors = {
        "Send it to HR.": [1.0, 0.0, 0.0],
        "Send it to Finance.": [0.0, 1.0, 0.0],
        "Send it to Legal.": [0.0, 0.0, 1.0],
    }
    texts = ["Send it to HR.", "Send it to HR.", "Send it to Finance.", "Send it to HR.", "Send it to Legal."]
    # Not a which/where/who question, so only clustering speaks (no entity detector).
    result = ConsistencyChecker(make_embedder(vectors)).check("Tell me about the form.", samples_of(texts))
    assert result.verdict == "inconsistent"
    assert result.agreement == pytest.approx(0.6)
    assert result.answer == "Send it to HR."
    assert sorted((c.a, c.b) for c in result.contradictions) == [(0, 2), (0, 4), (2, 4)]
    assert {c.kind for c in result.contradictions} == {"divergent"}


@pytest.mark.parametrize("threshold", [0.8, 0.0, -1.0])
def test_empty_answers_never_cluster_with_non_empty(threshold: float, make_embedder) -> None:
    # The FakeEmbedder maps "" to the zero vector (cosine 0 to everything): at threshold 0 or -1
    # only the explicit rule keeps empty answers apart.
    texts = ["", "Send it to HR.", "Send it to HR.", "   ", "Send it to HR."]
    checker = ConsistencyChecker(make_embedder(), ConsistencySettings(similarity_threshold=threshold))
    result = checker.check(WHERE, samples_of(texts))
    assert [s.cluster for s in result.samples] == [0, 1, 1, 0, 1]
    assert result.answer == "Send it to HR."
    assert result.agreement == pytest.approx(0.6)
    assert result.verdict == "inconsistent"


def test_all_empty_answers_abstain(make_embedder) -> None:
    result = ConsistencyChecker(make_embedder()).check(WHERE, samples_of(["", "  ", "\n"]))
    assert result.verdict == "abstain"
    assert result.answer == ""
    assert [c.size for c in result.clusters] == [3]
    assert result.confidence == 0.0


def test_no_samples_abstain(make_embedder) -> None:
    result = ConsistencyChecker(make_embedder()).check(WHERE, [])
    assert result.verdict == "abstain" and result.samples == [] and result.clusters == []


def test_a_warning_when_no_retrieved_sentence_is_about_the_question(make_embedder) -> None:
    texts = ["Send it to HR.", "Send it to HR.", "Send it to HR."]
    checker = ConsistencyChecker(make_embedder())
    question = "Where do I send the signed expense form?"  # content terms: send, signed, expense, form
    about = ["Send the signed expense form to HR within a week."]
    off = ["The canteen opens at noon. Parking is free on Sundays."]
    half = ["Send the form to HR. Expenses are paid monthly."]  # best sentence: send, form (2 of 4)
    assert not [w for w in checker.check(question, samples_of(texts), about).warnings if "question's terms" in w]
    (warning,) = [w for w in checker.check(question, samples_of(texts), off).warnings if "question's terms" in w]
    assert warning.startswith("no retrieved sentence holds any of the question's terms")
    result = checker.check(question, samples_of(texts), half)
    assert result.grounding.coverage == 0.5  # at the threshold: no warning
    assert not [w for w in result.warnings if "question's terms" in w]
    # without context there is nothing to read, so no warning
    assert not [w for w in checker.check(question, samples_of(texts)).warnings if "question's terms" in w]
    # a Chinese question is read by character bigrams, whose phrasing rarely matches the page: no warning
    zh = checker.check("每月几号发工资？", samples_of(["每月25日发工资。"] * 3), ["工资于每月25日发放到员工账户。"])
    assert zh.grounding.coverage < 0.5 and not [w for w in zh.warnings if "question's terms" in w]
