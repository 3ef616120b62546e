"""``import ragguard`` stays light: no torch, transformers, faiss or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers")


def loaded_after(statement: str) -> dict[str, bool]:
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps({{name: name in sys.modules for name in {list(HEAVY)!r}}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_ragguard_does_not_import_heavy_libraries() -> None:
    loaded = loaded_after("import ragguard; ragguard.RagGuard, ragguard.Config, ragguard.ConsistencyChecker")
    assert loaded == dict.fromkeys(HEAVY, False)


def test_cli_module_and_core_modules_stay_light() -> None:
    loaded = loaded_after(
        "import ragguard.apps.cli, ragguard.pipeline, ragguard.core.consistency, ragguard.core.clustering, "
        "ragguard.retrieval.chunking, ragguard.config, ragguard.retrieval.index, ragguard.apps.check, ragguard.apps.audit"
    )
    assert loaded == dict.fromkeys(HEAVY, False)


def test_the_probe_sees_a_heavy_import() -> None:
    # The check above would be meaningless if the probe could not see an import happen.
    assert loaded_after("import faiss")["faiss"] is True
