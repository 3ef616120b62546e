"""Calibration drift: answers whose signals lie away from the data a calibration was fitted on (the core check,
``fit_data`` in calibration.json, the audit's ``calibration_drift`` and report sentence, ``calibrate --check``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fakes import WordEmbedder
from test_calibration import record, write_audit
from typer.testing import CliRunner

from ragguard.apps.audit import run_audit
from ragguard.apps.calibrate import fit_calibration
from ragguard.apps.cli import app
from ragguard.config import Config
from ragguard.core.calibration import Calibration, CalibrationFileError
from ragguard.core.drift import MIN_RECORDS, calibration_drift
from ragguard.core.protocols import Completion
from ragguard.pipeline import RagGuard

GROUNDING = ["passage_overlap", "question_coverage", "key_sentence_hits"]  # the shipped file's signals


def grounded(i: int, overlap: float, coverage: float, hits: int, right: bool | None) -> dict:
    """An audit record with these grounding signals (``right`` None: a question without a reference)."""
    row = record(0.8, bool(right), i)
    row["grounding"] = {**row["grounding"], "overlap": overlap, "coverage": coverage, "key_hits": hits}
    if right is None:
        row.pop("reference"), row.pop("reference_match")
    return row


def draw(n: int, seed: int, overlap: float = 0.4, labelled: bool = True, start: int = 0) -> list[dict]:
    """Answers whose right ones are the better grounded; ``overlap`` moves the whole set's passage overlap."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        right = rng.random() < 0.4
        value = min(1.0, max(0.0, rng.gauss(overlap + (0.1 if right else -0.05), 0.1)))
        coverage = min(1.0, max(0.0, rng.gauss(0.6 if right else 0.5, 0.12)))
        rows.append(grounded(start + i, round(value, 4), round(coverage, 4), rng.choice([0, 1, 2, 3] if right else [0, 0, 1, 2]),
                             right if labelled else None))
    return rows


@pytest.fixture(scope="module")
def fitted() -> Calibration:
    return fit_calibration(draw(120, 0), method="mean", signals=GROUNDING)


def test_shifted_answers_are_flagged_and_answers_drawn_like_the_fit_data_are_not(fitted: Calibration) -> None:
    assert set(fitted.fit_data) == {"p05", "p95", "below", "above", "missing"}
    alike = calibration_drift(fitted, draw(40, 1, start=1000))
    assert alike.enough and alike.flagged == [] and alike.message().startswith("no drift: the 40 answers' signals")
    assert all(abs(f.shift) < 0.5 for f in alike.features)
    shifted = calibration_drift(fitted, draw(40, 2, overlap=0.15, start=2000))
    assert shifted.flagged == ["passage_overlap"]
    overlap = shifted.features[0]
    assert overlap.shift < -1.0 and set(overlap.reasons) == {"shift", "outside"} and overlap.below > 0.5
    assert overlap.score_shift == pytest.approx(fitted.coef[0] * overlap.shift)
    message = shifted.message()
    assert message.startswith(f"calibration drift: the answers' passage_overlap sits {abs(overlap.shift):.1f} scales below the data the "
                              "calibration was fitted on")
    assert message.endswith("the calibrated probabilities are extrapolated here; refit with `ragguard calibrate` on a "
                            "labelled audit of your own questions")
    # Answers without any context lack all three signals: they get the fit's medians, which the check says.
    bare = [{**r, "grounding": None} for r in draw(30, 3, start=3000)]
    missing = calibration_drift(fitted, bare)
    assert missing.flagged == GROUNDING and all(f.reasons == ("missing",) for f in missing.features)
    assert "calibration drift: passage_overlap is missing from 100 % of the answers (0 % of the fit data); question_coverage is" in missing.message()
    assert "an answer without a signal gets the fit's median for it" in missing.message()
    # Withheld answers get no probability: left out, and counted.
    withheld = [{**r, "answer": ""} for r in draw(5, 4, start=4000)]
    assert calibration_drift(fitted, [*draw(30, 1), *withheld]).left_out == 5


def test_a_handful_of_answers_says_nothing(fitted: Calibration) -> None:
    few = calibration_drift(fitted, draw(MIN_RECORDS - 1, 2, overlap=0.1))
    assert not few.enough and few.flagged == [] and few.features[0].reasons  # measured, but not flagged
    assert few.message() == (f"only {MIN_RECORDS - 1} answers: a drift check needs at least {MIN_RECORDS} (the mean of "
                             "a handful moves by a scale by chance), so it says nothing here")
    assert few.to_dict()["enough"] is False and few.to_dict()["flagged"] == []


def test_a_file_without_fit_data_loads_and_is_checked_by_its_shift_alone(fitted: Calibration) -> None:
    old = json.loads(json.dumps({k: v for k, v in fitted.to_dict().items() if k != "fit_data"}))
    back = Calibration.from_dict(old)
    assert back.fit_data == {} and json.loads(json.dumps(back.to_dict())) == old  # written again as it was
    drift = calibration_drift(back, draw(40, 2, overlap=0.15))
    assert drift.flagged == ["passage_overlap"] and drift.features[0].reasons == ("shift",)
    assert not drift.ranges_known and drift.features[0].outside is None and drift.features[0].fit_missing is None
    # The shipped file predates fit_data: it loads unchanged and is checked the same way.
    shipped = Path(__file__).parent.parent / "ragguard" / "calibrations" / "embedded.json"
    data = json.loads(shipped.read_text())
    assert "fit_data" not in data and Calibration.from_dict(data).to_dict() == data
    assert calibration_drift(Calibration.from_dict(data), draw(25, 5)).features[0].fit_missing is None


def test_fit_data_round_trips_and_a_broken_one_is_refused_by_key(fitted: Calibration) -> None:
    data = json.loads(json.dumps(fitted.to_dict()))
    assert Calibration.from_dict(data).fit_data == fitted.fit_data
    low, high = data["fit_data"]["p05"][0], data["fit_data"]["p95"][0]
    assert 0.0 <= low < high <= 1.0 and data["fit_data"]["missing"] == [0.0, 0.0, 0.0]
    for change, message in (({"p05": [0.9, 0.0, 0.0], "p95": [0.1, 1.0, 1.0]}, "each 'p05' must not exceed its 'p95'"),
                            ({"missing": [0.0, 1.5, 0.0]}, "'fit_data.missing' holds shares"),
                            ({"below": [0.1]}, "'fit_data.below' has 1 values for 3 features"),
                            ({"above": "x"}, "'fit_data.above' must be a list of finite numbers")):
        with pytest.raises(CalibrationFileError, match=message):
            Calibration.from_dict({**data, "fit_data": {**data["fit_data"], **change}})
    with pytest.raises(CalibrationFileError, match="'fit_data' lacks missing: it needs p05, p95, below, above, missing"):
        Calibration.from_dict({**data, "fit_data": {k: v for k, v in data["fit_data"].items() if k != "missing"}})
    with pytest.raises(CalibrationFileError, match="'fit_data' must be an object"):
        Calibration.from_dict({**data, "fit_data": [1]})


def test_a_signal_without_weight_is_reported_never_flagged() -> None:
    cal = Calibration("mean", ("agreement", "findings"), (0.5, 0.0), (0.5, 0.0), (0.2, 1.0), (1.0, 0.0), 0.0)
    rows = [{**record(0.8, True, i), "contradictions": [{"kind": "quantity"}] * 5} for i in range(25)]
    drift = calibration_drift(cal, rows)
    assert drift.features[1].shift == pytest.approx(1.0) and not drift.features[1].weighted
    assert drift.flagged == ["agreement"]  # (0.8 - 0.5) / 0.2 = 1.5 scales
