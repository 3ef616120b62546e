"""Answers that state the same key facts are one cluster (issue 20, item 8); contradictions stay apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragguard.core.consistency import ConsistencyChecker
from ragguard.core.detectors import detect, key_facts, same_fact_pairs
from ragguard.core.types import Sample

DATA = Path(__file__).parent / "data"
LEAVE_Q = "How many days of annual leave do I get?"
CONTEXT = ["Full-time employees receive 25 working days of paid annual leave."]
SHORT = ["You get 25 days.", "You get 25 days of paid leave.", "25 working days per year."]


def samples_of(texts: list[str]) -> list[Sample]:
    return [Sample(text=t, seed=None if i == 0 else 100 + i, greedy=i == 0) for i, t in enumerate(texts)]


def test_short_answers_with_the_same_quantity_are_one_cluster(make_embedder) -> None:
    # Far apart in embedding space (pairwise cosine 0.5 < 0.8), as the issue measured with MiniLM.
    vectors = {SHORT[0]: [1.0, 0.0, 0.0], SHORT[1]: [0.5, 0.866, 0.0], SHORT[2]: [0.5, 0.289, 0.816],
               CONTEXT[0]: [0.58, 0.58, 0.58]}
    result = ConsistencyChecker(make_embedder(vectors)).check(LEAVE_Q, samples_of(SHORT), CONTEXT)
    assert result.verdict == "consistent"
    assert result.agreement == pytest.approx(1.0)
    assert [s.cluster for s in result.samples] == [0, 0, 0]


def test_different_quantities_or_an_extra_fact_stay_apart(make_embedder) -> None:
    texts = ["You get 25 days.", "You get 30 days.", "25 days, plus 5 days of carry-over."]
    vectors = {texts[0]: [1.0, 0.0, 0.0], texts[1]: [0.0, 1.0, 0.0], texts[2]: [0.0, 0.0, 1.0]}
    result = ConsistencyChecker(make_embedder(vectors)).check(LEAVE_Q, samples_of(texts))
    assert len(result.clusters) == 3
    assert "quantity" in {c.kind for c in result.contradictions}


def test_key_facts_leave_out_what_the_question_says_and_keep_bare_numbers() -> None:
    q = "Can I cancel within the first 14 days?"
    assert key_facts("You can cancel within the first 14 days.", q) == frozenset()  # nothing beyond the question
    assert key_facts("It is a nice plan.", q) == frozenset()
    assert key_facts("Up to 100 Mbps.") != key_facts("Up to 50 Mbps.")  # no unit read, the numbers still differ
    assert same_fact_pairs(["Probation lasts three months.", "The probation period is 3 months.", ""]) == [(0, 1)]


def _pairs() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(DATA.glob("contradiction_pairs*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def test_on_the_labelled_pairs_facts_merge_paraphrases_and_no_contradiction() -> None:
    merged: dict[str, int] = {}
    for p in _pairs():
        texts = [p["a"], p["b"]]
        if same_fact_pairs(texts, p["question"]) and not detect(p["a"], p["b"], p["question"]):
            merged[p["label"]] = merged.get(p["label"], 0) + 1
    # bench/fact_agreement.py prints the full table (with --embedder: which were split before).
    assert merged.get("paraphrase", 0) >= 30  # 34 of 140 at this writing
    assert {k: v for k, v in merged.items() if k != "paraphrase"} == {}
