"""The audit progress bar: rate, ETA, live counts per verdict; in place on a terminal, lines elsewhere."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from test_audit import make_guard, read_lines, write_questions, write_valid_questions

from ragguard.apps.audit import run_audit
from ragguard.progress import ProgressBar, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_carry_counts_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(4, out, live=False, clock=clock)
    clock.now += 30
    bar.advance("consistent", "q1 agreement 1.00")
    clock.now += 30
    bar.advance("contradiction", "q2 agreement 0.60")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[#####---------------] 1/4  25% | 2.0 q/min | ETA 1m30s | consistent 1")
    assert lines[0].endswith("q1 agreement 1.00")
    assert lines[1].endswith("2/4  50% | 2.0 q/min | ETA 1m00s | consistent 1, contradiction 1 | contradiction q2 agreement 0.60")


def test_live_bar_redraws_one_line_and_notes_are_not_overwritten() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(2, out, live=True, clock=clock)
    clock.now += 10
    bar.advance("consistent")
    bar.note("faq.jsonl:7: invalid record: no question")
    clock.now += 10
    bar.advance("consistent")
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 2  # the note and the final line end
    assert "\r\x1b[2K[##########----------] 1/2" in text
    assert "\r\x1b[2Kfaq.jsonl:7: invalid record: no question\n" in text
    assert text.endswith("2/2 100% | 6.0 q/min | ETA 0s | consistent 2\n")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59.6, 75, 3725)] == ["0s", "1m00s", "1m15s", "1h02m"]


def test_audit_drives_the_bar_with_verdicts(tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "q.jsonl")  # 3 good questions, 2 invalid records
    out = io.StringIO()
    result = run_audit(questions, tmp_path / "out", make_guard(), progress=ProgressBar(0, out, live=False))
    lines = out.getvalue().splitlines()
    assert [line.split(": ")[0] for line in lines[:2]] == [f"{questions}:2", f"{questions}:5"]
    assert lines[2].startswith("[#######-------------] 1/3  33%") and lines[2].endswith("consistent cert agreement 1.00")
    assert lines[4].startswith("[####################] 3/3 100%")
    shown = lines[4].split(" | ")[3]
    verdicts = {k: v for k, v in result.summary["verdicts"].items() if v}
    assert shown == ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0])))

    # resuming says what is skipped and has nothing left to ask
    again = io.StringIO()
    run_audit(questions, tmp_path / "out", make_guard(), resume=True, progress=ProgressBar(0, again, live=False))
    assert again.getvalue().splitlines() == [f"3 question(s) already done in {tmp_path / 'out' / 'results.jsonl'}: not asked again"]


def test_a_batch_that_ends_at_once_reports_the_batch_rate_on_every_line() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(10, out, live=False, clock=clock)
    clock.now += 60  # five questions answered together in one minute
    bar.advance_many([("consistent", f"q{i}") for i in range(1, 6)])
    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[0].split("] ")[1] for line in lines] == [f"{i:>2}/10 {i / 10:4.0%}" for i in range(1, 6)]
    assert {tuple(line.split(" | ")[1:3]) for line in lines} == {("5.0 q/min", "ETA 1m00s")}
    assert lines[0].endswith("consistent q1") and lines[4].endswith("consistent q5")
    # each line's counts stop at its own item, as its position does (not the whole batch on the first line)
    assert [line.split(" | ")[3] for line in lines] == [f"consistent {i}" for i in range(1, 6)]
    live = io.StringIO()
    bar = ProgressBar(10, live, live=True, clock=clock, unit="chunks", per="s")
    clock.now += 5
    bar.advance_many([("", "")] * 4)
    bar.advance("", count=4)
    assert live.getvalue().count("\r") == 2  # one redraw per batch
    assert live.getvalue().endswith(" 8/10  80% | 1.6 chunks/s | ETA 1s")


def test_audit_lines_of_one_batch_share_rate_and_eta(tmp_path: Path) -> None:
    clock, out = Clock(), io.StringIO()
    questions = write_questions(tmp_path / "q.jsonl")
    bar = ProgressBar(0, out, live=False, clock=clock)
    original = bar.advance_many

    def later(items):  # type: ignore[no-untyped-def]
        clock.now += 30  # the batch of three took 30 s
        original(items)

    bar.advance_many = later  # type: ignore[method-assign]
    run_audit(questions, tmp_path / "out", make_guard(), progress=bar, batch_questions=8)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert len(lines) == 3
    assert {tuple(line.split(" | ")[1:3]) for line in lines} == {("6.0 q/min", "ETA 0s")}


def test_a_resumed_run_shows_the_overall_position_and_counts_with_this_runs_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(0, out, live=False, clock=clock)
    clock.now += 3600  # built long before the run starts (the model loads)
    bar.start(3, done_before=7, counts_before={"consistent": 5, "inconsistent": 2})
    clock.now += 60
    bar.advance_many([("consistent", "q8")])
    assert out.getvalue().splitlines() == [
        "[################----]  8/10  80% | 1.0 q/min | ETA 2m00s | consistent 6, inconsistent 2 | consistent q8"]
    live = io.StringIO()
    bar = ProgressBar(0, live, live=True, clock=clock)
    bar.start(2, done_before=1400, counts_before={"consistent": 1400})
    clock.now += 30
    bar.advance_many([("error", "")])
    assert live.getvalue().endswith("1401/1402 100% | 2.0 q/min | ETA 30s | consistent 1400, error 1")


def test_a_log_gets_a_line_every_few_seconds_and_the_last_state_on_close() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(0, out, live=False, clock=clock, every=10)
    bar.start(100)
    for i in range(1, 101):  # a question a second
        clock.now += 1
        bar.advance_many([("consistent", f"q{i}")])
    lines = out.getvalue().splitlines()
    # the first, then one every 10 s, and the last
    assert [line.split(" | ")[-1] for line in lines] == [f"consistent q{i}" for i in (1, 11, 21, 31, 41, 51, 61, 71,
                                                                                       81, 91, 100)]
    batched = io.StringIO()
    bar = ProgressBar(0, batched, live=False, clock=clock, every=10)
    bar.start(40)
    for n in range(4):  # batches of 8 every 6 s: a line for the first batch, then when 10 s have passed
        clock.now += 6
        bar.advance_many([("consistent", f"b{n}q{i}") for i in range(8)])
    bar.close()  # interrupted before the last batch: its state is printed
    assert [line.split(" | ")[0].split("] ")[1] for line in batched.getvalue().splitlines()] == [
        " 8/40  20%", "24/40  60%", "32/40  80%"]
    assert batched.getvalue().splitlines()[-1].endswith("consistent 32 | consistent b3q7")
    every = io.StringIO()
    bar = ProgressBar(0, every, live=False, clock=clock)  # every=0: a line per item, as before
    bar.start(3)
    bar.advance_many([("consistent", "a"), ("consistent", "b")])
    bar.advance("consistent", "c")
    bar.close()
    assert len(every.getvalue().splitlines()) == 3


def test_a_resumed_audit_counts_what_earlier_runs_did(tmp_path: Path) -> None:
    questions = write_valid_questions(tmp_path / "q.jsonl")  # 3 questions
    first = run_audit(questions, tmp_path / "out", make_guard())
    with questions.open("a", encoding="utf-8") as fh:  # two more rows since
        fh.write('{"id": "canteen", "question": "Is there a canteen?"}\n{"id": "park", "question": "Where to park?"}\n')
    out = io.StringIO()
    resumed = run_audit(questions, tmp_path / "out", make_guard(), resume=True, batch_questions=1,
                        progress=ProgressBar(0, out, live=False))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert [line.split(" | ")[0] for line in lines] == ["[################----] 4/5  80%", "[####################] 5/5 100%"]
    def counts(verdicts: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0])) if v)

    canteen = next(r["verdict"] for r in read_lines(tmp_path / "out") if r["id"] == "canteen")
    # the first new question is counted on top of the earlier run's verdicts
    assert lines[0].split(" | ")[3] == counts(Counter(first.summary["verdicts"]) + Counter([canteen]))
    assert lines[1].split(" | ")[3] == counts(Counter(resumed.summary["verdicts"]))  # the whole audit's, not this run's


def test_cli_audit_prints_fewer_lines_in_a_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app
    from ragguard.apps.cli import audit as cli_audit

    monkeypatch.setattr(cli_audit, "guard_for", lambda config, index: make_guard())
    questions = write_valid_questions(tmp_path / "q.jsonl")
    for every, shown in (("1000", ["1/3", "3/3"]), ("0", ["1/3", "2/3", "3/3"])):
        result = CliRunner().invoke(app, ["audit", str(questions), "--out", str(tmp_path / every), "--batch", "1",
                                          "--progress-every", every])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
        assert [line.split("] ")[1].split()[0] for line in lines] == shown
