"""Regression floors on the labelled answer pairs of tests/data (EN + ZH).

bench/contradictions.py prints the full tables. The sets, in the order they were written:

* ``contradiction_pairs.jsonl`` (96 pairs): written with the detectors; a development set.
* ``contradiction_pairs_dev2.jsonl`` (64) and ``contradiction_pairs_dev3.jsonl`` (64): written
  by people who had not seen the detectors or the other sets. Each was first measured untouched
  (dev2: any-contradiction precision 0.93, recall 0.65; dev3: 0.89 / 0.60), then the detectors
  were generalised while looking at their misses, so they are development sets now too.
* ``contradiction_pairs_heldout.jsonl``: written next, by someone who had seen none of this,
  and not used to change the detectors directly; bench/contradictions.py reports it. Its misses
  were described in the README (units like kg and GB, verbs), so it is no longer blind.
* ``contradiction_pairs_dev4.jsonl`` (64): written blind by a helper who had not seen the
  detectors or the other sets; measured untouched (precision 0.84, recall 0.53), then the
  detectors were generalised while looking at its misses (0.94 / 0.82).
* ``contradiction_pairs_heldout2.jsonl`` (64): written blind at the same time as dev4 by another
  helper; measured before (0.93 / 0.62) and after (0.93 / 0.68) that change and never read
  pair by pair; bench/contradictions.py reports it.
* ``contradiction_pairs_dev5.jsonl`` (64) and ``contradiction_pairs_heldout3.jsonl`` (64): a
  second such round. dev5 measured untouched 0.92 / 0.55 (at the code of the session's start;
  0.93 / 0.65 after the dev4 round), then generalised on (1.00 / 0.97); heldout3 measured
  1.00 / 0.65 before and 0.96 / 0.65 after that, never read pair by pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragguard.core.detectors import detect
from ragguard.core.types import ENTITY, POLARITY, QUANTITY

DATA = Path(__file__).parent / "data"


def _load(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


PAIRS = _load("contradiction_pairs.jsonl")
LATER = _load("contradiction_pairs_dev2.jsonl") + _load("contradiction_pairs_dev3.jsonl")
DEV4 = _load("contradiction_pairs_dev4.jsonl")
DEV5 = _load("contradiction_pairs_dev5.jsonl")
KINDS = (POLARITY, QUANTITY, ENTITY)


def test_the_sets_are_balanced() -> None:
    assert len(PAIRS) >= 80 and len(LATER) == 128
    for rows in (PAIRS, LATER):
        assert sum(p["lang"] == "en" for p in rows) == sum(p["lang"] == "zh" for p in rows)
    ids = [p["id"] for p in PAIRS + LATER]
    assert len(ids) == len(set(ids))


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
    flagged = [p["id"] for p in PAIRS + LATER if p["label"] == "paraphrase" and detect(p["a"], p["b"], p["question"])]
    assert flagged == []


def _any_contradiction(rows: list[dict[str, str]]) -> tuple[float, float, list[str]]:
    """Precision and recall of "some detector fires" on ``rows``, and the paraphrases flagged."""
    predicted = [bool(detect(p["a"], p["b"], p["question"])) for p in rows]
    actual = [p["label"] in KINDS for p in rows]
    tp = sum(a and b for a, b in zip(predicted, actual, strict=True))
    flagged = [p["id"] for p, hit in zip(rows, predicted, strict=True) if hit and p["label"] == "paraphrase"]
    return tp / max(1, sum(predicted)), tp / max(1, sum(actual)), flagged


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_later_sets_any_contradiction_floor(lang: str) -> None:
    # Measured when this test was written: en P 1.00 R 0.82, zh P 1.00 R 0.93 (misses need NLI:
    # non-yes/no questions whose answers disagree only through their verbs, roles without names).
    precision, recall, _ = _any_contradiction([p for p in LATER if p["lang"] == lang])
    assert precision >= 0.95 and recall >= 0.8


def test_dev4_floor() -> None:
    # Measured when written: any contradiction en P 0.94 R 0.75, zh P 0.95 R 0.90 (after the dev5
    # round: en 0.94 / 0.85, zh 0.95 / 0.90). At most one paraphrase may be flagged: today one is,
    # a known false positive ("专家号不接受现场挂号，请提前预约" negates walk-ins while saying yes to
    # booking ahead), so a fix that clears it passes too.
    assert len(DEV4) == 64 and sum(p["lang"] == "en" for p in DEV4) == 32
    precision, recall, flagged = _any_contradiction(DEV4)
    assert precision >= 0.9 and recall >= 0.8 and len(flagged) <= 1, flagged


def test_dev5_floor() -> None:
    # Measured when written: any contradiction en P 1.00 R 0.95, zh P 1.00 R 1.00; no paraphrase flagged.
    assert len(DEV5) == 64 and sum(p["lang"] == "en" for p in DEV5) == 32
    precision, recall, flagged = _any_contradiction(DEV5)
    assert precision >= 0.95 and recall >= 0.9 and flagged == []
