"""bench/trust.py's data and figures: the labelled sets load, labels follow the audit's rule, intervals bracket."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_module(name: str):  # type: ignore[no-untyped-def]
    """Load bench/NAME.py; bench/ is on the path while it loads, as calibration_design imports trust by name."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


@pytest.fixture(scope="module")
def trust():  # type: ignore[no-untyped-def]
    return bench_module("trust")


@pytest.fixture(scope="module")
def design():  # type: ignore[no-untyped-def]
    return bench_module("calibration_design")


@pytest.mark.parametrize(("name", "size"), [("handbook", 200), ("handbook3", 200), ("devref", 200), ("policy", 150)])
def test_every_set_loads_and_the_measure_only_sets_have_no_dev_split(trust, name, size) -> None:  # type: ignore[no-untyped-def]
    sizes = {n: len(trust.load_set(n, "all", None)) for n in ("faq", "reference", name)}
    assert sizes["faq"] >= 300 and sizes["reference"] >= 100 and sizes[name] >= size
    handbook = trust.load_set(name, "all", None)
    assert {r["split"] for r in handbook} == {"test"} and trust.load_set(name, "dev", None) == []
    assert len({r["question"] for r in handbook}) == len(handbook)
    # The index is built from exactly the pages the questions were written from.
    assert trust.SETS[name]["include"] == sorted({r["source"] for r in handbook})
    for row in handbook:
        assert row["answers"][0] == row["reference"] and trust.variants(row)[0] == row["reference"]
        assert len(row["reference"].split()) <= 6


@pytest.mark.parametrize(("name", "size"), [("reference2", 224), ("handbook2", 240), ("handbook4", 198),
                                            ("handbook5", 129), ("kernel", 125), ("maintguide", 164),
                                            ("installguide", 142), ("securing", 169),
                                            ("debmake", 163)])
def test_the_later_sets_split_half_and_half_by_their_written_rule(trust, name, size) -> None:  # type: ignore[no-untyped-def]
    rows = trust.load_set(name, "all", None)
    assert len(rows) == size and len({r["question"] for r in rows}) == len(rows)
    ids = [r["id"] for r in rows]
    dev = set(random.Random(0).sample(ids, round(0.5 * len(ids))))  # bench/data/README.md
    assert [r["id"] for r in trust.load_set(name, "dev", None)] == [i for i in ids if i in dev]
    assert {r["split"] for r in rows} == {"dev", "test"}
    assert set(trust.SETS[name]["include"]) >= {r["source"] for r in rows}
    for row in rows:
        assert row["answers"][0] == row["reference"] and len(row["reference"].split()) <= 6


def test_sets_pool_with_a_plus_and_unknown_names_are_refused(trust) -> None:  # type: ignore[no-untyped-def]
    import argparse

    assert trust.set_names("reference2+handbook2") == "reference2+handbook2"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown set 'handbok'"):
        trust.set_names("handbook+handbok")
    prefixes = {name: {r["id"].rsplit("-", 1)[0] for r in trust.load_set(name, "all", None)}
                for name in trust.SETS if name != "zh"}
    assert all(len(p) == 1 for p in prefixes.values()) and len(set.union(*prefixes.values())) == len(prefixes)


def test_labels_use_every_accepted_variant(trust) -> None:  # type: ignore[no-untyped-def]
    row = {"question": "Which file lists the APT sources?", "reference": "/etc/apt/sources.list",
           "answers": ["/etc/apt/sources.list", "sources.list"]}
    assert trust.is_right("APT reads sources.list.", row, {})
    assert not trust.is_right("APT reads preferences.", row, {})


def test_calibration_design_rule_skips_ineligible_candidates(design) -> None:  # type: ignore[no-untyped-def]
    shipped, a, b = design.SHIPPED, ("a", "logistic"), ("b", "mean")
    # The best score is not eligible: the best eligible one wins, and the shipped one stays within 0.01 of it.
    assert design.wins([0.8, 0.7, 0.9], [0.75, 0.7, 0.95]) == 1  # ties are not wins
    assert design.choose({shipped: 0.80, a: 0.90, b: 0.805}, {a}) == (b, True)
    assert design.choose({shipped: 0.80, a: 0.90, b: 0.83}, {a}) == (b, False)
    # An ineligible shipped candidate never stays, however close it is.
    assert design.choose({shipped: 0.83, b: 0.83}, {shipped}) == (b, False)
    with pytest.raises(SystemExit, match="no candidate is eligible"):
        design.choose({a: 0.9}, {a})


def test_rescoring_keeps_an_abstention_that_has_no_samples(trust) -> None:  # type: ignore[no-untyped-def]
    source = {"doc_id": "d", "chunk_id": "d#1", "text": "The grub-pc package installs GRUB for BIOS machines.",
              "score": 0.7}
    abstained = {"id": "a", "question": "Which package installs GRUB?", "samples": [], "sources": [source],
                 "answer": "", "verdict": "abstain",
                 "warnings": ["the index has nothing on this: the best passage scores 0.20"]}
    answered = {**abstained, "id": "b", "answer": "grub-pc", "verdict": "consistent", "warnings": [],
                "samples": [{"text": "grub-pc", "seed": None, "greedy": True},
                            {"text": "grub-pc", "seed": 1, "greedy": False}]}
    out = trust.rescore({"a": abstained, "b": answered}, None)
    assert out["a"] == abstained  # the audit's own reason stays, not "no samples to check"
    assert out["b"]["answer"] == "grub-pc" and [c["size"] for c in out["b"]["clusters"]] == [2]


def test_the_shipped_file_is_the_candidate_the_rule_names(design) -> None:  # type: ignore[no-untyped-def]
    shipped = json.loads((ROOT / "ragguard" / "calibrations" / "embedded.json").read_text())
    label, method = design.SHIPPED
    assert shipped["method"] == method and shipped["features"] == design.CANDIDATES[label]
    assert shipped["data"]["fitted_on"] == [f"{name}:dev" for name in design.DEV_SETS]  # every dev split, no test


def test_cross_set_counts_the_right_answers_among_the_most_confident(trust) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)

    def split(prefix: str, n: int) -> tuple[dict, list]:
        records, rows = {}, []
        for i in range(n):
            right = i % 4 == 0  # a quarter right
            rid = f"{prefix}{i}"
            rows.append({"id": rid, "question": "Which file lists the APT sources?", "reference": "sources.list"})
            overlap = (0.6 if right else 0.1) + rng.random() * 0.3  # right answers are the better grounded ones
            records[rid] = {"id": rid, "answer": "APT reads sources.list." if right else "APT reads preferences.",
                            "samples": [], "grounding": {"overlap": overlap, "anchored": overlap}}
        return records, rows

    cross = trust.cross_set([split("fit", 80)], split("test", 40), "mean", ["passage_overlap", "anchored_support"])
    points = {round(p["coverage"] * 100): p for p in cross["test_most_confident"]}
    assert [points[c]["kept"] for c in (10, 20, 30, 50, 100)] == [4, 8, 12, 20, 40]
    # every right answer outranks every wrong one here: the top quarter is all right, the whole set a quarter
    assert [points[c]["right"] for c in (10, 20, 30, 50, 100)] == [4, 8, 10, 10, 10]
    json.dumps(cross["test_most_confident"])
