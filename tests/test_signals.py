"""Token-probability signals on hand-written numbers, and how they travel into samples and reports."""

from __future__ import annotations

import json
import math

import pytest
from fakes import WordEmbedder

from ragguard.core.consistency import ConsistencyChecker, semantic_entropy
from ragguard.core.signals import logprob_summary, weighted_semantic_entropy
from ragguard.core.types import Report, Sample


def test_logprob_summary_gives_mean_min_and_count() -> None:
    assert logprob_summary([-0.5, -1.0, -2.25]) == {"logprob_mean": -1.25, "logprob_min": -2.25, "tokens": 3}
    assert logprob_summary((-0.1234567,)) == {"logprob_mean": -0.1235, "logprob_min": -0.1235, "tokens": 1}


@pytest.mark.parametrize("values", [None, [float("nan")], [-1.0, float("-inf")], [-1.0, "x"], [True]])
def test_logprob_summary_of_missing_or_unusable_values_is_all_none(values: object) -> None:
    assert logprob_summary(values) == {"logprob_mean": None, "logprob_min": None, "tokens": None}  # type: ignore[arg-type]


def test_logprob_summary_of_no_tokens_and_of_near_certain_tokens() -> None:
    assert logprob_summary([]) == {"logprob_mean": None, "logprob_min": None, "tokens": 0}
    near = logprob_summary([-0.00001, -0.00002])
    assert json.dumps(near) == '{"logprob_mean": 0.0, "logprob_min": 0.0, "tokens": 2}'  # never "-0.0"


def test_weighted_entropy_weighs_clusters_by_probability_mass() -> None:
    labels = [0, 0, 1]
    # Members of cluster 0 have probability 0.9 each, the lone answer of cluster 1 has 0.2:
    # masses 1.8 and 0.2, shares 0.9 and 0.1.
    means = [math.log(0.9), math.log(0.9), math.log(0.2)]
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(3)
    assert weighted_semantic_entropy(labels, means) == pytest.approx(expected, abs=1e-12)
    # Equal probabilities: the count-based entropy.
    assert weighted_semantic_entropy(labels, [-1.0, -1.0, -1.0]) == pytest.approx(semantic_entropy([2, 1]))
    # The lone answer is as probable as the other two together: even masses, more entropy than the counts say.
    even = weighted_semantic_entropy(labels, [math.log(0.25), math.log(0.25), math.log(0.5)])
    assert even == pytest.approx(math.log(2) / math.log(3)) and even > semantic_entropy([2, 1])


def test_weighted_entropy_limits_and_missing_values() -> None:
    assert weighted_semantic_entropy([0, 0, 0], [-0.1, -3.0, -7.0]) == 0.0
    assert weighted_semantic_entropy([0, 1, 2], [-2.0, -2.0, -2.0]) == pytest.approx(1.0)
    assert weighted_semantic_entropy([0], [-1.0]) == 0.0
    assert weighted_semantic_entropy([0, 1], [-900.0, -900.0]) == pytest.approx(1.0)  # exp(-900) alone underflows
    assert weighted_semantic_entropy([0, 1], [-1.0, None]) is None
    assert weighted_semantic_entropy([0, 1], [-1.0, float("nan")]) is None
    assert weighted_semantic_entropy([0, 1], [-1.0]) is None


def test_sample_and_report_dicts_carry_the_signals_as_numbers_or_null() -> None:
    with_lp = Sample("Yes.", None, True, 0, logprob_mean=-0.12345678, logprob_min=-2.5, tokens=3)
    without = Sample("No.", 5, False, 1)
    assert with_lp.to_dict() == {"text": "Yes.", "seed": None, "greedy": True, "cluster": 0,
                                 "logprob_mean": -0.123457, "logprob_min": -2.5, "tokens": 3, "truncated": False}
    assert without.to_dict()["logprob_mean"] is None and without.to_dict()["tokens"] is None
    assert Sample("x", 1, False, logprob_mean=float("nan")).to_dict()["logprob_mean"] is None
    report = Report("q", "Yes.", "consistent", 1.0, 0.0, [with_lp], [], [])
    assert report.to_dict()["semantic_entropy_weighted"] is None
    report.semantic_entropy_weighted = 0.25
    assert report.to_dict()["semantic_entropy_weighted"] == 0.25
    assert "NaN" not in json.dumps(Report("q", "", "abstain", 0.0, 0.0, [without], [], [],
                                          semantic_entropy_weighted=float("nan")).to_dict())


def test_checker_keeps_each_samples_logprobs_and_weighs_its_entropy() -> None:
    texts = ["Twenty days of leave.", "Twenty days of leave.", "Ten days of leave per year, prorated."]
    summaries = [logprob_summary([-0.1, -0.2]), logprob_summary([-0.1, -0.3]), logprob_summary([-3.0])]
    samples = [Sample(t, s, s is None, **lp) for t, s, lp in zip(texts, [None, 1, 2], summaries, strict=True)]
    result = ConsistencyChecker(WordEmbedder()).check("How many days of leave?", samples)
    assert [(s.logprob_mean, s.tokens) for s in result.samples] == [(-0.15, 2), (-0.2, 2), (-3.0, 1)]
    assert len(result.clusters) == 2
    labels = [s.cluster for s in result.samples]
    assert result.semantic_entropy_weighted == weighted_semantic_entropy(labels, [-0.15, -0.2, -3.0])
    assert result.semantic_entropy_weighted < result.semantic_entropy  # the odd answer out is improbable
    partial = [*samples[:2], Sample(texts[2], 2, False)]
    assert ConsistencyChecker(WordEmbedder()).check("How many days of leave?", partial).semantic_entropy_weighted is None
