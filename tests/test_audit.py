"""The batch audit: outputs, bad records, resume after kill -9, retries, filters, gates."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes import WordEmbedder

from ragguard.apps.audit import load_questions, match_reference, run_audit, summarize
from ragguard.apps.audit_summary import diff_audits
from ragguard.config import Config
from ragguard.core.metrics import auroc, histogram
from ragguard.core.protocols import Completion
from ragguard.errors import GenerationError, UsageError
from ragguard.pipeline import RagGuard

ANSWERS = {
    "Do I need a certificate?": ["Yes, ask HR for form HR-07."] * 3,
    "How many leave days?": ["You get 25 days.", "You get 30 days.", "You get 25 days."],
    "Where is the branch?": ["At 12 Quay Street."] * 3,
}


class TableGenerator:
    """Answers from a table keyed by the question in the prompt; can fail on demand."""

    name, device, adapter, model_sha256 = "table", "cpu", None, None

    def __init__(self, fail_on: set[str] | None = None, delay: float = 0.0) -> None:
        self.fail_on = fail_on or set()
        self.delay = delay
        self.asked: list[str] = []

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        question = messages[-1]["content"].split("Question: ")[-1]
        self.asked.append(question)
        time.sleep(self.delay)
        if question in self.fail_on:
            raise GenerationError("out of memory (simulated)")
        texts = ANSWERS.get(question, ["I do not know."] * len(seeds))
        return [Completion(texts[i % len(texts)], s) for i, s in enumerate(seeds)]


def make_guard(**kw) -> RagGuard:  # type: ignore[no-untyped-def]
    cfg = Config().replace("sampling", samples=3)
    return RagGuard(cfg, TableGenerator(**kw), WordEmbedder(), None, None)


def write_questions(path: Path) -> Path:
    rows = [
        {"id": "cert", "question": "Do I need a certificate?", "reference": "Yes, ask HR for form HR-07.", "tags": ["hr"]},
        "this line is not json",
        {"id": "leave", "question": "How many leave days?", "reference": "You get 25 days.", "tags": ["leave"]},
        {"id": "branch", "question": "Where is the branch?", "tags": ["payroll"]},
        {"id": "empty", "question": "   "},
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def write_valid_questions(path: Path) -> Path:
    """The three valid rows of :func:`write_questions` (a gate fails on invalid rows)."""
    rows = write_questions(path).read_text(encoding="utf-8").splitlines()
    path.write_text("".join(f"{r}\n" for r in rows if r.startswith("{") and '"   "' not in r), encoding="utf-8")
    return path


def read_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_audit_writes_every_output_and_reports_bad_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_audit(write_questions(tmp_path / "q.jsonl"), out, make_guard())
    for name in ("results.jsonl", "summary.json", "results.csv", "report.html", "audit.json"):
        assert (out / name).is_file(), name
    lines = read_lines(out)
    by_id = {r["id"]: r for r in lines}
    assert by_id["cert"]["verdict"] == "consistent" and by_id["cert"]["reference_match"] == "match"
    assert by_id["leave"]["verdict"] == "contradiction" and by_id["leave"]["reference_match"] == "match"
    assert by_id["branch"]["reference_match"] is None
    invalid = [r for r in lines if r["status"] == "invalid"]
    assert {r["line"] for r in invalid} == {2, 5}
    # An invalid record keeps its own id beside its line (the unparseable line has none).
    assert {r["line"]: r.get("record_id") for r in invalid} == {2: None, 5: "empty"}
    s = result.summary
    assert s["questions"] == 5 and s["answered"] == 3 and s["invalid"] == 2 and s["errors"] == 0
    assert s["verdicts"]["consistent"] == 2 and s["verdicts"]["contradiction"] == 1
    assert s["reference"]["with_reference"] == 2 and s["reference"]["accuracy"] == 1.0
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["cert", "line-2", "leave", "branch", "line-5"]
    assert [r["tags"] for r in rows] == ["hr", "", "leave", "payroll", ""]  # a spreadsheet filters by tag
    records = {r["id"]: r for r in read_lines(out)}
    assert all(row["warnings"] == " | ".join(records[row["id"]].get("warnings") or []) for row in rows)
    assert any(row["warnings"] for row in rows)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert "How many leave days?" in page and "25 days" in page


def test_records_match_asking_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_audit(write_questions(tmp_path / "q.jsonl"), out, make_guard())
    alone = make_guard().ask("How many leave days?").to_dict()
    record = next(r for r in read_lines(out) if r["id"] == "leave")
    assert {k: record[k] for k in alone if k != "timings"} == {k: v for k, v in alone.items() if k != "timings"}


def test_refuses_to_overwrite_without_resume(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "out", make_guard())
    with pytest.raises(UsageError, match="--resume"):
        run_audit(q, tmp_path / "out", make_guard())


def test_resume_skips_done_questions_and_redoes_a_torn_line(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    # Keep cert + the invalid line, then a half-written 'leave' record (as kill -9 leaves it).
    kept = [line for line in lines if json.loads(line)["id"] in ("cert", "line-2")]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n" + '{"id": "leave", "status": "o', encoding="utf-8")
    guard = make_guard()
    result = run_audit(q, out, guard, resume=True)
    assert guard.generator.asked == ["How many leave days?", "Where is the branch?"]  # type: ignore[attr-defined]
    assert result.ran == 2 and result.skipped == 1
    ids = [r["id"] for r in read_lines(out)]
    assert sorted(ids) == sorted(["cert", "line-2", "leave", "branch", "line-5"])  # no duplicates, nothing lost


def test_a_blank_line_or_a_missing_last_line_feed_loses_no_record_and_diff_writes_nothing(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    lines = (out / "results.jsonl").read_bytes().split(b"\n")[:-1]
    edited = b"\n".join(lines[:1] + [b"", b"  "] + lines[1:])  # blank lines, and no line feed after the last record
    (out / "results.jsonl").write_bytes(edited)
    diff_audits(out, out)
    assert (out / "results.jsonl").read_bytes() == edited  # a comparison never writes
    guard = make_guard()
    result = run_audit(q, out, guard, resume=True)
    assert guard.generator.asked == [] and result.skipped == 3  # type: ignore[attr-defined]
    kept = [line for line in (out / "results.jsonl").read_bytes().split(b"\n") if line.strip()]
    assert kept == lines and len(lines) == 5  # every record, the last one given its line feed
    # A line in the middle that is not a record is named, not cut off with everything after it.
    (out / "results.jsonl").write_bytes(b"\n".join(lines[:2] + [b"[1]"] + lines[2:]) + b"\n")
    for read in (lambda: diff_audits(out, out), lambda: run_audit(q, out, make_guard(), resume=True)):
        with pytest.raises(UsageError, match=r"results.jsonl line 3 is a JSON list, not a record: .*fix or delete"):
            read()
    assert len((out / "results.jsonl").read_bytes().split(b"\n")) == 7  # nothing cut


def test_resume_asks_again_a_line_fixed_or_edited_since_and_keeps_one_record_per_question(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    rows = [json.loads(line) if line.startswith("{") else line for line in q.read_text(encoding="utf-8").splitlines()]
    rows[1] = {"question": "How many leave days?"}  # the bad line, fixed: still line-2
    rows[2] = {**rows[2], "question": "Where is the branch?"}  # 'leave' edited: its old answer is another question's
    rows[3] = "branch, broken by a careless edit"  # now line-4, invalid; the old 'branch' record is kept, not lost
    q.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    guard, notes = make_guard(), []
    result = run_audit(q, out, guard, resume=True, progress=notes.append)
    assert guard.generator.asked == ["How many leave days?", "Where is the branch?"]  # type: ignore[attr-defined]
    assert result.ran == 2 and result.skipped == 1
    assert any("2 question(s) changed" in n and "asked again" in n for n in notes)
    lines = read_lines(out)
    assert [r["id"] for r in lines] == ["cert", "line-2", "leave", "line-4", "line-5", "branch"]  # one each, input order
    by_id = {r["id"]: r for r in lines}
    assert by_id["line-2"]["status"] == "ok" and by_id["leave"]["question"] == "Where is the branch?"
    assert by_id["line-4"]["status"] == "invalid" and by_id["branch"]["status"] == "ok"
    assert result.summary["invalid"] == 2  # line-4 and line-5 (blank); the fixed line-2 no longer
    again = make_guard()
    assert run_audit(q, out, again, resume=True).ran == 0 and again.generator.asked == []  # type: ignore[attr-defined]
    assert read_lines(out) == lines


def test_errors_are_kept_apart_and_retried_only_on_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="ragguard.audit"):
        result = run_audit(q, out, make_guard(fail_on={"Where is the branch?"}), batch_questions=8)
    assert result.summary["errors"] == 1 and result.summary["answered"] == 2
    # The slower one-by-one pass says why it is needed.
    assert [r.getMessage() for r in caplog.records] == [
        "a batch of 3 questions (cert ... branch) failed (GenerationError: out of memory (simulated)): "
        "asking them one by one"]
    assert result.summary["error_records"][0]["id"] == "branch"
    again = make_guard()
    run_audit(q, out, again, resume=True)
    assert again.generator.asked == []  # type: ignore[attr-defined]
    retry = make_guard()
    result = run_audit(q, out, retry, resume=True, retry_errors=True)
    assert retry.generator.asked == ["Where is the branch?"]  # type: ignore[attr-defined]
    assert result.summary["errors"] == 0 and result.summary["answered"] == 3


def test_an_error_row_with_accepted_answers_is_not_asked_again_by_a_plain_resume(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "b", "question": "Where is the branch?", "reference": "Main St",
                             "answers": ["Main Street"]}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_audit(q, out, make_guard(fail_on={"Where is the branch?"}))
    notes: list[str] = []
    again = make_guard()
    result = run_audit(q, out, again, resume=True, progress=notes.append)
    assert again.generator.asked == [] and result.skipped == 1  # type: ignore[attr-defined]
    assert not [n for n in notes if "changed" in n]
    assert read_lines(out)[-1]["answers"] == ["Main Street"]


def test_a_config_error_stops_the_audit_and_keeps_what_was_written(tmp_path: Path) -> None:
    from ragguard.errors import ConfigError

    class BrokenAfterOne:
        """A guard whose setup breaks after the first question (a calibration file refused, say)."""

        embedder = WordEmbedder()
        config = Config()

        def __init__(self) -> None:
            self.inner, self.asked = make_guard(), 0

        def ask(self, question: str):  # type: ignore[no-untyped-def]
            self.asked += 1
            if self.asked > 1:
                raise ConfigError("consistency.calibration: cal.json is refused: unknown method 'mean'")
            return self.inner.ask(question)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.inner, name)

    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    guard = BrokenAfterOne()
    with pytest.raises(ConfigError, match="is refused"):
        run_audit(q, out, guard, batch_questions=1)
    assert guard.asked == 2  # stopped at the first failure, not one refusal per remaining question
    kept = {r["id"]: r["status"] for r in read_lines(out)}
    # The two malformed rows are reported as before; the question asked under the broken setup is not
    # marked invalid, so --resume asks it once the setup is fixed.
    assert kept == {"line-2": "invalid", "line-5": "invalid", "cert": "ok"}



@pytest.mark.parametrize("batch", [1, 8])
def test_a_model_that_cannot_load_stops_the_audit_instead_of_an_error_per_question(tmp_path: Path, batch: int) -> None:
    from ragguard.errors import ModelLoadError

    guard = make_guard()

    def cannot_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ModelLoadError("generator.model '/nowhere' is not a folder: check the path")

    guard.ask = guard.ask_many = cannot_load  # type: ignore[method-assign]
    out = tmp_path / "out"
    with pytest.raises(ModelLoadError, match="is not a folder"):
        run_audit(write_questions(tmp_path / "q.jsonl"), out, guard, batch_questions=batch)
    assert {r["status"] for r in read_lines(out)} == {"invalid"}  # the two bad lines; no error record per question


def test_only_reruns_a_subset(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    guard = make_guard()
    run_audit(q, out, guard, only="verdict:contradiction")
    assert guard.generator.asked == ["How many leave days?"]  # type: ignore[attr-defined]
    guard = make_guard()
    run_audit(q, out, guard, only="tag:hr,payroll")
    assert sorted(guard.generator.asked) == ["Do I need a certificate?", "Where is the branch?"]  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="--only"):
        run_audit(q, out, make_guard(), only="colour:red")
    assert sorted(r["id"] for r in read_lines(out)) == ["branch", "cert", "leave", "line-2", "line-5"]  # no duplicate
    with pytest.raises(UsageError, match="no question in .* has the id 'zzz'"):
        run_audit(q, out, make_guard(), only="id:cert,zzz")  # a typo is said, not run as nothing
    for only, message in (("tag:nosuch", r"has the tag 'nosuch' \(its tags are hr, leave, payroll\)"),
                          ("verdict:contradiciton", r"'contradiciton' is not a verdict \(use consistent, inconsistent"),
                          ("status:eror", r"'eror' is not a status \(use ok, error\)"),
                          ("status:invalid", r"invalid rows are read again on every run, so fixing the row in"),
                          ("bogus", r"verdict:VERDICT\[,VERDICT...\] or status:STATUS\[,STATUS...\]"),
                          ("id:", r"names no id: give one or more, e.g. --only id:q01,q02")):
        with pytest.raises(UsageError, match=message):
            run_audit(q, out, make_guard(), only=only)
    notes: list[str] = []
    run_audit(q, out, make_guard(), only="tag:hr", progress=notes.append)
    assert "1 question(s) match --only tag:hr; the other 2 keep their records" in notes


def test_only_on_a_new_folder_does_not_count_the_unselected_as_done(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    notes: list[str] = []
    result = run_audit(q, out, make_guard(), only="tag:hr", progress=notes.append)
    assert (result.ran, result.skipped, result.unselected) == (1, 0, 2)
    assert f"1 question(s) match --only tag:hr; the other 2 are not asked and have no record in {out}" in notes
    notes.clear()
    result = run_audit(q, out, make_guard(), only="id:leave", progress=notes.append)  # cert has a record now
    assert (result.ran, result.skipped, result.unselected) == (1, 1, 1)
    assert "1 question(s) match --only id:leave; of the other 2, 1 keep their records and 1 have none" in notes


def test_only_selects_an_id_or_tag_that_holds_a_comma(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    rows = [{"id": "faq,3", "question": "Do I need a certificate?", "tags": ["hr, payroll"]},
            {"id": "faq", "question": "How many leave days?", "tags": ["hr"]},
            {"id": "3", "question": "Where is the branch?"}]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    for only, asked in (("id:faq,3", ["Do I need a certificate?"]), ("tag:hr, payroll", ["Do I need a certificate?"]),
                        ("id:faq", ["How many leave days?"]), ("tag:hr", ["How many leave days?"])):
        guard = make_guard()
        run_audit(q, out, guard, only=only)
        assert guard.generator.asked == asked, only  # type: ignore[attr-defined]


def test_only_is_trimmed_as_ids_and_tags_are(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    rows = [{"id": "faq,3", "question": "Do I need a certificate?", "tags": [" hr "]},
            {"id": " faq ", "question": "How many leave days?"},
            {"id": "3", "question": "Where is the branch?"}]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    both, whole = ["How many leave days?", "Where is the branch?"], ["Do I need a certificate?"]
    for only, asked in (("id:faq, 3", both), ("id: faq , 3 ", both), ("id:faq,3 ", whole), ("id: faq,3", whole),
                        (" id :faq,3", whole), ("tag:hr", whole), ("tag: hr", whole)):
        guard = make_guard()
        run_audit(q, out, guard, only=only)
        assert guard.generator.asked == asked, only  # type: ignore[attr-defined]


def test_a_refused_run_leaves_nothing_new_behind(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    for out, options in ((tmp_path / "new", {"only": "id:nope"}), (tmp_path / "a" / "b" / "new", {"only": "tag:x"}),
                         (tmp_path / "c", {"only": "colour:red"}), (tmp_path / "d", {"batch_questions": 0})):
        with pytest.raises(UsageError):
            run_audit(q, out, make_guard(), **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.jsonl"]  # no folder, no audit.json, no lock file
    guard = make_guard()

    def cannot_load() -> None:
        from ragguard.errors import ModelLoadError

        raise ModelLoadError("generator.model '/nowhere' is not a folder: check the path")

    guard.generator.load = cannot_load  # type: ignore[attr-defined]  # fails while choosing the batch, before a record
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"id": "cert", "question": "Do I need a certificate?"}) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="is not a folder"):
        run_audit(clean, tmp_path / "e", guard)
    assert not (tmp_path / "e").exists()
    run_audit(q, tmp_path / "out", make_guard())
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(UsageError, match="has the id 'nope'"):
        run_audit(q, tmp_path / "out", make_guard(), only="id:nope")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # an existing folder is untouched


def test_fail_under_gate(tmp_path: Path) -> None:
    q = write_valid_questions(tmp_path / "q.jsonl")
    passed = run_audit(q, tmp_path / "a", make_guard(), fail_under=0.5)
    assert not passed.gate_failed and passed.summary["gates"]["passed"] is True
    failed = run_audit(q, tmp_path / "b", make_guard(), fail_under=0.9)
    assert failed.gate_failed and "consistent share" in failed.gate_messages[0]


def test_a_rerun_without_fail_under_keeps_the_folders_gate_checked_over_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import ragguard.apps.cli.audit as cli_audit
    from ragguard.apps.cli import app

    q = write_valid_questions(tmp_path / "q.jsonl")
    failed = run_audit(q, tmp_path / "out", make_guard(), fail_under=0.9)
    assert failed.gate_failed
    rerun = run_audit(q, tmp_path / "out", make_guard(), only="id:cert")  # no --fail-under: its exit status is 0
    assert not rerun.gate_failed and rerun.gate_inherited
    gates = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["gates"]
    assert gates == {**failed.summary["gates"], "inherited": True}  # not dropped: the audit still fails its gate
    assert 'id="gate">gate --fail-under 0.90 (set by an earlier run' in (tmp_path / "out" / "report.html").read_text(
        encoding="utf-8")
    assert run_audit(q, tmp_path / "out", make_guard(), resume=True, fail_under=0.5).summary["gates"] == {
        "fail_under": 0.5, "passed": True, "failures": []}  # a gate given now replaces it
    run_audit(q, tmp_path / "cli", make_guard(), fail_under=0.9)
    monkeypatch.setattr(cli_audit, "guard_for", lambda config, index: make_guard())
    result = CliRunner().invoke(app, ["audit", str(q), "--out", str(tmp_path / "cli"), "--only", "id:cert"])
    assert result.exit_code == 0, result.output
    assert (f"gate --fail-under 0.9 of an earlier run into {tmp_path / 'cli'}: fails now: consistent share 0.67 is "
            "below --fail-under 0.90") in result.stderr and "gate failed" not in result.stderr


def test_fail_under_fails_when_nothing_was_answered_or_a_question_failed(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.csv"  # every row invalid: a gate that passed would hide the broken file
    renamed.write_text("query,expected\nWho approves overtime?,manager\nHow many leave days?,25\n", encoding="utf-8")
    nothing = run_audit(renamed, tmp_path / "a", make_guard(), fail_under=0.1)
    assert nothing.gate_failed and nothing.summary["gates"]["passed"] is False
    assert nothing.gate_messages == ["no question was answered (2 invalid, 0 errors): nothing passed --fail-under"]
    q = write_questions(tmp_path / "q.jsonl")
    errored = run_audit(q, tmp_path / "b", make_guard(fail_on={"Where is the branch?"}), fail_under=0.1)
    assert errored.gate_failed and errored.gate_messages[0].startswith("1 question(s) ended in error")


def test_fail_under_fails_on_invalid_rows_and_on_answers_whose_consistency_was_not_measured(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")  # two invalid rows (lines 2 and 5) beside three good ones
    gated = run_audit(q, tmp_path / "a", make_guard(), fail_under=0.1)
    assert gated.gate_failed and gated.summary["gates"]["passed"] is False
    assert gated.gate_messages == ["2 row(s) of the question file are invalid and were not measured (line 2, 5; "
                                   "summary.json lists why): fix them and rerun with --resume"]
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "leave", "question": "How many leave days?"}) + "\n", encoding="utf-8")
    guard = make_guard()
    guard.config = guard.config.replace("sampling", samples=1)  # one answer: every verdict is "consistent"
    single = run_audit(good, tmp_path / "b", guard, fail_under=0.9)
    assert single.summary["consistent_share"] == 1.0 and single.gate_failed
    assert single.gate_messages == ["1 question(s) drew one answer, so their consistency was not measured: "
                                    "audit with --samples 2 or more"]


def test_resume_accepts_other_request_settings_but_not_another_server(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "out", make_guard())
    patient = make_guard()  # as an upstream error advises: "raise generator.max_retries"
    patient.config = patient.config.replace("generator", max_retries=8, timeout=300.0, concurrency=2)
    run_audit(q, tmp_path / "out", patient, resume=True, retry_errors=True)
    elsewhere = make_guard()
    elsewhere.config = elsewhere.config.replace("generator", base_url="http://other:8000/v1")
    with pytest.raises(UsageError, match=r"other settings: generator.base_url"):
        run_audit(q, tmp_path / "out", elsewhere, resume=True)


def test_resume_refuses_another_config(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "out", make_guard())
    other = make_guard()
    other.config = other.config.replace("sampling", samples=4)
    samples = make_guard().config.sampling.samples
    with pytest.raises(UsageError, match=rf"holds results made with other settings: sampling.samples {samples} then, "
                                         r"4 now. Rerun with the settings it was made with to resume"):
        run_audit(q, tmp_path / "out", other, resume=True)
    # An audit.json written before it kept the settings: still refused by its config hash, with both hashes.
    info = json.loads((tmp_path / "out" / "audit.json").read_text(encoding="utf-8"))
    for key in ("setup_hash", "settings"):
        info.pop(key)
    (tmp_path / "out" / "audit.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(UsageError, match=r"other settings \(\w+ vs \w+\)"):
        run_audit(q, tmp_path / "out", other, resume=True)
    run_audit(q, tmp_path / "out", make_guard(), resume=True)  # the same settings resume


def test_the_config_hash_reads_the_index_folder_however_it_is_spelled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.config import Config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "idx").mkdir()
    spelled = [Config().replace("retrieval", index=i).hash() for i in ("idx", "./idx", str(tmp_path / "idx"))]
    assert len(set(spelled)) == 1
    assert Config().replace("retrieval", index="other").hash() != spelled[0]


def test_resume_refuses_an_index_rebuilt_at_the_same_path(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text('{"counts": {"chunks": 3}}', encoding="utf-8")
    guard = make_guard()
    guard.index_path = str(index)
    run_audit(q, tmp_path / "out", guard)
    run_audit(q, tmp_path / "out", guard, resume=True)  # the same index: resumed
    (index / "manifest.json").write_text('{"counts": {"chunks": 4}}', encoding="utf-8")  # `index add` since
    with pytest.raises(UsageError, match=r"another version of the index .*index \(manifest sha256:\w+ vs "
                                         r"sha256:\w+: it was rebuilt or updated since\): use a new --out folder"):
        run_audit(q, tmp_path / "out", guard, resume=True)


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    n = 12
    with open(questions, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"q{i:02d}", "question": "Do I need a certificate?" if i % 2 else "Where is the branch?"}) + "\n")
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_audit import make_guard
        from ragguard.apps.audit import run_audit
        run_audit({str(questions)!r}, {str(out)!r}, make_guard(delay=0.15))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.time() + 60
    while time.time() < deadline:
        path = out / "results.jsonl"
        if path.exists() and path.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_lines(out))
    assert 4 <= done_before < n, "the run should have been killed part-way"
    guard = make_guard()
    run_audit(questions, out, guard, resume=True)
    ids = [r["id"] for r in read_lines(out)]
    assert sorted(ids) == [f"q{i:02d}" for i in range(n)]
    assert len(guard.generator.asked) == n - done_before  # type: ignore[attr-defined]


def test_reference_matching() -> None:
    e = WordEmbedder()
    q = "Do I need a certificate?"
    assert match_reference("Yes, ask HR for form HR-07.", "Yes, ask HR for form HR-07 first.", q, e, 0.6).label == "match"
    assert match_reference("No, you do not need it.", "Yes, you must ask HR for it first.", q, e, 0.6).label == "contradicts"
    assert match_reference("Bananas are yellow.", "Yes, you must ask HR for it first.", q, e, 0.6).label == "mismatch"


def test_an_answer_that_restates_the_question_does_not_match_a_long_reference() -> None:
    e = WordEmbedder()
    q = "What is the deadline for submitting an expense claim?"
    ref = "Expense claims must be submitted on form FIN-03 within 30 calendar days of the expense date."
    echo = match_reference("The deadline for submitting an expense claim.", ref, q, e, -1.0)  # any cosine would match
    assert (echo.label, echo.rule) == ("mismatch", "restates_question")
    assert match_reference("Within 30 calendar days, on form FIN-03.", ref, q, e, -1.0).label == "match"
    assert match_reference("Yes.", ref, q, e, -1.0).rule == "embedding"  # no content words: the cosine decides


def test_short_references_are_read_lexically_and_the_rule_is_recorded() -> None:
    q, e = "Which form do I need?", WordEmbedder()
    decided = match_reference("You need to fill in form HR-07 and send it to HR.", "HR-07", q, e, 0.6)
    assert (decided.label, decided.rule, decided.score) == ("match", "containment", 1.0)
    assert match_reference("You need form FIN-02.", "HR-07", q, e, 0.6).label == "mismatch"
    # a long answer that contains a short reference: an embedding threshold would never reach it
    answer = "They call the fiftieth wedding anniversary the golden anniversary, and it is celebrated widely."
    assert match_reference(answer, "golden anniversary", "What is the 50th called?", e, 0.99).label == "match"
    assert match_reference("", "Yes.", q, e, 0.6).label == "mismatch"
    # A web address is read lexically: another address is not it, however close their embeddings.
    url = "https://kernel-team.pages.debian.net/kernel-handbook/"
    other = match_reference("It is published at https://www.linuxkernal.org/.", url, q, e, -1.0)
    assert (other.label, other.rule) == ("mismatch", "token_f1")
    assert match_reference(f"See {url} for it.", url, q, e, 2.0).rule == "containment"


def test_accepted_answers_and_yes_no_references(tmp_path: Path) -> None:
    e = WordEmbedder()
    q = "How many packages does Debian include?"
    assert match_reference("It has 59,100 packages.", "more than 59100", q, e, 0.6).label == "mismatch"
    decided = match_reference("It has 59,100 packages.", "more than 59100", q, e, 0.6, answers=["59,100"])
    assert (decided.label, decided.rule) == ("match", "containment")
    yes_no = "Do I need a certificate?"
    assert match_reference("Yes, and there is no fee.", "no", yes_no, e, 0.6).label == "contradicts"
    # In the input: a list, or "|"-separated in a CSV cell; recorded with the result.
    rows = [{"id": "n", "question": q, "reference": "more than 59100", "answers": ["59,100"]},
            {"id": "bad", "question": q, "reference": "x", "answers": [3]},
            {"id": "orphan", "question": q, "answers": ["59,100"]}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    questions, invalid = load_questions(path)
    assert [x.answers for x in questions] == [("59,100",)]
    assert {r["id"]: r["error"] for r in invalid} == {
        "line-2": "'answers' must be a list of strings (accepted forms of the reference)",
        "line-3": "'answers' needs a 'reference' (the main expected answer)"}
    csv = tmp_path / "q.csv"
    csv.write_text('id,question,reference,answers\nn,How many?,more than 59100,"59100 | 59,100"\n', encoding="utf-8")
    assert load_questions(csv)[0][0].answers == ("59100", "59,100")


def test_a_misspelled_question_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "questoin": "How many?"}\n{"id": "b", "text": "How many?"}\n', encoding="utf-8")
    assert [r["error"] for r in load_questions(path)[1]] == [
        "missing or empty 'question' field (it has 'questoin': rename it to 'question')",
        "missing or empty 'question' field"]  # nothing like it: no guess


def test_line_separators_inside_a_question_and_deep_nesting_keep_every_row_and_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = ['{"id": "a", "question": "Who approves\u2028overtime?\u0085 Or leave?"}',  # raw U+2028 and NEL
            "[" * 100_000 + "]" * 100_000,
            '{"id": "z", "question": "x", "reference": 7}']
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    questions, invalid = load_questions(path)
    assert [(q.id, q.line, q.question) for q in questions] == [("a", 1, "Who approves\u2028overtime?\u0085 Or leave?")]
    assert [(r["id"], r["error"]) for r in invalid] == [("line-2", "nested too deeply to be a record"),
                                                        ("line-3", "'reference' must be a string")]
    path.write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(UsageError, match=r"is not UTF-8 \(line 2 holds the byte 0xe9\): save it as UTF-8"):
        load_questions(path)


def test_an_id_of_another_line_cannot_take_the_id_a_bad_row_gets(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "cert", "question": "Do I need a certificate?"}\n[1, 2]\n'
                 '{"id": "line-2", "question": "How many leave days?"}\n{"id": "line-4", "question": "Where is the branch?"}\n',
                 encoding="utf-8")
    questions, invalid = load_questions(q)
    assert [x.id for x in questions] == ["cert", "line-4"]  # its own line's id is the id it would get anyway
    assert [(r["id"], r["error"]) for r in invalid] == [
        ("line-2", "expected a JSON object, got list"),
        ("line-3", "id 'line-2' is reserved for the row on line 2: choose another id")]
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    guard = make_guard()
    again = run_audit(q, out, guard, resume=True)  # one record per id, and a resume asks nothing again
    assert guard.generator.asked == [] and again.skipped == 2  # type: ignore[attr-defined]
    assert sorted(r["id"] for r in read_lines(out)) == ["cert", "line-2", "line-3", "line-4"]


def test_csv_rows_keep_their_first_line_a_swallowing_quote_is_warned_and_a_semicolon_header_is_read(tmp_path: Path) -> None:
    quotes = tmp_path / "q.csv"
    quotes.write_text('id,question\nq1,Who approves?\n\nq4,"Quote at start, and a comma\nq5,Last question?\n',
                      encoding="utf-8")
    questions, invalid = load_questions(quotes)
    assert [(q.id, q.line) for q in questions] == [("q1", 2), ("q4", 4)] and invalid == []
    assert questions[1].warnings == ("the 'question' cell spans lines 4-5: if that is an unclosed quote, the rows "
                                     "it swallowed were not read",)
    semi = tmp_path / "semi.csv"
    semi.write_text("id;question;reference\nq1;Who approves overtime?;your manager\n", encoding="utf-8")
    assert [(q.id, q.question, q.reference) for q in load_questions(semi)[0]] == [
        ("q1", "Who approves overtime?", "your manager")]
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match="holds no records: give it a header line with a 'question' column"):
        run_audit(tmp_path / "empty.csv", tmp_path / "out", make_guard())


def test_metrics() -> None:
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.5], [True]) is None
    # Beyond _PAIRS pairs scikit-learn sorts instead of counting: the same value, ties counted half.
    import random

    from ragguard.core import metrics

    draw = random.Random(3)
    scores = [draw.choice([0.1, 0.25, 0.5, 0.75, 0.9]) for _ in range(1200)]
    wrong = [draw.random() < 0.4 for _ in range(1200)]
    assert sum(wrong) * (1200 - sum(wrong)) > metrics._PAIRS
    pos = [x for x, w in zip(scores, wrong, strict=True) if w]
    neg = [x for x, w in zip(scores, wrong, strict=True) if not w]
    counted = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))
    assert auroc(scores, wrong) == pytest.approx(counted, abs=1e-12)
    assert histogram([0.0, 0.19, 0.2, 0.99, 1.0]) == {"0.0-0.2": 2, "0.2-0.4": 1, "0.4-0.6": 0, "0.6-0.8": 0, "0.8-1.0": 2}
    assert summarize([])["consistent_share"] is None
    assert summarize([])["sampling"] == {"mean_drawn": None, "total_drawn": 0}


def test_summary_counts_samples_drawn_and_adaptive_stops() -> None:
    def rec(n: int, adaptive: dict | None = None) -> dict:
        r = {"status": "ok", "id": f"q{n}", "verdict": "consistent", "samples": [{"text": "x"}] * n}
        return {**r, "adaptive": adaptive} if adaptive else r

    fixed = summarize([rec(5), rec(5), {"status": "ok", "id": "off", "verdict": "abstain", "samples": []}])
    assert fixed["sampling"] == {"mean_drawn": 5.0, "total_drawn": 10}
    adaptive = summarize([rec(5, {"drawn": 5, "of": 8, "stopped": "agreed"}),
                          rec(3, {"drawn": 3, "of": 8, "stopped": "contradiction"}),
                          rec(8, {"drawn": 8, "of": 8, "stopped": "all drawn"})])
    assert adaptive["sampling"]["mean_drawn"] == round(16 / 3, 6)
    assert adaptive["sampling"]["adaptive"] == {"share_of_fixed_n": round(16 / 24, 6),
                                                "stopped": {"agreed": 1, "contradiction": 1, "all drawn": 1}}


def test_audit_diff_lists_changed_questions_and_figures(tmp_path: Path) -> None:
    from ragguard.apps.audit import diff_audits

    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "old", make_guard())
    ANSWERS_BACKUP = dict(ANSWERS)
    try:
        ANSWERS["How many leave days?"] = ["You get 25 days."] * 3  # the "tuned" model now agrees
        run_audit(q, tmp_path / "new", make_guard())
    finally:
        ANSWERS.clear()
        ANSWERS.update(ANSWERS_BACKUP)
    d = diff_audits(tmp_path / "old", tmp_path / "new")
    assert [c["id"] for c in d["changed"]] == ["leave"]
    assert d["changed"][0]["old"]["verdict"] == "contradiction" and d["changed"][0]["new"]["verdict"] == "consistent"
    assert d["figures"]["verdicts.contradiction"]["change"] == -1
    assert d["figures"]["consistent_share"]["change"] == pytest.approx(1 / 3, abs=1e-6)
    with pytest.raises(UsageError, match="not an audit folder"):
        diff_audits(tmp_path, tmp_path / "new")


def test_audit_diff_pairs_rows_without_an_id_by_their_question(tmp_path: Path) -> None:
    (tmp_path / "n1.csv").write_text("question\nHow many leave days?\nWhere is the branch?\nWhere is the branch?\n",
                                     encoding="utf-8")
    (tmp_path / "n2.csv").write_text("question\nDo I need a certificate?\nHow many leave days?\nWhere is the branch?\n"
                                     "Where is the branch?\n", encoding="utf-8")  # a question inserted on top
    run_audit(tmp_path / "n1.csv", tmp_path / "n1", make_guard())
    run_audit(tmp_path / "n2.csv", tmp_path / "n2", make_guard())
    d = diff_audits(tmp_path / "n1", tmp_path / "n2")
    # Keyed by line, line-2 was "leave days" in OLD and "certificate" in NEW: two false changes, the new one hidden.
    assert d["changed"] == [] and d["compared"] == 3  # the repeated question pairs first with first
    assert d["only_new"] == ["line-2"] and d["only_old"] == []
    ANSWERS_BACKUP = dict(ANSWERS)
    try:
        ANSWERS["How many leave days?"] = ["You get 25 days."] * 3
        run_audit(tmp_path / "n2.csv", tmp_path / "n3", make_guard())
    finally:
        ANSWERS.clear()
        ANSWERS.update(ANSWERS_BACKUP)
    d = diff_audits(tmp_path / "n1", tmp_path / "n3")
    assert [(c["id"], c.get("old_id"), c["old"]["verdict"], c["new"]["verdict"]) for c in d["changed"]] == [
        ("line-3", "line-2", "contradiction", "consistent")]
    q = write_questions(tmp_path / "q.jsonl")  # its invalid rows (lines 2 and 5) move down a line with a new top row
    run_audit(q, tmp_path / "q1", make_guard())
    q.write_text(json.dumps({"id": "top", "question": "Where is the branch?"}) + "\n" + q.read_text(), encoding="utf-8")
    run_audit(q, tmp_path / "q2", make_guard())
    d = diff_audits(tmp_path / "q1", tmp_path / "q2")
    assert d["only_new"] == ["top"] and d["only_old"] == [] and d["changed"] == [] and d["compared"] == 5
    ided = tmp_path / "ids.jsonl"  # explicit ids stay the key: the same id with another text is that question changed
    ided.write_text(json.dumps({"id": "q1", "question": "How many leave days?"}) + "\n", encoding="utf-8")
    run_audit(ided, tmp_path / "i1", make_guard())
    ided.write_text(json.dumps({"id": "q1", "question": "Where is the branch?"}) + "\n", encoding="utf-8")
    run_audit(ided, tmp_path / "i2", make_guard())
    d = diff_audits(tmp_path / "i1", tmp_path / "i2")
    assert [c["id"] for c in d["changed"]] == ["q1"] and d["only_new"] == d["only_old"] == []


def test_cli_audit_diff_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.apps.cli as cli

    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "a", make_guard())
    run_audit(q, tmp_path / "b", make_guard())
    called = {}
    real_app = cli.app
    monkeypatch.setattr(cli, "app", lambda **kw: called.setdefault("argv", list(sys.argv)) and 0)
    monkeypatch.setattr(sys, "argv", ["ragguard", "audit", "diff", str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert called["argv"][1:2] == ["audit-diff"] and done.value.code == 0
    from typer.testing import CliRunner

    result = CliRunner().invoke(real_app, ["audit-diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["changed"] == []
    text = CliRunner().invoke(real_app, ["audit-diff", str(tmp_path / "a"), str(tmp_path / "b")]).stdout
    assert text.startswith("5 records in both (invalid lines included); 0 changed\nfigures: none changed\n")
    other = make_guard()
    other.config = other.config.replace("sampling", samples=4)
    run_audit(q, tmp_path / "c", other)
    d = json.loads(CliRunner().invoke(real_app, ["audit-diff", str(tmp_path / "a"), str(tmp_path / "c"), "--json"]).stdout)
    assert list(d["setup_changed"]) == ["config_hash"]
    text = CliRunner().invoke(real_app, ["audit-diff", str(tmp_path / "a"), str(tmp_path / "c")]).stdout
    old, new = d["setup_changed"]["config_hash"]["old"], d["setup_changed"]["config_hash"]["new"]
    assert text.startswith(f"the runs differ in their settings: sampling.samples 3 -> 4 (config {old} -> {new}; changes "
                           "may come from it)\n5 records")
    assert d["settings_changed"] == {"sampling.samples": {"old": 3, "new": 4}}


def test_cli_audit_diff_names_added_and_dropped_questions_settings_unmeasured_figures_and_regressions(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    run_audit(write_questions(tmp_path / "q.jsonl"), tmp_path / "old", make_guard())
    new = tmp_path / "new.jsonl"  # the invalid rows fixed away, "branch" now fails, "canteen" added
    new.write_text("\n".join(json.dumps(r) for r in [
        {"id": "cert", "question": "Do I need a certificate?", "reference": "Yes, ask HR for form HR-07."},
        {"id": "leave", "question": "How many leave days?", "reference": "You get 25 days."},
        {"id": "branch", "question": "Where is the branch?"},
        {"id": "canteen", "question": "Is there a canteen?"}]) + "\n", encoding="utf-8")
    ANSWERS_BACKUP = dict(ANSWERS)
    try:
        ANSWERS["Do I need a certificate?"] = ["Yes, ask HR for form HR-07.", "No, you never need one.",
                                               "No, you never need one."]  # the new model contradicts itself
        guard = make_guard(fail_on={"Where is the branch?"})
        guard.config = guard.config.replace("sampling", seed=1)
        run_audit(new, tmp_path / "new", guard)
    finally:
        ANSWERS.clear()
        ANSWERS.update(ANSWERS_BACKUP)
    args = ["audit-diff", str(tmp_path / "old"), str(tmp_path / "new")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output  # a report by default; the gate is asked for
    lines = result.stdout.splitlines()
    assert lines[0].startswith("the runs differ in their settings: sampling.seed 0 -> 1 (config ")
    assert "  branch: consistent -> error  (status, verdict, answer)" in lines
    assert "only in NEW (1): canteen (consistent)" in lines
    assert "only in OLD (2): line-2 (invalid), line-5 (invalid)" in lines
    assert "  errors: 0 -> 1 (+1)" in lines and "  invalid: 2 -> 0 (-2)" in lines  # counts change by whole numbers
    assert "  reference.accuracy_consistent: 1.0 -> n/a" in lines  # a figure no longer measured is a change
    # one line per question ("cert" regressed in two ways); "branch" errors now: not measured is worse
    assert lines[lines.index("regressions (2 question(s), 2 figure(s)):") + 1:] == [
        "  cert: consistent -> contradiction; reference match -> contradicts", "  branch: consistent -> error",
        "  consistent share 0.667 -> 0.333 (-0.333)", "  reference accuracy 1.000 -> 0.500 (-0.500)"]
    gated = CliRunner().invoke(app, [*args, "--fail-on-regression", "--json"])
    assert gated.exit_code == 1 and "4 regression(s)" in gated.stderr and "2 question(s), 2 figure(s)" in gated.stderr
    d = json.loads(gated.stdout)
    assert d["regressions"] == [  # the plain lines scripts read, one per question and aspect, as before
        "cert: consistent -> contradiction", "cert: reference match -> contradicts", "branch: consistent -> error",
        "consistent share 0.667 -> 0.333 (-0.333)", "reference accuracy 1.000 -> 0.500 (-0.500)"]
    assert [r["id"] for r in d["added"]] == ["canteen"] and d["only_old"] == ["line-2", "line-5"]
    assert d["settings_changed"] == {"sampling.seed": {"old": 0, "new": 1}}
    same = CliRunner().invoke(app, ["audit-diff", str(tmp_path / "old"), str(tmp_path / "old"), "--fail-on-regression"])
    assert same.exit_code == 0 and "regressions" not in same.stdout
    broken = tmp_path / "broken.csv"  # every row invalid (a renamed column): nothing measured is not "no change"
    broken.write_text("query\nDo I need a certificate?\n", encoding="utf-8")
    run_audit(broken, tmp_path / "broken", make_guard())
    text = CliRunner().invoke(app, ["audit-diff", str(tmp_path / "old"), str(tmp_path / "broken")]).stdout
    assert "  consistent_share: 0.666667 -> n/a" in text.splitlines()
    assert "  consistent share 0.667 -> n/a (not measured in NEW)" in text.splitlines()


def test_the_default_batch_is_one_for_a_model_on_this_cpu_so_records_are_those_asked_alone() -> None:
    from ragguard.apps.audit import DEFAULT_BATCH, default_batch

    class Lazy:
        """A generator whose device is known only once loaded."""

        device = "unloaded"

        def __init__(self, device: str) -> None:
            self.placed = device

        def load(self) -> None:
            self.device = self.placed

    class Guard:
        def __init__(self, generator: object) -> None:
            self.generator = generator

    assert default_batch(Guard(Lazy("cpu"))) == 1  # loaded first: "unloaded" would have meant batching
    assert default_batch(Guard(Lazy("NVIDIA H100 80GB HBM3"))) == DEFAULT_BATCH == 8
    assert default_batch(Guard(object())) == 8  # a server backend: requests in flight together
    assert default_batch(make_guard()) == 1  # the table generator says "cpu"


def test_batched_audit_gives_the_same_records(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "one", make_guard(), batch_questions=1)
    run_audit(q, tmp_path / "many", make_guard(), batch_questions=8)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "timings"} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "one")) == strip(read_lines(tmp_path / "many"))
    with pytest.raises(UsageError, match="--batch"):
        run_audit(q, tmp_path / "bad", make_guard(), batch_questions=0)




def test_a_question_that_is_not_a_string_or_has_no_word_is_named_for_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": 123}\n{"id": "b", "question": "？！。"}\n{"id": "c", "question": "年假？"}\n',
                    encoding="utf-8")
    questions, invalid = load_questions(path)
    assert [q.id for q in questions] == ["c"]
    assert [r["error"] for r in invalid] == [
        "'question' must be a string, not int",
        "'question' has no word in it, only punctuation or symbols: '？！。'"]


def test_resume_refuses_answers_from_other_adapter_or_model_weights_at_the_same_path(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")

    def guard(adapter_sha: str, model_sha: str = "m" * 64) -> RagGuard:
        g = make_guard()
        g.generator.adapter, g.generator.adapter_sha256 = "adapters/prod", adapter_sha  # type: ignore[attr-defined]
        g.generator.model_sha256 = model_sha  # type: ignore[attr-defined]
        return g

    run_audit(q, tmp_path / "out", guard("a" * 64))
    assert {r["fingerprint"]["adapter_sha256"] for r in read_lines(tmp_path / "out") if r["status"] == "ok"} == {"a" * 64}
    before = (tmp_path / "out" / "results.jsonl").read_bytes()
    # `tune --out adapters/prod` again: same config (same path), other weights
    with pytest.raises(UsageError, match=r"other adapter weights than the ones loaded now \(adapter_sha256 "
                                         r"aaaaaaaaaaaaaaaa then, bbbbbbbbbbbbbbbb now"):
        run_audit(q, tmp_path / "out", guard("b" * 64), resume=True)
    with pytest.raises(UsageError, match="other model weights"):
        run_audit(q, tmp_path / "out", guard("a" * 64, model_sha="n" * 64), resume=True)
    assert (tmp_path / "out" / "results.jsonl").read_bytes() == before
    assert run_audit(q, tmp_path / "out", guard("a" * 64), resume=True).ran == 0  # the same weights resume


def test_diff_names_other_adapter_weights_behind_the_same_config(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    for out, sha in (("old", "a" * 64), ("new", "b" * 64)):
        g = make_guard()
        g.generator.adapter, g.generator.adapter_sha256 = "adapters/prod", sha  # type: ignore[attr-defined]
        run_audit(q, tmp_path / out, g)
    d = diff_audits(tmp_path / "old", tmp_path / "new")
    assert d["setup_changed"] == {"adapter_sha256": {"old": "a" * 64, "new": "b" * 64}}  # the config hash is equal


def test_cli_audit_seed_sets_the_base_seed_as_the_config_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ragguard.apps.cli.audit as cli_audit
    from ragguard.apps.cli import app

    q = write_valid_questions(tmp_path / "q.jsonl")
    monkeypatch.setattr(cli_audit, "guard_for", lambda config, index: make_guard())
    for out, extra in (("s0", []), ("s7", ["--seed", "7"])):
        result = CliRunner().invoke(app, ["audit", str(q), "--out", str(tmp_path / out), *extra])
        assert result.exit_code == 0, result.output
    settings = [json.loads((tmp_path / out / "audit.json").read_text(encoding="utf-8"))["settings"]
                for out in ("s0", "s7")]
    assert (settings[0]["sampling.seed"], settings[1]["sampling.seed"]) == (0, 7)
    seeds = [{tuple(r["fingerprint"]["seeds"]) for r in read_lines(tmp_path / out) if r["status"] == "ok"}
             for out in ("s0", "s7")]
    assert seeds[0].isdisjoint(seeds[1])  # other samples drawn


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "=1+1", "question": "Tell me about HR?", "reference": "@SUM(A1)"}) + "\n",
                 encoding="utf-8")
    guard = make_guard()
    ANSWERS["Tell me about HR?"] = ['=HYPERLINK("http://x","click")'] * 3
    try:
        run_audit(q, tmp_path / "out", guard)
    finally:
        del ANSWERS["Tell me about HR?"]
    row = next(csv.DictReader((tmp_path / "out" / "results.csv").open(encoding="utf-8")))
    assert (row["id"], row["answer"], row["reference"]) == ("'=1+1", "'=HYPERLINK(\"http://x\",\"click\")", "'@SUM(A1)")
    assert read_lines(tmp_path / "out")[0]["answer"] == '=HYPERLINK("http://x","click")'  # the JSON keeps it as is


def test_ids_zero_and_ids_that_are_no_text_or_hold_control_characters(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    rows = [{"id": 0, "question": "How many leave days?"}, {"id": False, "question": "Where is the branch?"},
            {"id": "a\nb", "question": "Do I need a certificate?"}]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    questions, invalid = load_questions(q)
    assert [x.id for x in questions] == ["0"]  # an id 0 is an id, not a missing one
    assert [r["error"] for r in invalid] == [
        "'id' must be a string or a whole number, not bool",
        "'id' holds a control character (a newline, a tab, an escape): remove it"]


def test_terminal_output_escapes_control_characters_from_data(tmp_path: Path) -> None:
    import io

    from ragguard.progress import ProgressBar

    log = io.StringIO()
    bar = ProgressBar(2, log, live=False)
    bar.advance("error", "q2 GenerationError: HTTP 500 \x1b[2J\x1b]0;owned\x07")
    bar.note("server said \x1b[31mred\nsecond line")
    assert "\x1b" not in log.getvalue() and "\\x1b[2J" in log.getvalue()
    assert log.getvalue().count("\n") == 2  # one line each


def test_diff_counts_a_question_that_errors_now_as_a_regression(tmp_path: Path) -> None:
    q = write_valid_questions(tmp_path / "q.jsonl")
    run_audit(q, tmp_path / "old", make_guard())
    run_audit(q, tmp_path / "new", make_guard(fail_on={"How many leave days?"}))
    d = diff_audits(tmp_path / "old", tmp_path / "new")
    assert "leave: contradiction -> error" in d["regressions"]  # answered before (flagged or not), not now


def test_results_jsonl_holds_one_record_per_line_for_any_reader(tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 are legal raw in JSON, but ``str.splitlines`` (and older JavaScript)
    ends a line at them: an answer pasted from a web page must not split its record in two."""
    odd = "Ask HR\u2028for form HR-07.\u2029Then\u0085wait."
    ANSWERS["Line breaks?"] = [odd] * 3
    try:
        q = tmp_path / "q.jsonl"
        q.write_text(json.dumps({"id": "odd", "question": "Line breaks?"}) + "\n", encoding="utf-8")
        out = tmp_path / "out"
        run_audit(q, out, make_guard())
        text = (out / "results.jsonl").read_text(encoding="utf-8")
        lines = text.splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["answer"] == odd
    finally:
        del ANSWERS["Line breaks?"]


def test_resume_accepts_the_adapter_hash_older_versions_recorded_for_the_same_folder(tmp_path: Path) -> None:
    from ragguard.generation.sources import adapter_weights_sha256, weights_sha256

    q = write_questions(tmp_path / "q.jsonl")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    (adapter / "parity-reference.safetensors").write_bytes(b"probe logits")
    old, new = weights_sha256(adapter), adapter_weights_sha256(adapter)  # every *.safetensors then, the weights now
    assert old != new

    def guard(adapter_sha: str) -> RagGuard:
        g = make_guard()
        g.generator.adapter, g.generator.adapter_sha256 = str(adapter), adapter_sha  # type: ignore[attr-defined]
        return g

    run_audit(q, tmp_path / "out", guard(old))
    assert run_audit(q, tmp_path / "out", guard(new), resume=True).ran == 0  # the same folder, hashed the old way
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
    with pytest.raises(UsageError, match="other adapter weights"):
        run_audit(q, tmp_path / "out", guard(adapter_weights_sha256(adapter)), resume=True)


def test_an_id_with_whitespace_around_it_is_the_trimmed_id_with_a_warning(tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    rows = [{"id": " cert ", "question": "Do I need a certificate?"}, {"id": "cert", "question": "Where is the branch?"},
            {"id": "\tleave\n", "question": "How many leave days?"}]
    q.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    questions, invalid = load_questions(q)
    assert [(x.id, x.warnings) for x in questions] == [
        ("cert", ("'id' ' cert ' has whitespace around it: it is read as 'cert'",)),
        ("leave", ("'id' '\\tleave\\n' has whitespace around it: it is read as 'leave'",))]
    assert [(r["line"], r["error"]) for r in invalid] == [(2, "duplicate id 'cert'")]
    run_audit(q, tmp_path / "out", make_guard())
    first = read_lines(tmp_path / "out")[0]
    assert first["id"] == "cert" and first["warnings"][0].startswith("'id' ' cert ' has whitespace")
