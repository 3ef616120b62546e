"""Every ragguard name a bench/ script imports exists (the scripts are not run in the suite, so a
refactor that moves a name breaks them silently: bench/consistency_cost.py imported a moved
``_settled`` for a whole round)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py"))


def _guarded(tree: ast.Module) -> set[int]:
    """Line numbers of the fallback imports in ``except ImportError:`` handlers (for older code on purpose)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                if isinstance(handler.type, ast.Name) and handler.type.id in ("ImportError", "ModuleNotFoundError"):
                    lines.update(n.lineno for stmt in handler.body for n in ast.walk(stmt)
                                 if isinstance(n, ast.ImportFrom))
    return lines


@pytest.mark.parametrize("script", BENCH, ids=[p.name for p in BENCH])
def test_the_names_a_bench_script_imports_exist(script: Path) -> None:
    tree = ast.parse(script.read_text(encoding="utf-8"))
    guarded = _guarded(tree)
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("ragguard"):
            continue
        if node.lineno in guarded:
            continue
        module = importlib.import_module(node.module)  # type: ignore[arg-type]
        missing += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names if not hasattr(module, a.name)
                    and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert not missing, f"{script.name} imports names that do not exist: {', '.join(missing)}"
