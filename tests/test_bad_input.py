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
