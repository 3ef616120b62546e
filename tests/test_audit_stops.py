"""An audit that stops early: a server that went away, Ctrl-C or SIGTERM, a full disk; and the checks the CLI makes
before it loads anything (another run holds the folder) or after (errors without a gate)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from test_audit import ANSWERS, make_guard, read_lines

from ragguard.apps.audit import ErrorStreak, run_audit
from ragguard.errors import OutputError, UpstreamError

QUESTIONS = list(ANSWERS)


def write_rows(path: Path, n: int) -> Path:
    rows = [{"id": f"q{i:02d}", "question": QUESTIONS[i % 3], "reference": ANSWERS[QUESTIONS[i % 3]][0]} for i in range(n)]
    # the same three questions asked under other ids: each id is a question of its own
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class DownAfter:
    """A guard whose model server goes away after ``up`` questions (and, with ``back``, returns after that many
    failed ones)."""

    def __init__(self, up: int, back: int | None = None) -> None:
        self.inner, self.up, self.back, self.asked = make_guard(), up, back, 0
        self.embedder, self.config = self.inner.embedder, self.inner.config

    def ask(self, question: str):  # type: ignore[no-untyped-def]
        self.asked += 1
        down = self.asked > self.up and (self.back is None or self.asked <= self.up + self.back)
        if down:
            raise UpstreamError("cannot connect to the OpenAI-compatible server at http://127.0.0.1:9/v1 "
                                "(Connection refused): start the server or fix generator.base_url", "unreachable",
                                "127.0.0.1:9")
        return self.inner.ask(question)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_server_that_goes_away_stops_the_audit_and_resume_asks_the_failed_questions_again(tmp_path: Path) -> None:
    q = write_rows(tmp_path / "q.jsonl", 12)
    out = tmp_path / "out"
    guard = DownAfter(up=4)
    with pytest.raises(ErrorStreak, match=r"3 questions in a row ended in error \(q04 \.\.\. q06; the last: "
                                          r"UpstreamError: cannot connect.*4 answer\(s\) of this run are saved"):
        run_audit(q, out, guard, batch_questions=1, stop_after_errors=3)
    assert guard.asked == 7  # not one error per remaining question
    assert [r["id"] for r in read_lines(out)] == ["q00", "q01", "q02", "q03"]  # the failed three are not recorded
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["partial"]["reason"] == "error" and summary["partial"]["not_done"] == 8
    assert summary["answered"] == 4 and "3 questions in a row" in summary["partial"]["message"]
    assert (out / "results.csv").exists() and "q03" in (out / "report.html").read_text(encoding="utf-8")
    again = make_guard()
    result = run_audit(q, out, again, resume=True, batch_questions=1)
    assert result.ran == 8 and result.skipped == 4 and result.summary["errors"] == 0
    assert result.summary["partial"] is None
    assert [r["id"] for r in read_lines(out)] == [f"q{i:02d}" for i in range(12)]


def test_errors_apart_from_each_other_or_fewer_than_the_limit_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    q = write_rows(tmp_path / "q.jsonl", 10)
    # two failures in a row, then the server is back: both are recorded once the next question succeeds
    result = run_audit(q, tmp_path / "a", DownAfter(up=3, back=2), batch_questions=1, stop_after_errors=3)
    assert result.summary["errors"] == 2 and result.summary["answered"] == 8 and result.summary["partial"] is None
    assert [r["id"] for r in read_lines(tmp_path / "a") if r["status"] == "error"] == ["q03", "q04"]
    # the last questions fail, fewer than the limit: recorded at the end
    result = run_audit(q, tmp_path / "b", DownAfter(up=8), batch_questions=1, stop_after_errors=3)
    assert result.summary["errors"] == 2 and result.summary["partial"] is None
    # 0: never stop
    result = run_audit(q, tmp_path / "c", DownAfter(up=2), batch_questions=1, stop_after_errors=0)
    assert result.summary["errors"] == 8 and len(read_lines(tmp_path / "c")) == 10


def test_a_failing_batch_asked_one_by_one_stops_inside_the_batch(tmp_path: Path) -> None:
    q = write_rows(tmp_path / "q.jsonl", 16)
    guard = DownAfter(up=0)

    def batch_fails(questions):  # type: ignore[no-untyped-def]
        raise UpstreamError("the server at http://127.0.0.1:9/v1 did not answer within 5 s", "timeout", "127.0.0.1:9")

    guard.inner.ask_many = batch_fails  # type: ignore[method-assign]
    with pytest.raises(ErrorStreak):
        run_audit(q, tmp_path / "out", guard, batch_questions=8, stop_after_errors=3)
    assert guard.asked == 3  # not the other five of the batch, nor the next batch


def test_a_negative_stop_after_errors_is_refused(tmp_path: Path) -> None:
    from ragguard.errors import UsageError

    with pytest.raises(UsageError, match="--stop-after-errors must be 0"):
        run_audit(write_rows(tmp_path / "q.jsonl", 2), tmp_path / "out", make_guard(), stop_after_errors=-1)


def test_an_interrupt_writes_the_summary_csv_and_report_of_what_is_done(tmp_path: Path) -> None:
    q = write_rows(tmp_path / "q.jsonl", 6)
    guard = make_guard()
    real, asked = guard.ask, []

    def ask(question):  # type: ignore[no-untyped-def]
        asked.append(question)
        if len(asked) == 4:
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM turned into one by the CLI
        return real(question)

    guard.ask = ask  # type: ignore[method-assign]
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_audit(q, out, guard, batch_questions=1, fail_under=0.1)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["partial"] == {"reason": "interrupted", "not_done": 3, "message": "interrupted"}
    assert summary["answered"] == 3
    assert summary["gates"]["passed"] is False  # a set half measured does not pass a gate
    assert "stopped (interrupted) before 3 question(s) were answered" in summary["gates"]["failures"][0]
    assert len((out / "results.csv").read_text(encoding="utf-8").splitlines()) == 4
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "3 question(s) were not answered" in report
    assert not list(out.glob("*.tmp"))


def _fail_fsync_of(name: str, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make ``os.fsync`` of the file called ``name`` (in the audit's writers) raise ``error``."""
    import ragguard.apps.audit_io as audit_io

    real = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(name):
            raise error
        real(fd)

    monkeypatch.setattr(audit_io.os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc")
@pytest.mark.parametrize(("error", "raised", "message"), [
    (OSError(errno.ENOSPC, "No space left on device"), OutputError,
     r"cannot write .*report\.html \(No space left on device\): free space on that disk .* then rerun with --resume"),
    (KeyboardInterrupt(), KeyboardInterrupt, None),  # a second Ctrl-C while the outputs are written
])
def test_a_full_disk_or_an_interrupt_while_finishing_leaves_the_last_runs_outputs_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, raised: type, message: str | None
) -> None:
    q = write_rows(tmp_path / "q.jsonl", 3)
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    before = {name: (out / name).read_bytes() for name in ("summary.json", "results.csv", "report.html")}
    _fail_fsync_of("report.html.tmp", monkeypatch, error)
    with pytest.raises(raised, match=message):
        run_audit(q, out, make_guard(), only="id:q01")
    assert not list(out.glob("*.tmp"))  # no partial report.html.tmp filling the disk
    # summary.json and results.csv were written too, but are only renamed in with the report: the folder does
    # not mix two runs' outputs
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads file names from /proc")
def test_a_full_disk_while_answering_keeps_the_records_and_names_the_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.apps.audit_io as audit_io

    q = write_rows(tmp_path / "q.jsonl", 5)
    out = tmp_path / "out"
    real, writes = os.write, []

    def write(fd: int, data) -> int:  # type: ignore[no-untyped-def]
        if os.readlink(f"/proc/self/fd/{fd}").endswith("results.jsonl"):
            writes.append(fd)
        if len(writes) == 3 and fd == writes[-1]:  # the third record: half of it fits, then the disk is full
            real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(audit_io.os, "write", write)
    with pytest.raises(OutputError, match=r"cannot write .*results\.jsonl \(No space left on device\)"):
        run_audit(q, out, make_guard(), batch_questions=1)
    monkeypatch.undo()
    result = run_audit(q, out, make_guard(), resume=True, batch_questions=1)  # the torn line is cut off and redone
    assert result.skipped == 2 and result.ran == 3
    assert [r["id"] for r in read_lines(out)] == [f"q{i:02d}" for i in range(5)]


def test_cli_refuses_a_locked_folder_before_loading_anything_and_warns_of_errors_without_a_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import ragguard.apps.cli as cli
    from ragguard.locking import WriterLock

    q = write_rows(tmp_path / "q.jsonl", 4)
    out = tmp_path / "out"
    built = []
    monkeypatch.setattr(cli, "build_guard", lambda config, index: built.append(1) or DownAfter(up=3))
    with WriterLock(out, what="audit folder"):
        # flock conflicts between two opens of the file, in one process as in two
        result = CliRunner().invoke(cli.app, ["audit", str(q), "--out", str(out)])
    assert result.exit_code == 2 and "is being written by another process" in result.stderr
    assert built == []  # refused before the models would load
    result = CliRunner().invoke(cli.app, ["audit", str(q), "--out", str(out), "--batch", "1"])
    assert result.exit_code == 0, result.stderr
    assert ("ragguard: warning: 1 question(s) ended in error and were not measured (results.jsonl holds why): "
            "rerun with --resume --retry-errors") in result.stderr
    monkeypatch.setattr(cli, "build_guard", lambda config, index: DownAfter(up=0))
    result = CliRunner().invoke(cli.app, ["audit", str(q), "--out", str(tmp_path / "down"), "--batch", "1",
                                          "--stop-after-errors", "2"])
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("ragguard: error:")]
    assert len(errors) == 1 and errors[0].startswith("ragguard: error: 2 questions in a row ended in error")


def test_the_finishing_step_does_not_read_results_jsonl_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.apps.audit as audit

    q = write_rows(tmp_path / "q.jsonl", 4)
    reads: list[Path] = []
    real = audit.read_results
    monkeypatch.setattr(audit, "read_results", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    run_audit(q, tmp_path / "out", make_guard())
    assert reads == []  # a new folder: nothing to read (at 10,000 rows a read and parse took seconds)
    result = run_audit(q, tmp_path / "out", make_guard(), only="id:q02")
    assert len(reads) == 1 and result.ran == 1  # the records to continue from, once
    assert [r["id"] for r in read_lines(tmp_path / "out")] == ["q00", "q01", "q02", "q03"]
