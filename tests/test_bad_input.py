"""Bad input and the friction a new user hits (issue 20): invalid text, noise on stderr, messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAGGUARD_DEBUG", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_bitsandbytes_kernels_notice_stays_off_stderr() -> None:
    # bitsandbytes logs this at import on AVX512-BF16 CPUs (imported via transformers -> peft);
    # the CLI's logging setup must drop it, and keep other warnings.
    done = _python(
        "import logging\n"
        "from ragguard.apps.cli.common import _setup_logging\n"
        "_setup_logging()\n"
        "log = logging.getLogger('bitsandbytes.backends.cpu.ops')\n"
        "log.warning('Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you "
        "already `pip install kernels`', \"No module named 'kernels'\")\n"
        "log.warning('another bitsandbytes warning')\n"
    )
    assert done.returncode == 0, done.stderr
    assert "kernels" not in done.stderr
    assert "another bitsandbytes warning" in done.stderr
    # Library users too: the embedder and generator loaders quiet it before importing the models.
    done = _python(
        "import logging\n"
        "from ragguard.generation.models import quiet_transformers\n"
        "quiet_transformers()\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('Failed to load CPU gemm_4bit_forward from "
        "kernels-community: x')\n"
    )
    assert done.returncode == 0 and "kernels" not in done.stderr, done.stderr


def _report(**changes):  # type: ignore[no-untyped-def]
    from ragguard.core.types import Cluster, Report, Sample

    base = {"question": "Who approves leave?", "answer": "Dana Reyes approves leave.", "verdict": "contradiction",
            "agreement": 0.5, "semantic_entropy": 0.5,
            "samples": [Sample("Dana Reyes approves leave.", None, True, 0), Sample("Sam Lee approves leave.", 1, False, 1)],
            "clusters": [Cluster(0, 1, "Dana Reyes approves leave.", [0]), Cluster(1, 1, "Sam Lee approves leave.", [1])],
            "contradictions": []}
    return Report(**{**base, **changes})


class _CannedGuard:
    """A pipeline that answers every question with one prepared report."""

    def __init__(self, report) -> None:  # type: ignore[no-untyped-def]
        from ragguard.config import Config

        self.report, self.config, self.asked = report, Config(), []

    def ask(self, question, samples=None, seed=None):  # type: ignore[no-untyped-def]
        self.asked.append(question)
        self.report.question = question
        return self.report


def _run_ask(monkeypatch, report, *args):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    import ragguard.apps.cli
    from ragguard.apps.cli import app

    guard = _CannedGuard(report)
    monkeypatch.setattr(ragguard.apps.cli, "build_guard", lambda config, index: guard)
    return CliRunner().invoke(app, ["ask", *args]), guard


def test_ask_prints_one_entity_contradiction_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ragguard.core.types import Contradiction

    twice = Contradiction(0, 1, "entity", 0.9, "'Dana Reyes' vs 'Sam Lee'")
    mirrored = Contradiction(1, 0, "entity", 0.9, "'Dana Reyes' vs 'Sam Lee'")
    result, _ = _run_ask(monkeypatch, _report(contradictions=[twice, mirrored, twice]), "Who approves leave?")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("'Dana Reyes' vs 'Sam Lee'") == 1


# ------------------------------------------------------------------ invalid text (issue 20, item 1)
BAD_ARGV = "Who approves \udcff\udcfe leave?"  # printf 'Who approves \xff\xfe leave?' as Python decodes argv
BAD_JSON = "Who approves \ud800 leave?"  # a lone surrogate from a JSON escape
CLEAN = "Who approves \ufffd\ufffd leave?"


def test_clean_text_replaces_lone_surrogates_and_says_so() -> None:
    from ragguard._text import clean_text, clean_value

    assert clean_text("Who approves leave?", "the question") == ("Who approves leave?", None)
    text, warning = clean_text(BAD_ARGV, "the question")
    assert text == CLEAN and "the question held 2 invalid characters" in warning
    text.encode("utf-8")  # now writable anywhere
    notes: list[str] = []
    assert clean_value({"q": BAD_JSON, "s": ["ok", BAD_JSON], "n": 3}, "", notes) == {
        "q": "Who approves \ufffd leave?", "s": ["ok", "Who approves \ufffd leave?"], "n": 3}
    assert len(notes) == 2 and "'q'" in notes[0] and "'s'[1]" in notes[1]


def test_the_pipeline_answers_a_question_with_invalid_text_and_warns(fake_guard, fake_generator) -> None:  # type: ignore[no-untyped-def]
    fake_generator.enqueue(["Dana approves leave."] * 5)
    report = fake_guard.ask(BAD_ARGV)
    assert report.question == CLEAN
    assert any("invalid character" in w for w in report.warnings)
    json_text = __import__("json").dumps(report.to_dict(), ensure_ascii=False)
    json_text.encode("utf-8")
    fake_generator.enqueue(["Dana approves leave."] * 5)
    (again,) = fake_guard.ask_many([BAD_JSON])
    assert again.question == "Who approves \ufffd leave?"
    assert all("\ud800" not in m["content"] for m in fake_generator.calls[-1]["messages"])


def test_cli_ask_with_undecodable_argv_answers_with_a_warning(monkeypatch, fake_guard, fake_generator) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    import ragguard.apps.cli
    from ragguard.apps.cli import app

    monkeypatch.setattr(ragguard.apps.cli, "build_guard", lambda config, index: fake_guard)
    fake_generator.enqueue(["Dana approves leave."] * 5)
    result = CliRunner().invoke(app, ["ask", BAD_ARGV, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["question"] == CLEAN and any("invalid character" in w for w in record["warnings"])


def test_check_records_with_invalid_text_are_scored_with_a_warning(monkeypatch, tmp_path, make_embedder) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    import ragguard.generation.embedders
    from ragguard.apps.cli import app

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder",
                        lambda *a, **k: make_embedder())
    path = tmp_path / "samples.jsonl"
    path.write_text('{"question": "Who approves \\ud800 leave?", "samples": ["Dana \\udcff.", "Dana."]}\n',
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["question"] == "Who approves \ufffd leave?"
    assert entry["samples"][0]["text"] == "Dana \ufffd."
    assert sum("invalid character" in w for w in entry["warnings"]) == 2


def test_audit_records_with_invalid_text_are_answered_with_a_warning(tmp_path, fake_guard, fake_generator) -> None:  # type: ignore[no-untyped-def]
    import json

    from ragguard.apps.audit import run_audit

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q\\ud800", "question": "Who approves \\ud800 leave?"}\n', encoding="utf-8")
    fake_generator.enqueue(["Dana approves leave."] * 5)
    run_audit(path, tmp_path / "out", fake_guard)
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text("utf-8").splitlines()]
    assert record["status"] == "ok" and record["id"] == "q\ufffd"
    assert record["question"] == "Who approves \ufffd leave?"
    assert any("invalid character" in w for w in record["warnings"])


def test_index_sources_with_invalid_text_are_indexed_with_a_warning(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from ragguard.retrieval.loaders import iter_documents

    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"question": "Who approves \\ud800 leave?", "answer": "Dana does."}\n', encoding="utf-8")
    with caplog.at_level("WARNING", logger="ragguard"):
        ((doc, _, reason),) = list(iter_documents([faq]))
    assert reason is None and "\ufffd" in doc.text and "\ud800" not in doc.text
    assert any("invalid character" in r.getMessage() for r in caplog.records)


def test_serve_answers_invalid_text_with_a_warning_not_a_500() -> None:
    import httpx
    from servers import ragguard_server

    with ragguard_server(["--guard", "serve_fakes:build_guard"]) as url:
        # httpx would refuse to encode a lone surrogate; send the JSON escape as a client would.
        body = b'{"question": "Who approves \\ud800 leave?"}'
        asked = httpx.post(f"{url}/ask", content=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert asked.status_code == 200, asked.text
        assert asked.json()["question"] == "Who approves \ufffd leave?"
        assert any("invalid character" in w for w in asked.json()["warnings"])
        chat = b'{"model": "ragguard", "messages": [{"role": "user", "content": "Who approves \\ud800 leave?"}]}'
        done = httpx.post(f"{url}/v1/chat/completions", content=chat, headers={"Content-Type": "application/json"},
                          timeout=30)
        assert done.status_code == 200, done.text
        assert any("invalid character" in w for w in done.json()["ragguard"]["warnings"])
        # A question over generator.max_question_tokens (512) is a 400, not minutes of decoding.
        huge = httpx.post(f"{url}/ask", json={"question": "Who approves leave? " * 400}, timeout=30)
        assert huge.status_code == 400 and "max_question_tokens" in huge.text
