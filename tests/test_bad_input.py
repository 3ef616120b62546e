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
