"""Calibration figures of an audit: reliability bins, ECE, Brier score, accuracy against coverage, and their diff.

Expected values are worked out by hand in the comments (or by scikit-learn and
numpy), never by the code under test.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ragguard.apps.audit_summary import calibration_summary, diff_audits, summarize
from ragguard.core.metrics import (
    _ece_rows,
    accuracy_at_coverage,
    brier_score,
    ece_by_chance,
    expected_calibration_error,
    reliability,
)

# 20 labelled answers in four confidence groups of five, right (True) or wrong in this record order:
#   0.95: F T T T T -> bin 9, accuracy 0.8, |0.8 - 0.95| = 0.15
#   0.75: T T T F F -> bin 7, accuracy 0.6, |0.6 - 0.75| = 0.15
#   0.55: T T T F F -> bin 5, accuracy 0.6, |0.6 - 0.55| = 0.05
#   0.15: F F F F F -> bin 1, accuracy 0.0, |0.0 - 0.15| = 0.15
# ECE = (5*0.15 + 5*0.15 + 5*0.05 + 5*0.15) / 20 = 2.5 / 20 = 0.125
# Brier = (4*0.05^2 + 0.95^2  +  3*0.25^2 + 2*0.75^2  +  3*0.45^2 + 2*0.55^2  +  5*0.15^2) / 20
#       = (0.9125 + 1.3125 + 1.2125 + 0.1125) / 20 = 3.55 / 20 = 0.1775
GROUPS = [(0.95, [False, True, True, True, True]), (0.75, [True, True, True, False, False]),
          (0.55, [True, True, True, False, False]), (0.15, [False] * 5)]
# Accuracy of the k most confident (ties in record order), k = ceil(coverage * 20) = 2, 4, ..., 20:
#   k=2: F T -> 1/2; k=4: 3/4; k=6: 4 + T -> 5/6; k=8: 7/8; k=10: 7/10; k=12: 7 + T T -> 9/12;
#   k=14: 10/14; k=16: 10/16; k=18: 10/18; k=20: 10/20
COVERAGE_ACCURACY = [1 / 2, 3 / 4, 5 / 6, 7 / 8, 7 / 10, 9 / 12, 10 / 14, 10 / 16, 10 / 18, 10 / 20]
COVERAGE_THRESHOLD = [0.95, 0.95, 0.75, 0.75, 0.75, 0.55, 0.55, 0.15, 0.15, 0.15]


def labelled_records() -> list[dict]:
    records = []
    for conf, outcomes in GROUPS:
        for right in outcomes:
            n = len(records)
            # wrong answers alternate between the two wrong labels: both count as wrong
            label = "match" if right else ("mismatch" if n % 2 else "contradicts")
            records.append({"status": "ok", "id": f"q{n:02d}", "line": n + 1, "verdict": "consistent",
                            "confidence": conf, "agreement": conf, "reference": "r", "reference_match": label})
    return records


def noise() -> list[dict]:
    """Records the figures must ignore: no reference, an error, an invalid line, a confidence that is not a number."""
    return [
        {"status": "ok", "id": "nolabel", "line": 90, "verdict": "consistent", "confidence": 0.05, "reference_match": None},
        {"status": "error", "id": "err", "line": 91, "error": "boom", "reference_match": "match", "confidence": 0.05},
        {"status": "invalid", "id": "line-92", "line": 92, "error": "bad json"},
        {"status": "ok", "id": "nan", "line": 93, "verdict": "consistent", "confidence": float("nan"),
         "reference_match": "match"},
    ]


def test_figures_on_twenty_hand_made_records() -> None:
    cal = summarize(labelled_records() + noise())["calibration"]
    assert cal["labelled"] == 20
    assert cal["ece"] == pytest.approx(0.125, abs=1e-6)
    assert cal["brier"] == pytest.approx(0.1775, abs=1e-6)
    # the summary carries the noise floor of its own ECE, computed on the same 20 confidences
    chance = ece_by_chance([r["confidence"] for r in labelled_records()])
    assert cal["ece_by_chance"] == {k: pytest.approx(v, abs=1e-6) for k, v in chance.items()}
    assert 0 < cal["ece_by_chance"]["median"] < cal["ece_by_chance"]["p95"]
    bins = cal["bins"]
    assert [b["count"] for b in bins] == [0, 5, 0, 0, 0, 5, 0, 5, 0, 5]
    assert [(b["lower"], b["upper"]) for b in bins] == [(i / 10, (i + 1) / 10) for i in range(10)]
    full = {i: b for i, b in enumerate(bins) if b["count"]}
    assert sorted(full) == [1, 5, 7, 9]
    assert [full[i]["mean_confidence"] for i in (1, 5, 7, 9)] == pytest.approx([0.15, 0.55, 0.75, 0.95])
    assert [full[i]["accuracy"] for i in (1, 5, 7, 9)] == pytest.approx([0.0, 0.6, 0.6, 0.8])
    assert all(b["mean_confidence"] is None and b["accuracy"] is None for b in bins if not b["count"])
    cov = cal["coverage"]
    assert [p["coverage"] for p in cov] == pytest.approx([i / 10 for i in range(1, 11)])
    assert [p["kept"] for p in cov] == list(range(2, 21, 2))
    assert [p["accuracy"] for p in cov] == pytest.approx(COVERAGE_ACCURACY, abs=1e-6)
    assert [p["threshold"] for p in cov] == pytest.approx(COVERAGE_THRESHOLD)


def test_summary_json_holds_no_nan_and_no_figures_without_labels() -> None:
    summary = summarize(labelled_records() + noise())
    json.dumps(summary, allow_nan=False)  # raises on NaN or infinity anywhere
    unlabelled = [r for r in noise() if r["id"] != "nan"] + [{**r, "reference_match": None} for r in labelled_records()]
    assert summarize(unlabelled)["calibration"] is None
    assert summarize([])["calibration"] is None
    assert calibration_summary(noise()) is None  # the only labelled ok record has a NaN confidence
    json.dumps(summarize(unlabelled), allow_nan=False)


def test_bins_are_closed_on_the_left_and_one_falls_in_the_last() -> None:
    table = reliability([0.0, 0.1, 0.0999, 0.5, 1.0, 1.0], [True, False, True, True, False, True])
    counts = [b["count"] for b in table]
    assert counts == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert table[9]["accuracy"] == 0.5 and table[0]["mean_confidence"] == pytest.approx(0.0999 / 2)
    # 0.1 alone in bin 1, wrong: |0 - 0.1|; bin 0: {0.0 T, 0.0999 T} |1 - 0.04995|; bin 5: |1 - 0.5|; bin 9: |0.5 - 1|
    expected = (1 * 0.1 + 2 * (1 - 0.04995) + 1 * 0.5 + 2 * 0.5) / 6
    assert expected_calibration_error([0.0, 0.1, 0.0999, 0.5, 1.0, 1.0], [True, False, True, True, False, True]) == (
        pytest.approx(expected))


def test_metric_helpers_on_empty_input_and_bad_values() -> None:
    assert expected_calibration_error([], []) is None
    assert brier_score([], []) is None
    assert accuracy_at_coverage([], []) == []
    assert all(b["count"] == 0 for b in reliability([], []))
    with pytest.raises(ValueError, match="nan"):
        brier_score([float("nan")], [True])
    with pytest.raises(ValueError):
        reliability([0.5, 0.6], [True])  # lengths differ


def test_metrics_agree_with_scikit_learn_and_numpy() -> None:
    np = pytest.importorskip("numpy")
    sk_metrics = pytest.importorskip("sklearn.metrics")
    sk_calibration = pytest.importorskip("sklearn.calibration")
    rng = random.Random(7)
    conf = [rng.random() for _ in range(300)]
    right = [rng.random() < c ** 0.7 for c in conf]
    assert brier_score(conf, right) == pytest.approx(sk_metrics.brier_score_loss(right, conf))
    # Random values never sit exactly on a bin edge, so sklearn's right-closed bins are the same bins here.
    prob_true, prob_pred = sk_calibration.calibration_curve(right, conf, n_bins=10, strategy="uniform")
    table = [b for b in reliability(conf, right) if b["count"]]
    assert [b["accuracy"] for b in table] == pytest.approx(list(prob_true))
    assert [b["mean_confidence"] for b in table] == pytest.approx(list(prob_pred))
    ids = np.minimum((np.asarray(conf) * 10).astype(int), 9)
    counts = np.bincount(ids, minlength=10)[np.bincount(ids, minlength=10) > 0]
    ece = float(np.sum(counts * np.abs(prob_true - prob_pred)) / len(conf))
    assert expected_calibration_error(conf, right) == pytest.approx(ece)
    order = np.argsort(-np.asarray(conf), kind="stable")
    for point in accuracy_at_coverage(conf, right):
        kept = math.ceil(round(point["coverage"] * len(conf), 9))
        assert point["kept"] == kept
        assert point["accuracy"] == pytest.approx(float(np.mean(np.asarray(right)[order[:kept]])))
        assert point["threshold"] == conf[order[kept - 1]]


def write_audit(folder: Path, records: list[dict], summary: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def improved_records() -> list[dict]:
    """The 20 records with each confidence replaced by its group's accuracy: perfectly calibrated bins.

    Accuracies 0.8, 0.6, 0.6, 0.0 put the groups in bins 8, 6, 6, 0; bin 6 holds 10 answers at 0.6 with
    accuracy 6/10: ECE 0. Brier = (4*0.2^2 + 0.8^2 + 6*0.4^2 + 4*0.6^2 + 5*0) / 20 = (0.16+0.64+0.96+1.44)/20 = 0.16.
    Ranked: 0.8 group (F T T T T), then the two 0.6 groups in record order (T T T F F, T T T F F), then 0.0:
    accuracy at 50% (10 kept) = (4 + 3) / 10 = 0.7; at 80% (16 kept) = (4 + 6) / 16 = 0.625 - as before.
    """
    accuracy = {0.95: 0.8, 0.75: 0.6, 0.55: 0.6, 0.15: 0.0}
    return [{**r, "confidence": accuracy[r["confidence"]]} for r in labelled_records()]


def test_diff_compares_calibration_figures(tmp_path: Path) -> None:
    old = write_audit(tmp_path / "old", labelled_records(), summarize(labelled_records()))
    new = write_audit(tmp_path / "new", improved_records(), summarize(improved_records()))
    figures = diff_audits(old, new)["figures"]
    assert figures["calibration.ece"]["old"] == pytest.approx(0.125)
    assert figures["calibration.ece"]["new"] == pytest.approx(0.0, abs=1e-6)
    assert figures["calibration.ece"]["change"] == pytest.approx(-0.125, abs=1e-6)
    assert figures["calibration.brier"]["old"] == pytest.approx(0.1775)
    assert figures["calibration.brier"]["new"] == pytest.approx(0.16)
    assert figures["calibration.brier"]["change"] == pytest.approx(0.16 - 0.1775, abs=1e-6)
    chance = {k: ece_by_chance([r["confidence"] for r in records])["median"]
              for k, records in (("old", labelled_records()), ("new", improved_records()))}
    assert figures["calibration.ece_by_chance"]["old"] == pytest.approx(chance["old"], abs=1e-6)
    assert figures["calibration.ece_by_chance"]["new"] == pytest.approx(chance["new"], abs=1e-6)
    assert figures["calibration.accuracy_at_coverage_50"] == pytest.approx({"old": 0.7, "new": 0.7, "change": 0.0})
    assert figures["calibration.accuracy_at_coverage_80"] == pytest.approx({"old": 0.625, "new": 0.625, "change": 0.0})


def test_diff_computes_calibration_for_an_audit_written_before_it_existed(tmp_path: Path) -> None:
    legacy = summarize(labelled_records())
    del legacy["calibration"]
    old = write_audit(tmp_path / "old", labelled_records(), legacy)
    unlabelled = [{**r, "reference_match": None} for r in labelled_records()]
    new = write_audit(tmp_path / "new", unlabelled)  # no summary.json at all
    figures = diff_audits(old, new)["figures"]
    assert figures["calibration.ece"] == {"old": pytest.approx(0.125), "new": None, "change": None}
    assert figures["calibration.accuracy_at_coverage_50"]["old"] == pytest.approx(0.7)


def test_cli_diff_prints_the_calibration_figures(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    old = write_audit(tmp_path / "old", labelled_records(), summarize(labelled_records()))
    new = write_audit(tmp_path / "new", improved_records(), summarize(improved_records()))
    result = CliRunner().invoke(app, ["audit-diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    block = lines[lines.index("calibration (answers with a reference):") + 1:]
    chance = [ece_by_chance([r["confidence"] for r in records])["median"] for records in (labelled_records(),
                                                                                           improved_records())]
    assert block == ["  ece: 0.125 -> 0.000 (-0.125)",
                     f"  ece_by_chance: {chance[0]:.3f} -> {chance[1]:.3f} ({chance[1] - chance[0]:+.3f})",
                     "  brier: 0.177 -> 0.160 (-0.018)",
                     "  accuracy_at_coverage_50: 0.700 -> 0.700 (+0.000)",
                     "  accuracy_at_coverage_80: 0.625 -> 0.625 (+0.000)"]
    unlabelled = [{**r, "reference_match": None} for r in labelled_records()]
    plain = CliRunner().invoke(app, ["audit-diff", str(write_audit(tmp_path / "a", unlabelled)),
                                     str(write_audit(tmp_path / "b", unlabelled))])
    assert plain.exit_code == 0 and "calibration" not in plain.stdout


def test_ece_by_chance_is_the_noise_a_calibrated_confidence_shows_on_a_small_set() -> None:
    small = ece_by_chance([0.1] * 100)
    large = ece_by_chance([0.1] * 5000)
    # outcomes drawn from the confidence itself, so calibrated by construction; only the set's size keeps the ECE off 0
    assert 0.01 < small["median"] <= small["p95"] < 0.2
    assert large["p95"] < small["median"]
    assert ece_by_chance([0.1] * 100) == small  # seeded: the same figures every run
    assert ece_by_chance([0.0, 1.0] * 50) == {"median": 0.0, "p95": 0.0}  # certain outcomes leave no noise
    assert ece_by_chance([]) is None
    with pytest.raises(ValueError, match="not a finite number"):
        ece_by_chance([0.5, float("nan")])


def test_ece_rows_is_the_ece_of_each_draw() -> None:
    rng = random.Random(3)
    conf = [rng.random() for _ in range(40)] + [0.0, 1.0, 0.1, 0.9999]
    draws = [[rng.random() < c for c in conf] for _ in range(5)]
    assert list(_ece_rows(conf, draws)) == pytest.approx([expected_calibration_error(conf, row) for row in draws])



def test_ece_by_chance_gives_the_same_figures_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.core.metrics as metrics

    rng = random.Random(5)
    conf = [rng.random() * 0.4 for _ in range(300)]
    whole = ece_by_chance(conf)
    monkeypatch.setattr(metrics, "_CELLS", 1000)  # 3 rounds a batch instead of all 1000 at once
    assert ece_by_chance(conf) == whole
