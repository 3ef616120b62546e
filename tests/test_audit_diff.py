"""`ragguard audit diff` at scale: a verdict transition table, rewordings counted, regressions per question with a
tolerance on the figures, and the questions files named."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragguard.apps.audit_summary import diff_audits
from ragguard.apps.cli import app


def rec(qid: str, verdict: str, answer: str = "A", match: str | None = "match", status: str = "ok") -> dict:
    if status != "ok":
        return {"id": qid, "status": status, "error": "HTTP 500", "verdict": None, "answer": None,
                "reference_match": None}
    return {"id": qid, "status": "ok", "question": f"{qid}?", "verdict": verdict, "answer": answer,
            "reference_match": match, "confidence": 0.5, "agreement": 0.5}


def write_audit(folder: Path, records: list[dict], questions_file: str = "q.jsonl", sha: str = "a" * 64) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (folder / "audit.json").write_text(json.dumps({"input": questions_file, "input_sha256": sha}), encoding="utf-8")
    return folder


OLD = [rec("a", "consistent"), rec("b", "consistent"), rec("c", "inconsistent", match="mismatch"),
       rec("d", "inconsistent", match=None), rec("e", "consistent"), rec("f", "consistent"), rec("g", "consistent"),
       rec("h", "consistent")]
NEW = [rec("a", "inconsistent", "A2"),  # flagged now: a regression
       rec("b", "consistent", "A reworded"),  # the same verdict and reference match: a rewording
       rec("c", "inconsistent", "A2", match="match"),  # now matches its reference: a change, not a regression
       rec("d", "inconsistent", "A reworded", match=None),  # a rewording
       rec("e", "consistent", "A2", match="mismatch"),  # lost its reference match: a regression
       rec("f", "contradiction", "A2", match="contradicts"),  # two ways worse: one question
       rec("g", "error", status="error"),  # answered before, not measured now
       rec("h", "consistent")]


def test_diff_counts_transitions_change_kinds_and_regressed_questions(tmp_path: Path) -> None:
    d = diff_audits(write_audit(tmp_path / "old", OLD), write_audit(tmp_path / "new", NEW))
    assert d["transitions"] == [  # most frequent first, then by name; unchanged verdicts included
        {"from": "consistent", "to": "consistent", "count": 3}, {"from": "inconsistent", "to": "inconsistent",
                                                                  "count": 2},
        {"from": "consistent", "to": "contradiction", "count": 1}, {"from": "consistent", "to": "error", "count": 1},
        {"from": "consistent", "to": "inconsistent", "count": 1}]
    assert {c["id"]: c["kind"] for c in d["changed"]} == {"a": "verdict", "b": "answer", "c": "reference",
                                                          "d": "answer", "e": "reference", "f": "verdict",
                                                          "g": "verdict"}
    assert d["changed_counts"] == {"verdict": 3, "reference": 2, "answer": 2}
    report = d["regression"]
    assert [(q["id"], q["aspects"]) for q in report["questions"]] == [
        ("a", ["verdict"]), ("e", ["reference_match"]), ("f", ["verdict", "reference_match"]), ("g", ["status"])]
    assert report["questions"][2]["old"] == {"status": "ok", "verdict": "consistent", "reference_match": "match"}
    assert report["questions"][2]["new"] == {"status": "ok", "verdict": "contradiction", "reference_match": "contradicts"}
    # 8 questions, consistent 6 -> 2 and accuracy 5/6 -> 2/5: both beyond the tolerance
    assert [(f["figure"], f["within_tolerance"]) for f in report["figures"]] == [("consistent_share", False),
                                                                                ("reference.accuracy", False)]
    assert report["failing"] == 4 + 2
    # the plain lines of before stay: one per question and aspect
    assert d["regressions"][:5] == ["a: consistent -> inconsistent", "e: reference match -> mismatch",
                                    "f: consistent -> contradiction", "f: reference match -> contradicts",
                                    "g: consistent -> error"]


def test_cli_diff_puts_the_transition_table_first_and_counts_rewordings(tmp_path: Path) -> None:
    old, new = write_audit(tmp_path / "old", OLD), write_audit(tmp_path / "new", NEW)
    result = CliRunner().invoke(app, ["audit-diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:7] == [
        "8 records in both (invalid lines included); 7 changed (3 verdict, 2 reference match only, 2 answer only)",
        "verdict OLD -> NEW:",
        "  consistent -> contradiction  1",
        "  consistent -> error          1",
        "  consistent -> inconsistent   1",
        "  unchanged: consistent 3, inconsistent 2",
        "verdict changed (3):"]
    assert lines[7:10] == ["  f: consistent -> contradiction  (verdict, answer, reference_match)",
                           "  g: consistent -> error  (status, verdict, answer, reference_match)",
                           "  a: consistent -> inconsistent  (verdict, answer)"]
    assert lines[10:13] == ["reference match changed, same verdict (2):",
                            "  c: inconsistent, reference mismatch -> match  (answer, reference_match)",
                            "  e: consistent, reference match -> mismatch  (answer, reference_match)"]
    assert ("answer reworded, same verdict and reference match: 2 (consistent 1, inconsistent 1); --all or --json "
            "lists them") in lines
    assert not any(line.startswith(("  b:", "  d:")) for line in lines)  # counted, not listed
    regressions = lines[lines.index("regressions (4 question(s), 2 figure(s)):") + 1:]
    assert regressions[:4] == ["  a: consistent -> inconsistent", "  e: reference match -> mismatch",
                               "  f: consistent -> contradiction; reference match -> contradicts",
                               "  g: consistent -> error"]
    everything = CliRunner().invoke(app, ["audit-diff", str(old), str(new), "--all"]).stdout.splitlines()
    listed = everything[everything.index("answer reworded, same verdict and reference match (2: consistent 1, "
                                         "inconsistent 1):") + 1:][:2]
    assert listed == ["  b: consistent  (answer)", "  d: inconsistent  (answer)"]
    as_json = json.loads(CliRunner().invoke(app, ["audit-diff", str(old), str(new), "--json"]).stdout)
    assert len(as_json["changed"]) == 7  # --json lists every changed question


def test_a_figure_drop_within_the_tolerance_is_reported_and_does_not_fail_the_gate(tmp_path: Path) -> None:
    # One question that errored in OLD is answered, flagged, in NEW: no question regressed, and the consistent
    # share drops from 199/199 = 1.0 to 199/200 = 0.995, which the old output printed as "1.00 -> 0.99" and failed.
    old = write_audit(tmp_path / "old", [rec(f"q{i}", "consistent", match=None) for i in range(199)]
                      + [rec("late", "", status="error")])
    new = write_audit(tmp_path / "new", [rec(f"q{i}", "consistent", match=None) for i in range(199)]
                      + [rec("late", "inconsistent", match=None)])
    args = ["audit-diff", str(old), str(new), "--fail-on-regression"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "within --tolerance 0.01 (not a regression): consistent share 1.000 -> 0.995 (-0.005)" in result.stdout
    assert "regressions (" not in result.stdout
    d = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert d["regressions"] == [] and d["regression"]["failing"] == 0
    assert d["regression"]["figures"] == [{"figure": "consistent_share", "old": 1.0, "new": 0.995, "change": -0.005,
                                           "within_tolerance": True}]
    strict = CliRunner().invoke(app, [*args, "--tolerance", "0"])  # any drop fails, as before
    assert strict.exit_code == 1
    assert "regressions (0 question(s), 1 figure(s)):" in strict.stdout
    assert "1 regression(s)" in strict.stderr and "beyond --tolerance 0" in strict.stderr
    assert CliRunner().invoke(app, [*args, "--tolerance", "0.004"]).exit_code == 1
    assert CliRunner().invoke(app, [*args, "--tolerance", "0.005"]).exit_code == 0  # a drop of exactly it is within
    refused = CliRunner().invoke(app, [*args, "--tolerance", "2"])
    assert refused.exit_code == 2


def test_diff_names_the_questions_files(tmp_path: Path) -> None:
    old = write_audit(tmp_path / "old", OLD, "sets/faq.jsonl", "a" * 64)
    new = write_audit(tmp_path / "new", OLD, "sets/faq.csv", "b" * 64)
    same_name = write_audit(tmp_path / "edited", OLD, "sets/faq.jsonl", "c" * 64)
    text = CliRunner().invoke(app, ["audit-diff", str(old), str(new)]).stdout
    assert text.splitlines()[0] == ("the runs differ in their questions file: sets/faq.jsonl -> sets/faq.csv "
                                    "(sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb; changes may come from it)")
    text = CliRunner().invoke(app, ["audit-diff", str(old), str(same_name)]).stdout
    assert text.splitlines()[0] == ("the runs differ in their questions file: sets/faq.jsonl was edited between the "
                                    "runs (sha256 aaaaaaaaaaaa -> cccccccccccc; changes may come from it)")
    d = diff_audits(old, new)
    assert d["input_files"] == {"old": "sets/faq.jsonl", "new": "sets/faq.csv"}
    assert d["setup_changed"]["input_sha256"] == {"old": "a" * 64, "new": "b" * 64}  # the full hashes, as before
