"""Calibration drift: answers whose signals lie away from the data a calibration was fitted on (the core check,
``fit_data`` in calibration.json, the audit's ``calibration_drift`` and report sentence, ``calibrate --check``)."""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path
from typing import Any

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


class OneAnswer:
    """Every question answered alike by every sample: agreement 1.0 throughout."""

    name, device, adapter, model_sha256 = "one-answer", "cpu", None, None

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        return [Completion("Yes, ask HR for form HR-07.", s) for s in seeds]


def agreement_file(path: Path, mean: float, low: float, high: float) -> Path:
    """A calibration on agreement alone, fitted (by hand) on data of that mean, scale 0.2 and 5th-95th range."""
    cal = Calibration("mean", ("agreement",), (mean,), (mean,), (0.2,), (1.0,), 0.0,
                      fit_data={"p05": (low,), "p95": (high,), "below": (0.05,), "above": (0.05,), "missing": (0.0,)})
    path.write_text(json.dumps(cal.to_dict()))
    return path


def questions(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Do I need form {i}?"}) + "\n" for i in range(n)))
    return path


def guard(calibration: Path | None) -> RagGuard:
    cfg = Config().replace("sampling", samples=3).replace(
        "consistency", calibration=None if calibration is None else str(calibration))
    return RagGuard(cfg, OneAnswer(), WordEmbedder(), None, None)


def audit(tmp_path: Path, name: str, calibration: Path | None, n: int) -> Path:
    run_audit(questions(tmp_path / f"{name}.jsonl", n), tmp_path / name, guard(calibration))
    return tmp_path / name


def test_the_audit_summary_and_report_say_when_the_answers_drift(tmp_path: Path) -> None:
    low = agreement_file(tmp_path / "low.json", 0.5, 0.2, 0.8)  # fitted where answers agreed half the time
    out = audit(tmp_path, "drift", low, MIN_RECORDS)
    summary = json.loads((out / "summary.json").read_text())
    drift = summary["calibration_drift"]
    assert drift["file"] == str(low) and drift["answers"] == MIN_RECORDS and drift["enough"] is True
    assert drift["flagged"] == ["agreement"]
    assert drift["features"]["agreement"]["shift"] == pytest.approx(2.5)  # (1.0 - 0.5) / 0.2
    assert drift["features"]["agreement"]["outside"] == 1.0 and drift["features"]["agreement"]["fit_outside"] == 0.1
    sentence = ("calibration drift: the answers' agreement sits 2.5 scales above the data the calibration was fitted on "
                "(100 % of its values lie outside the fit data's 5th-95th percentiles, mostly above, against 10 % of "
                "the fit data): the calibrated probabilities are extrapolated here; refit with `ragguard calibrate` on "
                "a labelled audit of your own questions")
    assert drift["message"] == sentence
    shown = re.search(r'<div class="meta warn" id="calibration-drift">(.*?)</div>', (out / "report.html").read_text())
    assert shown and html.unescape(shown.group(1)) == sentence
    # Fitted on answers like these: nothing flagged, nothing shown.
    high = agreement_file(tmp_path / "high.json", 1.0, 0.6, 1.0)
    alike = json.loads((audit(tmp_path, "alike", high, MIN_RECORDS) / "summary.json").read_text())["calibration_drift"]
    assert alike["enough"] and alike["flagged"] == [] and alike["message"].startswith("no drift")
    assert 'id="calibration-drift"' not in (tmp_path / "alike" / "report.html").read_text()
    # Two answers say nothing; an audit without a calibration has nothing to check.
    few = json.loads((audit(tmp_path, "few", low, 2) / "summary.json").read_text())["calibration_drift"]
    assert few["enough"] is False and few["flagged"] == [] and few["message"].startswith("only 2 answers")
    assert 'id="calibration-drift"' not in (tmp_path / "few" / "report.html").read_text()
    assert json.loads((audit(tmp_path, "plain", None, 2) / "summary.json").read_text())["calibration_drift"] is None


def test_the_audit_command_warns_of_drift_on_stderr_and_still_exits_0(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.apps.cli.audit as cli_audit

    low = agreement_file(tmp_path / "low.json", 0.5, 0.2, 0.8)
    monkeypatch.setattr(cli_audit, "guard_for", lambda config, index: guard(low))
    q = questions(tmp_path / "q.jsonl", MIN_RECORDS)
    result = CliRunner().invoke(app, ["audit", str(q), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "ragguard: warning: calibration drift: the answers' agreement sits 2.5 scales above" in result.stderr
    high = agreement_file(tmp_path / "high.json", 1.0, 0.6, 1.0)
    monkeypatch.setattr(cli_audit, "guard_for", lambda config, index: guard(high))
    quiet = CliRunner().invoke(app, ["audit", str(q), "--out", str(tmp_path / "quiet")])
    assert quiet.exit_code == 0 and "drift" not in quiet.stderr


def check(*args: str) -> Any:
    return CliRunner().invoke(app, ["calibrate", *args])


def test_calibrate_check_prints_the_drift_and_the_figures_and_gates_on_drift(tmp_path: Path, fitted: Calibration) -> None:
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(fitted.to_dict()))
    alike = write_audit(tmp_path / "alike", draw(40, 1))
    shifted = write_audit(tmp_path / "shifted", draw(40, 2, overlap=0.15, labelled=False))
    ok = check("--check", str(alike), "--calibration", str(cal), "--fail-on-drift")
    assert ok.exit_code == 0, ok.output
    lines = ok.stdout.splitlines()
    assert lines[0] == f"40 answers from 1 audit(s) against {cal} (fitted on 120 records)"
    assert lines[1].split() == ["signal", "shift", "mean", "fit", "mean", "missing", "outside", "flag"]
    assert lines[2].startswith("passage_overlap") and "no drift: the 40 answers' signals" in ok.stdout
    assert "on the 40 answers with a reference (" in ok.stdout and "AUROC for a wrong answer" in ok.stdout
    drifted = check("--check", str(shifted), "--calibration", str(cal))
    assert drifted.exit_code == 0 and "calibration drift: the answers' passage_overlap sits" in drifted.stdout
    row = next(line for line in drifted.stdout.splitlines() if line.startswith("passage_overlap"))
    assert row.endswith("shift, outside") and "with a reference" not in drifted.stdout  # no references: no figures
    gated = check("--check", str(shifted), "--calibration", str(cal), "--fail-on-drift", "--json")
    assert gated.exit_code == 1
    data = json.loads(gated.stdout)
    assert data["flagged"] == ["passage_overlap"] and data["performance"] is None and data["answers"] == 40
    assert data["features"]["passage_overlap"]["shift"] < -1 and data["calibration"] == str(cal)
    labelled = json.loads(check("--check", str(alike), "--calibration", str(cal), "--json").stdout)["performance"]
    assert labelled["labelled"] == 40 and 0.5 < labelled["auroc_confidence_wrong"] <= 1.0
    assert labelled["fitted"]["auroc"] == round(fitted.figures["calibrated"]["auroc"], 6)
    # A handful says nothing, and fails no gate.
    few = check("--check", str(write_audit(tmp_path / "few", draw(5, 2, overlap=0.1))), "--calibration", str(cal),
                "--fail-on-drift")
    assert few.exit_code == 0 and "only 5 answers: a drift check needs at least 20" in few.stdout
    # A file from before fit_data: shift only, and the table says so.
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in fitted.to_dict().items() if k != "fit_data"}))
    legacy = check("--check", str(shifted), "--calibration", str(old), "--fail-on-drift")
    assert legacy.exit_code == 1 and "this file predates the fit data's ranges: shift only" in legacy.stdout


def test_calibrate_check_usage_errors_are_one_line_with_exit_2(tmp_path: Path, fitted: Calibration) -> None:
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(fitted.to_dict()))
    folder = str(write_audit(tmp_path / "a", draw(30, 1)))
    for args, said in (
        ([folder, "--check"], "--check needs --calibration FILE"),
        ([folder, "--check", "--calibration", str(tmp_path / "none.json")], "is not a file: pass a calibration.json"),
        ([folder, "--check", "--calibration", str(cal), "--out", "x.json"], "--check fits nothing, so --out does not"),
        ([folder, "--check", "--calibration", str(cal), "--method", "mean"], "so --method does not apply"),
        ([folder, "--calibration", str(cal)], "--calibration goes with --check"),
        ([folder, "--fail-on-drift", "--out", "x.json"], "--fail-on-drift goes with --check"),
        ([folder], "--out is missing: pass --out calibration.json to fit one, or --check --calibration FILE"),
        ([str(tmp_path / "nowhere"), "--check", "--calibration", str(cal)], "audit folder"),
    ):
        result = check(*args)
        assert result.exit_code == 2, (args, result.output)
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "ragguard-calibration/1", "method": "forest"}')
    refused = check(folder, "--check", "--calibration", str(broken))
    assert refused.exit_code == 2 and refused.stderr.startswith(f"ragguard: error: --calibration {broken} is refused")
    shipped = check(folder, "--check", "--calibration", "auto", "--json")  # the file the embedded default ships
    assert shipped.exit_code == 0 and json.loads(shipped.stdout)["calibration"].endswith("embedded.json")


def test_the_thresholds_at_their_edges() -> None:
    def cal(scale: float, missing: float = 0.0) -> Calibration:
        return Calibration("mean", ("agreement",), (0.6,), (0.6,), (scale,), (1.0,), 0.0, fit_data={
            "p05": (0.2,), "p95": (0.8,), "below": (0.05,), "above": (0.05,), "missing": (missing,)})

    def answers(high: int, n: int = 20) -> list[dict]:
        return [record(1.0 if i < high else 0.6, True, i) for i in range(n)]

    wide = cal(10.0)  # a scale so wide that no shift counts: the range alone
    assert calibration_drift(wide, answers(5)).flagged == []  # 25 % outside, 10 % in the fit: 15 points, not more
    assert calibration_drift(wide, answers(6)).features[0].reasons == ("outside",)
    # A shift of exactly one scale is not beyond it.
    assert calibration_drift(cal(0.4), answers(20)).features[0].shift == pytest.approx(1.0)
    assert calibration_drift(cal(0.4), answers(20)).features[0].reasons == ("outside",)
    assert calibration_drift(cal(0.39), answers(20)).features[0].reasons == ("shift", "outside")
    # Missing: 20 points above the fit's share is not more than 20.
    bare = [{**r, "agreement": None} for r in answers(0)]
    assert calibration_drift(cal(10.0, missing=0.8), bare).flagged == []
    assert calibration_drift(cal(10.0, missing=0.75), bare).features[0].reasons == ("missing",)
