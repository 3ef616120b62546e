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


# What the pure core may import of ragguard: itself and the leaf modules every layer shares.
CORE_MAY_IMPORT = ("ragguard.core", "ragguard.errors", "ragguard._version", "ragguard._io")


def ragguard_modules_after(statement: str) -> list[str]:
    """ragguard modules loaded by ``statement``, run without ``ragguard/__init__.py``.

    The package's ``__init__`` imports the pipeline (and so generation); a stub
    package with the same path makes ``import ragguard.core.x`` load only what
    ``x`` itself imports.
    """
    code = (
        "import json, pathlib, sys, types\n"
        "import ragguard.core as _probe\n"  # finds the folder; everything is dropped below
        "root = str(pathlib.Path(_probe.__file__).parent.parent)\n"
        "for name in [m for m in sys.modules if m == 'ragguard' or m.startswith('ragguard.')]:\n"
        "    del sys.modules[name]\n"
        "stub = types.ModuleType('ragguard')\n"
        "stub.__path__ = [root]\n"
        "sys.modules['ragguard'] = stub\n"
        f"{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ragguard.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_imports_no_generation_retrieval_or_apps() -> None:
    loaded = ragguard_modules_after(
        "import importlib, pkgutil\n"
        "import ragguard.core\n"
        "for info in pkgutil.walk_packages(ragguard.core.__path__, 'ragguard.core.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    assert "ragguard.core.consistency" in loaded and "ragguard.core.protocols" in loaded
    outside = [m for m in loaded if not any(m == p or m.startswith(p + ".") for p in CORE_MAY_IMPORT)]
    assert outside == []


def test_the_core_probe_sees_an_import_from_another_layer() -> None:
    assert "ragguard.generation.nli" in ragguard_modules_after("import ragguard.generation.nli")
