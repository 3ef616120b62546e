"""Calibrated confidence: features, the JSON file, the fit and its figures, ``ragguard calibrate``, and its use."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from pathlib import Path

import pytest
from fakes import WordEmbedder
from typer.testing import CliRunner

from ragguard.apps.calibrate import (
    MIN_RECORDS,
    against_direction,
    auroc_interval,
    fit_calibration,
    read_labelled,
    threshold_for,
)
from ragguard.apps.calibration_io import annotate, load_calibration, mismatches, resolve_calibration
from ragguard.apps.check import check
from ragguard.apps.cli import app
from ragguard.config import Config
from ragguard.core.calibration import FEATURES, Calibration, CalibrationFileError, features
from ragguard.core.metrics import bootstrap_aurocs, expected_calibration_error
from ragguard.core.types import Fingerprint, Report
from ragguard.errors import ConfigError, UsageError

FINGERPRINT = {"model": "tiny", "model_sha256": "ab" * 32, "adapter": None, "embedder": "words",
               "config_hash": Config().hash(), "setup_hash": Config().setup_hash(), "seeds": [1, 2]}


def record(agreement: float, right: bool, i: int, logprob: float | None = -0.5) -> dict:
    """An audit record whose signals are known (5 samples, the voted cluster holds round(5 * agreement))."""
    members = list(range(round(5 * agreement)))
    samples = [{"text": f"answer {i}", "seed": None if k == 0 else k, "greedy": k == 0, "cluster": 0 if k in members else 1,
                "logprob_mean": logprob, "logprob_min": None if logprob is None else 2 * logprob, "tokens": 4}
               for k in range(5)]
    return {
        "id": f"q{i}", "question": f"question {i}?", "answer": f"answer {i}", "status": "ok",
        "agreement": agreement, "semantic_entropy": 1 - agreement, "semantic_entropy_weighted": None,
        "confidence": agreement / 2, "samples": samples,
        "clusters": [{"id": 0, "size": len(members), "representative": f"answer {i}", "members": members,
                      "support": 0.6, "claim_support": 0.5}],
        "contradictions": [{"a": 0, "b": 4, "kind": "quantity", "score": 1.0, "explanation": "x"}],
        "grounding": {"support": 0.25, "overlap": 0.4, "anchored": 0.75, "coverage": 0.5, "key_hits": 3,
                      "claims": [{"text": "a"}, {"text": "b"}],
                      "unsupported": ["b"], "absent": []},
        "sources": [{"score": 0.7}, {"score": 0.5}],
        "reference": "r", "reference_match": "match" if right else "mismatch", "fingerprint": FINGERPRINT,
    }


def labelled_set(n: int = 120, seed: int = 0) -> list[dict]:
    """Right answers have higher agreement and token probabilities than wrong ones, with overlap."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        right = rng.random() < 0.4
        agreement = rng.choice([0.6, 0.8, 1.0] if right else [0.2, 0.4, 0.6, 0.8])
        rows.append(record(agreement, right, i, logprob=round(rng.gauss(-0.4 if right else -1.0, 0.3), 4)))
    return rows


def test_features_read_every_signal_from_a_record() -> None:
    values = features(record(0.6, True, 1))
    assert set(values) == set(FEATURES)
    assert values["agreement"] == 0.6 and values["semantic_entropy"] == pytest.approx(0.4)
    assert values["logprob_mean_greedy"] == -0.5 and values["logprob_min_greedy"] == -1.0
    assert values["logprob_mean_voted"] == -0.5 and values["logprob_min_voted"] == -1.0
    assert values["claim_support"] == 0.25 and values["embedding_support"] == 0.6
    assert values["passage_overlap"] == 0.4 and values["anchored_support"] == 0.75
    assert values["question_coverage"] == 0.5
    assert values["key_sentence_hits"] == pytest.approx(math.log(4))  # log(1 + 3 hits)
    assert values["unsupported_claims"] == 0.5 and values["absent_values"] == 0.0
    assert values["findings_quantity"] == 1 / 5 and values["findings_polarity"] == 0.0 and values["findings"] == 1 / 5
    assert values["retrieval_top"] == 0.7 and values["retrieval_mean"] == pytest.approx(0.6)
    assert values["answer_tokens"] == pytest.approx(math.log1p(2))  # "answer 1"
    assert values["question_echo"] == 0.5  # "1" is in "question 1?", "answer" is not
    assert values["semantic_entropy_weighted"] is None
    # The voted cluster's lowest-token signal does not move with the cluster's size.
    members = [{"text": "a", "greedy": i == 0, "logprob_mean": -0.5, "logprob_min": m} for i, m in enumerate((-1.0, -3.0))]
    pair = {"answer": "a", "samples": members, "clusters": [{"representative": "a", "members": [0, 1]}]}
    four = {**pair, "samples": members * 2, "clusters": [{"representative": "a", "members": [0, 1, 2, 3]}]}
    assert features(pair)["logprob_min_voted"] == features(four)["logprob_min_voted"] == -2.0
    # `check` input without log-probabilities and without context: those signals are missing, not 0.
    bare = features({"answer": "yes", "agreement": 1.0, "samples": [{"text": "yes", "greedy": True}],
                     "clusters": [{"representative": "yes", "members": [0]}]})
    assert bare["logprob_mean_greedy"] is None and bare["claim_support"] is None and bare["retrieval_top"] is None
    assert bare["passage_overlap"] is None and bare["anchored_support"] is None and bare["question_coverage"] is None
    assert bare["key_sentence_hits"] is None


def test_ece_and_the_threshold_by_hand() -> None:
    # bin 0.1-0.2: conf 0.1, 0.1 with 1 right -> |0.5 - 0.1| = 0.4; bin 0.9-1.0: conf 0.9 x2, 2 right -> 0.1
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [True, False, True, True]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    chosen = threshold_for([0.9, 0.8, 0.7, 0.6, 0.2], [True, True, False, True, False], 0.75)
    # keep >= 0.6: 3 of 4 right = 0.75 (the lowest threshold reaching it)
    assert chosen == {"threshold": 0.6, "precision": 0.75, "coverage": 0.8}
    assert threshold_for([0.5, 0.4], [False, False], 0.9)["threshold"] is None
    # One lucky answer at the top is no threshold when at least 2 must stay.
    assert threshold_for([0.9, 0.8, 0.7], [True, False, False], 0.9)["threshold"] == 0.9
    unreached = threshold_for([0.9, 0.8, 0.7], [True, False, False], 0.9, min_kept=2)
    assert unreached["threshold"] is None
    # what can be had instead: the best precision among thresholds keeping at least 2 answers
    assert unreached["reachable"] == {"threshold": 0.8, "precision": 0.5, "coverage": pytest.approx(2 / 3)}
    assert threshold_for([0.5], [False], 0.9, min_kept=2)["reachable"] is None  # no threshold keeps enough


def test_fit_ranks_and_calibrates_on_held_out_folds_and_beats_the_formula() -> None:
    cal = fit_calibration(labelled_set(), target_precision=0.8)
    fig = cal.figures
    # Records calibrated already (the embedded default ships a file) still show the formula beside the fit.
    calibrated = [{**r, "confidence": 0.99, "calibrated": True} for r in labelled_set()]
    assert fit_calibration(calibrated, target_precision=0.8).figures["uncalibrated"] == fig["uncalibrated"]
    assert fig["calibrated"]["auroc"] > 0.85 > fig["uncalibrated"]["auroc"]
    assert fig["calibrated"]["ece"] < fig["uncalibrated"]["ece"]
    assert 0 < fig["ece_by_chance"]["median"] < fig["ece_by_chance"]["p95"] < 0.2  # the noise floor of 120 answers
    low, high = fig["calibrated"]["auroc_95"]
    assert low < fig["calibrated"]["auroc"] < high
    assert fig["signals"]["logprob_mean_greedy"]["auroc"] > 0.8  # read in its fixed direction
    assert cal.threshold is not None and fig["target"]["precision"] >= 0.8
    assert cal.fitted_for["model_sha256"] == "ab" * 32 and cal.fitted_for["samples"] == 5
    assert cal.data["records"] == 120 and len(cal.data["sha256"]) == 64
    # Deterministic: the same records give the same file.
    assert fit_calibration(labelled_set(), target_precision=0.8).to_dict() == cal.to_dict()
    iso = fit_calibration(labelled_set(), method="isotonic")
    assert iso.isotonic_x and 0.0 <= iso.probability(features(record(1.0, True, 0, -0.2))) <= 1.0


def test_the_mean_method_fits_only_the_map_from_the_equal_weight_score() -> None:
    names = ["agreement", "logprob_mean_greedy", "findings"]
    cal = fit_calibration(labelled_set(), method="mean", signals=names)
    # One weight for every signal, signed by its fixed direction (findings: more is riskier), same magnitude.
    assert cal.coef[0] == pytest.approx(cal.coef[1]) == pytest.approx(-cal.coef[2]) and cal.coef[0] > 0
    assert cal.figures["C"] is None and cal.figures["calibrated"]["auroc"] > 0.8
    sure, unsure = features(record(1.0, True, 0, -0.2)), features(record(0.2, False, 1, -1.5))
    assert 0.0 <= cal.probability(unsure) < cal.probability(sure) <= 1.0
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.method == "mean" and back.probability(sure) == pytest.approx(cal.probability(sure))
    with pytest.raises(UsageError, match="use one of logistic, isotonic, mean"):
        fit_calibration(labelled_set(), method="forest")


def test_too_few_records_or_one_class_is_refused() -> None:
    with pytest.raises(UsageError, match=f"at least {MIN_RECORDS}"):
        fit_calibration(labelled_set(10))
    with pytest.raises(UsageError, match="unknown signal\\(s\\) colour"):
        fit_calibration(labelled_set(), signals=["agreement", "colour"])
    two = fit_calibration(labelled_set(), signals=["agreement", "logprob_mean_greedy"])
    assert two.feature_names == ("agreement", "logprob_mean_greedy")
    with pytest.raises(UsageError, match=r"all 40 labelled answers are wrong: .*\(audit more, or easier, questions, "
                                         r"or a model that answers some right\)"):
        fit_calibration([record(0.4, False, i) for i in range(40)])
    with pytest.raises(UsageError, match=r"all 40 labelled answers are right: .*\(audit more, or harder, questions\)"):
        fit_calibration([record(0.8, True, i) for i in range(40)])


def test_the_file_round_trips_and_a_foreign_or_broken_one_is_refused(tmp_path: Path) -> None:
    cal = fit_calibration(labelled_set())
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal.to_dict()))
    back = load_calibration(path)
    probe = features(record(0.8, True, 3))
    assert back.probability(probe) == pytest.approx(cal.probability(probe))
    with pytest.raises(CalibrationFileError, match="not a ragguard calibration"):
        Calibration.from_dict({"format": "sklearn-pickle"})
    with pytest.raises(CalibrationFileError, match="unknown: \\['colour'\\]"):
        Calibration.from_dict({**cal.to_dict(), "features": ["colour"]})
    with pytest.raises(CalibrationFileError, match="'coef' has 1 values"):
        Calibration.from_dict({**cal.to_dict(), "coef": [1.0]})
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\x80\x04\x95 pickle bytes")
    with pytest.raises(ConfigError, match="is not JSON"):
        load_calibration(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "missing.json")


def test_a_process_keeps_the_calibration_it_first_read(tmp_path: Path) -> None:
    # An audit that runs while someone refits the file must not mix two calibrations (nor fail half way).
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(fit_calibration(labelled_set()).to_dict()))
    first = load_calibration(path)
    path.write_text('{"format": "something else"}')
    assert load_calibration(path) is first


def test_a_refused_calibration_stops_the_guard_before_any_model_loads(tmp_path: Path) -> None:
    from ragguard.pipeline import RagGuard

    bad = tmp_path / "cal.json"
    bad.write_text('{"format": "ragguard-calibration/1", "method": "forest"}')
    config = Config().replace("consistency", calibration=str(bad)).replace("generator", model="no/such-model")
    with pytest.raises(ConfigError, match="is refused: unknown method 'forest'"):
        RagGuard.from_config(config, retrieval=False)


def write_audit(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"half": ')
    return folder


def test_cli_writes_the_file_and_prints_the_figures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = labelled_set()
    audits = [write_audit(tmp_path / "a", rows[:60]), write_audit(tmp_path / "b", rows[60:])]
    assert len(read_labelled(audits)) == 120
    # A copied audit is not more evidence: its records count once, and the minimum cannot be met with copies.
    copies = [write_audit(tmp_path / f"copy{i}", rows[:10]) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="ragguard"):
        assert len(read_labelled([*copies, audits[0], audits[0]])) == 60
    assert f"{audits[0].resolve()} is named more than once: its records count once" in caplog.text
    with pytest.raises(UsageError, match=r"audit folder '.*nowhere' does not exist: pass folders written by"):
        read_labelled([tmp_path / "nowhere"])
    refused = CliRunner().invoke(app, ["calibrate", *map(str, copies), "--out", str(tmp_path / "c.json")])
    assert refused.exit_code == 2 and not (tmp_path / "c.json").exists()
    right = sum(r.get("reference_match") == "match" for r in read_labelled(copies))
    assert f"only 10 labelled records ({right} right, {10 - right} wrong)" in refused.output
    out = tmp_path / "calibration.json"
    result = CliRunner().invoke(app, ["calibrate", *map(str, audits), "--out", str(out), "--target-precision", "0.8"])
    assert result.exit_code == 0, result.output
    assert "calibrated confidence" in result.output and "threshold" in result.output
    chance = json.loads(out.read_text())["figures"]["ece_by_chance"]
    assert f"would show an ECE of {chance['median']:.3f} here by chance" in result.output
    low, high = json.loads(out.read_text())["figures"]["calibrated"]["auroc_95"]
    assert f"95 % bootstrap interval: {low:.3f}-{high:.3f}" in result.output
    assert "against the signal's usual direction" not in result.output  # every weight points the expected way
    data = json.loads(out.read_text())
    assert data["format"] == "ragguard-calibration/1" and data["figures"]["calibrated"]["auroc"] > 0.85
    # a target no threshold reaches (labels unrelated to the signals): say so, and what the data can give instead
    rng = random.Random(7)
    noise = [record(rng.choice([0.2, 0.6, 1.0]), rng.random() < 0.4, i, logprob=round(rng.gauss(-0.7, 0.3), 4))
             for i in range(80)]
    strict = CliRunner().invoke(app, ["calibrate", str(write_audit(tmp_path / "n", noise)), "--out",
                                      str(tmp_path / "strict.json"), "--target-precision", "0.95"])
    reach = json.loads((tmp_path / "strict.json").read_text())["figures"]["target"]["reachable"]
    assert strict.exit_code == 0 and "no confidence threshold" in strict.output and reach["precision"] < 1.0
    assert f"the best reachable: precision {reach['precision']:.2f} at coverage {reach['coverage']:.1%}" in strict.output
    few = CliRunner().invoke(app, ["calibrate", str(write_audit(tmp_path / "c", rows[:5])), "--out", str(out)])
    assert few.exit_code == 2 and "at least 30" in few.output


def test_cli_warns_of_a_weight_against_its_signals_direction(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = []
    for i in range(120):  # here a right answer is *less* probable: a weight the fit learns from such data
        right = rng.random() < 0.4
        agreement = rng.choice([0.6, 0.8, 1.0] if right else [0.2, 0.4, 0.6, 0.8])
        rows.append(record(agreement, right, i, logprob=round(rng.gauss(-1.0 if right else -0.4, 0.3), 4)))
    audit, out = write_audit(tmp_path / "a", rows), tmp_path / "cal.json"
    signals = ["--signals", "agreement,logprob_mean_greedy"]
    fitted = CliRunner().invoke(app, ["calibrate", str(audit), "--out", str(out), *signals])
    assert fitted.exit_code == 0, fitted.output
    assert ("warning: the fitted weight of logprob_mean_greedy points against the signal's usual direction"
            in fitted.stderr) and "warning" not in fitted.stdout  # messages on stderr, figures on stdout
    assert against_direction(Calibration.from_dict(json.loads(out.read_text()))) == ["logprob_mean_greedy"]
    as_json = CliRunner().invoke(app, ["calibrate", str(audit), "--out", str(out), *signals, "--json"])
    assert json.loads(as_json.output)["against_direction"] == ["logprob_mean_greedy"]
    mean = CliRunner().invoke(app, ["calibrate", str(audit), "--out", str(out), *signals, "--method", "mean"])
    assert mean.exit_code == 0 and "points against" not in mean.output  # equal weights in the fixed directions
    # (this data's logprob ranks backwards, so the equal-weight score ranks worse than the formula, and says so)
    assert "ranks wrong answers worse than the uncalibrated formula" in mean.stderr


def test_against_direction_reads_each_weight_with_its_signals_direction() -> None:
    def fitted(method: str, coef: tuple[float, ...]) -> Calibration:
        names = ("agreement", "findings", "logprob_mean_voted")
        return Calibration(method, names, (0.0,) * 3, (0.0,) * 3, (1.0,) * 3, coef, 0.0)

    # Toward "right": agreement and log-probability should weigh up, findings (a risk) down.
    assert against_direction(fitted("logistic", (0.4, -0.3, 0.2))) == []
    assert against_direction(fitted("logistic", (0.4, 0.3, -0.4))) == ["findings", "logprob_mean_voted"]
    assert against_direction(fitted("isotonic", (0.4, 0.3, 0.2))) == ["findings"]
    assert against_direction(fitted("mean", (0.4, 0.3, -0.4))) == []
    assert against_direction(fitted("logistic", (0.4, 1e-17, -1e-17))) == []  # constant signals: no weight


def test_check_with_a_calibration_gives_the_fitted_probability_and_gates_it(tmp_path: Path) -> None:
    cal = fit_calibration(labelled_set())
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal.to_dict()))
    answers = [{"text": "Yes, file form HR-07.", "logprobs": [-0.1, -0.2]}] * 5
    plain = check("Do I file form HR-07?", answers, "File form HR-07.", embedder=WordEmbedder())
    assert plain.calibrated is False and plain.calibration is None
    cfg = Config().replace("consistency", calibration=str(path), min_confidence=0.0)
    report = check("Do I file form HR-07?", answers, "File form HR-07.", embedder=WordEmbedder(), config=cfg)
    assert report.calibrated is True and report.calibration == {"file": str(path),
                                                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    expected = cal.probability(features(report.to_dict()))
    assert report.confidence == pytest.approx(expected, abs=1e-6) and report.confidence != plain.confidence
    assert report.to_dict()["calibrated"] is True and report.to_dict()["calibration"]["file"] == str(path)
    # Above every possible confidence: a warning under 'warn', no answer under 'abstain'.
    gated = check("Do I file form HR-07?", answers, "File form HR-07.", embedder=WordEmbedder(),
                  config=cfg.replace("consistency", min_confidence=1.0))
    assert gated.answer and any("below min_confidence 1.00" in w for w in gated.warnings)
    withheld = check("Do I file form HR-07?", answers, "File form HR-07.", embedder=WordEmbedder(),
                     config=cfg.replace("consistency", min_confidence=1.0, on_flagged="abstain"))
    assert withheld.verdict == "abstain" and withheld.answer == "" and withheld.confidence == 0.0
    assert any(w.startswith("abstained: the calibrated confidence") for w in withheld.warnings)


def test_auto_uses_the_shipped_calibration_for_the_embedded_model_only(tmp_path: Path) -> None:
    from ragguard.apps.calibration_io import EMBEDDED_CALIBRATION

    embedded = json.loads(EMBEDDED_CALIBRATION.read_text())["fitted_for"]["model_sha256"]
    assert resolve_calibration(Config(), model_sha256="ef" * 32) is None  # other weights
    assert resolve_calibration(Config().replace("consistency", calibration=None), model_sha256=embedded) is None
    assert resolve_calibration(Config().replace("generator", adapter="lora/"), model_sha256=embedded) is None
    # Answers from elsewhere (`check`, LangChain guards: no weights known) say nothing about the embedded model.
    assert resolve_calibration(Config()) is None
    shipped = resolve_calibration(Config(), model_sha256=embedded)  # ragguard/calibrations/embedded.json
    assert shipped is not None and shipped.fitted_for["model"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert shipped.fitted_for["setup_hash"] == Config().setup_hash()  # the default `ragguard ask` setup
    assert shipped.data["fitted_on"] == ["faq:dev", "reference:dev", "reference2:dev", "handbook2:dev", "handbook4:dev",
                                        "handbook5:dev", "kernel:dev", "maintguide:dev", "installguide:dev",
                                        "securing:dev", "debmake:dev"]  # dev splits only


def test_a_calibration_for_another_setup_says_so_in_the_record(caplog: pytest.LogCaptureFixture) -> None:
    cal = fit_calibration(labelled_set())
    same = Fingerprint(**{k: v for k, v in FINGERPRINT.items()}, versions={}, device="cpu")
    assert mismatches(cal, same.to_dict()) == []
    other = Fingerprint(**{**FINGERPRINT, "model": "big", "model_sha256": "cd" * 32, "adapter": "lora/"},
                        versions={}, device="cpu")
    report = Report("q", "a", "consistent", 1.0, 0.0, [], [], [], fingerprint=other, calibrated=True,
                    calibration={"file": "cal.json"})
    with caplog.at_level("WARNING", logger="ragguard.calibration"):
        annotate(report, cal)
    assert report.calibration["fitted_for_this_setup"] is False
    assert any(m.startswith("model: fitted for tiny") for m in report.calibration["mismatch"])
    assert any(m.startswith("adapter: fitted for None") for m in report.calibration["mismatch"])
    assert "fitted for another setup" in caplog.text
    # Another index folder is the same setup; another prompt is not.
    elsewhere = Config().replace("retrieval", index="/srv/our-index")
    assert cal.fitted_for["setup_hash"] == elsewhere.setup_hash() and "config_hash" not in cal.fitted_for
    assert mismatches(cal, {**FINGERPRINT, "config_hash": elsewhere.hash()}) == []
    reprompted = Config().replace("prompt", system="Answer in one word.")
    found = mismatches(cal, {**FINGERPRINT, "setup_hash": reprompted.setup_hash()})
    assert found and found[0].startswith("config (prompt, sampling or thresholds; fingerprint.setup_hash): fitted for")
    assert "samples" not in found[0]  # the same number of answers: the hash is all there is to say
    fewer = Config().replace("sampling", samples=3)
    found = mismatches(cal, {**FINGERPRINT, "setup_hash": fewer.setup_hash()}, samples=3)
    assert found[0].endswith("it drew 3 samples where the file was fitted on 5 per question "
                             "(--samples 5, or sampling.samples, gives its setup)")


def test_the_bootstrap_interval_brackets_the_auroc_and_narrows_with_more_answers() -> None:
    from sklearn.metrics import roc_auc_score

    rng = random.Random(0)

    def sample(n: int) -> tuple[list[float], list[bool]]:
        wrong = [rng.random() < 0.85 for _ in range(n)]
        return [rng.gauss(0.6 if w else 0.0, 1.0) for w in wrong], wrong

    risk, wrong = sample(150)
    low, high = auroc_interval(risk, wrong)
    assert low < roc_auc_score(wrong, risk) < high
    big_low, big_high = auroc_interval(*sample(1500))
    assert big_high - big_low < (high - low) / 2
    assert auroc_interval([0.1, 0.2], [True, True]) is None  # one class: no AUROC at all
    json.dumps(auroc_interval(risk, wrong))  # plain floats (the --json output)


@pytest.mark.parametrize("cells", [60, 2_000_000])  # two answers' counts at a time, or every resample at once
def test_each_bootstrap_auroc_is_scikit_learns_on_that_resample(cells: int) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    risk = np.round(rng.random(30), 1)  # many ties
    wrong = rng.random(30) < 0.7
    values = bootstrap_aurocs(risk, wrong, rounds=40, seed=3, cells=cells)
    draws, expected = np.random.default_rng(3), []
    for _ in range(40):
        pick = draws.integers(0, 30, 30)
        if 0 < wrong[pick].sum() < 30:
            expected.append(roc_auc_score(wrong[pick], risk[pick]))
    assert len(values) == len(expected) > 30
    assert np.allclose(values, expected, rtol=0, atol=1e-12)
    assert len(bootstrap_aurocs([0.2, 0.4, 0.4], [True, False, True], rounds=200)) < 200  # one-class draws skipped
    assert len(bootstrap_aurocs([], [])) == 0


def test_a_calibration_fitted_on_english_questions_says_so_for_a_chinese_one() -> None:
    from fakes import WordEmbedder

    from ragguard.apps.calibration_io import EMBEDDED_CALIBRATION
    from ragguard.core.consistency import ConsistencyChecker
    from ragguard.core.types import Sample

    cal = fit_calibration(labelled_set())
    assert cal.data["languages"] == ["en"]
    shipped = json.loads(EMBEDDED_CALIBRATION.read_text())["data"]
    assert shipped["languages"] == ["en"]  # the embedded default was fitted on the English Debian sets
    checker = ConsistencyChecker(WordEmbedder(), calibration=cal, calibration_note={"file": "cal.json"})
    samples = [Sample(text=t, seed=i, greedy=i == 0) for i, t in enumerate(["25 天。", "25 天。", "25 天。"])]
    zh = checker.check("我每年有几天年假？", samples, ["全职员工每年有 25 天年假。"])
    assert any(w.startswith("the calibration was fitted on English questions only") for w in zh.warnings)
    assert zh.calibration == {"file": "cal.json", "fitted_on_languages": ["en"]}  # what the audit summary counts
    en_samples = [Sample(text="25 days.", seed=i, greedy=i == 0) for i in range(3)]
    en = checker.check("How many days of leave do I get?", en_samples, ["Staff get 25 days of leave."])
    assert en.calibrated and not any("English questions only" in w for w in en.warnings)
    assert en.calibration == {"file": "cal.json"}


def test_answers_without_any_signal_the_calibration_reads_keep_the_formula_and_say_why() -> None:
    """Without context, the shipped file's three grounding signals are all missing: its probability would be one
    constant whether five answers agree or contradict. The formula stays, calibrated is false, a warning says why."""
    shipped = str(Path(__file__).parent.parent / "ragguard" / "calibrations" / "embedded.json")
    cfg = Config().replace("consistency", calibration=shipped, min_confidence=0.5)
    question = "How many days of annual leave do I get?"
    agree = check(question, ["25 days."] * 5, None, embedder=WordEmbedder(), config=cfg)
    split = check(question, ["25 days.", "10 days.", "40 days.", "No leave.", "I don't know."], None,
                  embedder=WordEmbedder(), config=cfg)
    assert (agree.calibrated, agree.confidence) == (False, 1.0) and (split.calibrated, split.confidence) == (False, 0.0)
    assert "none of the signals the calibration reads" in agree.calibration["not_applied"]
    assert any("pass the context to calibrate it" in w for w in agree.warnings)
    grounded = check(question, ["25 days."] * 3, "Staff get 25 days of annual leave.", embedder=WordEmbedder(), config=cfg)
    assert grounded.calibrated is True and "not_applied" not in grounded.calibration


def test_one_calibrated_answer_shows_one_confidence_in_its_field_and_its_warning() -> None:
    shipped = str(Path(__file__).parent.parent / "ragguard" / "calibrations" / "embedded.json")
    cfg = Config().replace("consistency", calibration=shipped, min_confidence=0.5)
    one = check("How many days of annual leave do I get?", ["25 days."], "Staff get 25 days of annual leave.",
                embedder=WordEmbedder(), config=cfg)
    assert one.confidence == 0.0
    assert any("the calibrated confidence 0.00 is below min_confidence 0.50" in w for w in one.warnings)
