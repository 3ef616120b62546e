"""Calibration and the setup it holds for: withheld answers, mixed audits, neutral settings, resume and diff,
bad files and paths, and a gate without a calibration (helper 43's walkthrough of issue 17)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fakes import WordEmbedder
from test_calibration import FINGERPRINT, labelled_set, record, write_audit
from typer.testing import CliRunner

from ragguard.apps.audit import run_audit
from ragguard.apps.audit_summary import calibration_summary, diff_audits, summarize
from ragguard.apps.calibrate import fit_calibration, read_labelled
from ragguard.apps.calibration_io import mismatches
from ragguard.apps.check import check
from ragguard.apps.cli import app
from ragguard.config import Config
from ragguard.core.calibration import Calibration, CalibrationFileError
from ragguard.core.protocols import Completion
from ragguard.errors import UsageError
from ragguard.pipeline import RagGuard

FAST = {"method": "mean", "signals": ["agreement", "logprob_mean_greedy"]}


def withheld(i: int) -> dict:
    """An answer withheld under on_flagged: abstain (or a retrieval abstain): no answer, labelled mismatch."""
    return {**record(0.4, False, i), "answer": "", "verdict": "abstain", "confidence": 0.0}


def test_withheld_answers_are_left_out_of_the_fit_and_counted() -> None:
    rows = labelled_set(60)
    fitted = fit_calibration([*rows, *(withheld(100 + i) for i in range(20))], **FAST)
    alone = fit_calibration(rows, **FAST)
    assert fitted.data["records"] == 60 and fitted.data["no_answer_left_out"] == 20
    assert fitted.figures["no_answer_left_out"] == 20 and fitted.coef == alone.coef
    assert alone.figures["no_answer_left_out"] == 0
    # What bench/ reproduces the shipped file with: kept, as wrong answers.
    kept = fit_calibration([*rows, *(withheld(100 + i) for i in range(20))], **FAST, keep_withheld=True)
    assert kept.data["records"] == 80
    # Too few left once they are out: the count says why.
    with pytest.raises(UsageError, match=r"only 20 labelled records .*\(20 without an answer left out"):
        fit_calibration([*rows[:20], *(withheld(100 + i) for i in range(20))], **FAST)


def test_the_audit_summary_leaves_withheld_answers_out_of_the_calibration_figures() -> None:
    answered = [{**record(1.0, True, i), "confidence": 0.9} for i in range(4)] + \
               [{**record(0.4, False, 10 + i), "confidence": 0.95} for i in range(4)]
    cal = calibration_summary([*answered, *(withheld(20 + i) for i in range(6))])
    assert cal is not None and cal["labelled"] == 8 and cal["no_answer_left_out"] == 6
    assert cal == {**calibration_summary(answered), "no_answer_left_out": 6}
    # Withheld answers at confidence 0 would make a confidence that ranks wrong answers first look perfect.
    summary = summarize([{**r, "status": "ok", "verdict": "consistent"} for r in
                         [*answered, *(withheld(20 + i) for i in range(6))]])
    assert summary["reference"]["auroc_confidence_wrong"] == 0.0


def test_calibrate_refuses_audits_of_different_setups_and_names_what_differs(tmp_path: Path) -> None:
    from ragguard.apps.calibrate import mixed_setups_refusal
    from ragguard.apps.calibration_io import ANSWER_NEUTRAL
    from ragguard.config.schema import setting_values

    rows = labelled_set(80)
    settings = {**setting_values(Config()), "generator.model": "ours"}

    def audit(name: str, part: list[dict], **changes: object) -> Path:
        folder = write_audit(tmp_path / name, part)
        (folder / "audit.json").write_text(json.dumps({"settings": {**settings, **changes}}))
        return folder

    a, b = audit("a", rows[:50]), audit("b", rows[50:], **{"generator.model": "ours-v2", "sampling.samples": 3})
    out = tmp_path / "cal.json"
    refused = CliRunner().invoke(app, ["calibrate", str(a), str(b), "--out", str(out), "--method", "mean"])
    assert refused.exit_code == 2 and not out.exists()
    assert ('the audits come from 2 setups (records per value): generator.model "ours" (50), "ours-v2" (30); '
            "sampling.samples 5 (50), 3 (30)") in refused.output and "--mixed-setups" in refused.output
    mixed = CliRunner().invoke(app, ["calibrate", str(a), str(b), "--out", str(out), "--method", "mean",
                                     "--mixed-setups"])
    assert mixed.exit_code == 0, mixed.output
    fitted_for = json.loads(out.read_text())["fitted_for"]
    assert fitted_for["mixed"]["generator.model"] == {'"ours"': 50, '"ours-v2"': 30}
    assert fitted_for["settings"]["generator.model"] == "ours"  # the most common setup
    # Settings of how requests reach the server (and how a flagged answer is delivered) are not another setup.
    c = audit("c", rows[50:], **{"generator.concurrency": 2, "generator.timeout": 5.0, "consistency.on_flagged": "abstain"})
    assert mixed_setups_refusal(read_labelled([a, c])) is None
    assert not ANSWER_NEUTRAL & set(json.loads(out.read_text())["fitted_for"]["settings"])


def test_settings_that_change_no_answer_do_not_make_another_setup_and_the_others_are_named(tmp_path: Path) -> None:
    from ragguard.apps.calibration_io import ANSWER_NEUTRAL
    from ragguard.config.schema import TRANSPORT, setting_values

    assert TRANSPORT <= ANSWER_NEUTRAL and "consistency.on_flagged" in ANSWER_NEUTRAL
    served = Config().replace("generator", backend="openai", model="ours", base_url="http://gpu:8000/v1")
    settings = {k: v for k, v in setting_values(served).items() if k not in ANSWER_NEUTRAL}
    cal = Calibration("mean", ("agreement",), (0.5,), (0.5,), (0.2,), (1.0,), 0.0,
                      fitted_for={"model": "ours", "setup_hash": served.setup_hash(), "samples": 5,
                                  "settings": settings})
    fingerprint = {"model": "ours", "adapter": None, "setup_hash": "anything"}
    for changed in (served.replace("generator", concurrency=2, timeout=60.0, max_retries=5),
                    served.replace("consistency", on_flagged="abstain")):
        assert mismatches(cal, fingerprint, 5, changed) == []
    found = mismatches(cal, fingerprint, 3, served.replace("sampling", samples=3, temperature=0.9))
    assert found == ["config: sampling.samples fitted for 5, this answer used 3 (--samples 5, or sampling.samples, "
                     "gives its setup)",
                     f"config: sampling.temperature fitted for {served.sampling.temperature}, this answer used 0.9"]
    # A file from before fitted_for.settings: known by its hash, and the neutral settings at their defaults match.
    old = Calibration("mean", ("agreement",), (0.5,), (0.5,), (0.2,), (1.0,), 0.0,
                      fitted_for={"model": "tiny", "setup_hash": Config().setup_hash()})
    busy = Config().replace("generator", concurrency=2)
    assert mismatches(old, {**FINGERPRINT, "setup_hash": busy.setup_hash()}, 5, busy) == []


class TableGenerator:
    name, device, adapter, model_sha256 = "table", "cpu", None, None

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        return [Completion("Yes, ask HR for form HR-07.", s) for s in seeds]


def calibration_file(path: Path, intercept: float) -> Path:
    cal = Calibration("mean", ("agreement",), (0.5,), (0.5,), (0.2,), (1.0,), intercept)
    path.write_text(json.dumps(cal.to_dict()))
    return path


def audit_guard(calibration: Path | None) -> RagGuard:
    cfg = Config().replace("sampling", samples=3).replace(
        "consistency", calibration=None if calibration is None else str(calibration))
    return RagGuard(cfg, TableGenerator(), WordEmbedder(), None, None)


def test_resume_and_diff_say_when_the_calibration_file_changed(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Do I need form {i}?",
                                     "reference": "Yes, ask HR for form HR-07."}) + "\n" for i in range(2)))
    first, second = calibration_file(tmp_path / "one.json", 0.0), calibration_file(tmp_path / "two.json", 1.0)
    run_audit(q, tmp_path / "a", audit_guard(first))
    with pytest.raises(UsageError, match=r"a holds answers made with one.json \(sha256 \w{12}\); this run uses "
                                         r"two.json \(sha256 \w{12}\) \(consistency.calibration\): resume with the same"):
        run_audit(q, tmp_path / "a", audit_guard(second), resume=True)
    with pytest.raises(UsageError, match="this run uses no calibration file"):
        run_audit(q, tmp_path / "a", audit_guard(None), resume=True)
    run_audit(q, tmp_path / "a", audit_guard(first), resume=True)  # the same file resumes
    # An audit.json from before it named the calibration: the records say which file they used.
    info = json.loads((tmp_path / "a" / "audit.json").read_text())
    info.pop("calibration")
    (tmp_path / "a" / "audit.json").write_text(json.dumps(info))
    with pytest.raises(UsageError, match="holds answers made with one.json"):
        run_audit(q, tmp_path / "a", audit_guard(second), resume=True)
    run_audit(q, tmp_path / "b", audit_guard(second))
    run_audit(q, tmp_path / "c", audit_guard(None))
    diff = diff_audits(tmp_path / "a", tmp_path / "b")
    change = diff["setup_changed"]["calibration"]
    assert change["old"].startswith("one.json (sha256 ") and change["new"].startswith("two.json (sha256 ")
    assert diff_audits(tmp_path / "b", tmp_path / "c")["setup_changed"]["calibration"]["new"] == "none"
    shown = CliRunner().invoke(app, ["audit-diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert "the runs differ in their calibration file" in shown.output and "one.json (sha256" in shown.output


def test_too_few_of_one_class_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    right = [record(1.0, True, i) for i in range(29)]
    for method in ("logistic", "isotonic", "mean"):
        with pytest.raises(UsageError, match=r"only 1 wrong answer among 30 labelled: calibrating needs at least 5 "
                                             r"right and 5 wrong answers.*\(audit more, or harder, questions\)"):
            fit_calibration([*right, record(0.2, False, 99)], method=method)
    with pytest.raises(UsageError, match=r"only 2 right answers among 32 labelled"):
        fit_calibration([record(1.0, True, 0), record(1.0, True, 1), *(record(0.2, False, 10 + i) for i in range(30))])
    folder = write_audit(tmp_path / "a", [*right, record(0.2, False, 99)])
    cli = CliRunner().invoke(app, ["calibrate", str(folder), "--out", str(tmp_path / "c.json")])
    assert cli.exit_code == 2 and "unexpected" not in cli.output and "UserWarning" not in cli.output


def test_an_out_that_cannot_be_written_is_refused_before_the_fit(tmp_path: Path) -> None:
    folder = write_audit(tmp_path / "a", labelled_set(40))
    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(app, ["calibrate", str(folder), "--out", str(tmp_path / "taken")])
    assert result.exit_code == 2 and f"--out {tmp_path / 'taken'} is a folder: pass a file, e.g. " in result.output
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "plain").write_text("x")  # a file where a folder is needed
    result = CliRunner().invoke(app, ["calibrate", str(folder), "--out", str(tmp_path / "plain" / "c.json")])
    assert result.exit_code == 2 and "cannot write there" in result.output and "unexpected" not in result.output


def test_a_hand_edited_file_with_a_bad_object_or_threshold_is_refused_by_key() -> None:
    good = Calibration("mean", ("agreement",), (0.5,), (0.5,), (0.2,), (1.0,), 0.0, threshold=0.5).to_dict()
    for key, value, message in (("fitted_for", "stub", "'fitted_for' must be an object"),
                                ("data", [1], "'data' must be an object"),
                                ("figures", 3, "'figures' must be an object"),
                                ("threshold", 1.7, "'threshold' must lie in 0..1"),
                                ("target_precision", -0.1, "'target_precision' must lie in 0..1")):
        with pytest.raises(CalibrationFileError, match=message):
            Calibration.from_dict({**good, key: value})
    assert Calibration.from_dict({**good, "fitted_for": None}).fitted_for == {}


def test_min_confidence_without_a_calibration_says_once_that_it_gates_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    import ragguard.apps.calibration_io as calibration_io

    getattr(calibration_io, "_gate_warned", set()).clear()
    answers = ["Yes, file form HR-07."] * 3
    cfg = Config().replace("consistency", calibration=None, min_confidence=0.95)
    with caplog.at_level(logging.WARNING, logger="ragguard.calibration"):
        for _ in range(2):
            check("Do I file form HR-07?", answers, "File form HR-07.", embedder=WordEmbedder(), config=cfg)
    said = [r.getMessage() for r in caplog.records if "min_confidence" in r.getMessage()]
    assert said == ["consistency.min_confidence 0.95 has no effect: consistency.calibration is off, and the gate reads "
                    "a calibrated confidence. Set consistency.calibration to a file written by `ragguard calibrate` "
                    "for this model, or remove min_confidence"]


def test_calibrate_names_an_absolute_path_orders_its_records_and_warns_when_it_ranks_worse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = labelled_set(80)
    a, b = write_audit(tmp_path / "a", rows[:40]), write_audit(tmp_path / "b", rows[40:])
    # The same records in either order of the folders: the same file.
    assert [r["id"] for r in read_labelled([a, b])] == [r["id"] for r in read_labelled([b, a])]
    monkeypatch.chdir(tmp_path)
    fitted = CliRunner().invoke(app, ["calibrate", "a", "b", "--out", "ab.json", "--method", "mean",
                                      "--signals", "agreement"])
    assert fitted.exit_code == 0, fitted.output
    # A relative path in a config is read from the config's folder: the hint names the file from anywhere.
    assert f"set consistency.calibration: {(tmp_path / 'ab.json').resolve()} in your config" in fitted.output
    other = CliRunner().invoke(app, ["calibrate", "b", "a", "--out", "ba.json", "--method", "mean",
                                     "--signals", "agreement"])
    assert other.exit_code == 0 and (tmp_path / "ab.json").read_text() == (tmp_path / "ba.json").read_text()
    # A signal that never varies ranks no answer: worse than the formula it replaces, and a warning says so.
    worse = CliRunner().invoke(app, ["calibrate", "a", "b", "--out", "w.json", "--method", "mean",
                                     "--signals", "passage_overlap"])
    assert worse.exit_code == 0 and json.loads((tmp_path / "w.json").read_text())["figures"]["worse_than_uncalibrated"]
    assert "warning: the calibrated confidence ranks wrong answers worse than the uncalibrated formula" in worse.stderr
    assert not json.loads((tmp_path / "ab.json").read_text())["figures"]["worse_than_uncalibrated"]
