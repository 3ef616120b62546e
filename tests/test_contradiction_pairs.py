"""Regression floor on tests/data/contradiction_pairs.jsonl (96 labelled pairs, EN + ZH).

bench/contradictions.py prints the full table; this test keeps precision and
recall of the polarity and quantity detectors at or above 0.9 per language
and no finding on paraphrases. The set was used while developing the
detectors, so it is a development set, not a held-out one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragguard.contradictions import detect

DATA = Path(__file__).parent / "data" / "contradiction_pairs.jsonl"
PAIRS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_set_is_balanced() -> None:
    assert len(PAIRS) >= 80
    assert sum(p["lang"] == "en" for p in PAIRS) == sum(p["lang"] == "zh" for p in PAIRS)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("kind", ["polarity", "quantity"])
def test_precision_and_recall_floor(kind: str, lang: str) -> None:
    rows = [p for p in PAIRS if p["lang"] == lang]
    predicted = [any(f.kind == kind for f in detect(p["a"], p["b"], p["question"])) for p in rows]
    actual = [p["label"] == kind for p in rows]
    tp = sum(a and b for a, b in zip(predicted, actual, strict=True))
    precision = tp / max(1, sum(predicted))
    recall = tp / max(1, sum(actual))
    assert precision >= 0.9 and recall >= 0.9, (kind, lang, precision, recall)


def test_paraphrases_are_never_flagged() -> None:
    flagged = [p["id"] for p in PAIRS if p["label"] == "paraphrase" and detect(p["a"], p["b"], p["question"])]
    assert flagged == []
