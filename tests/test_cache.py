"""``ragguard cache``: what the model cache holds, and pruning what no install of this version reads again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragguard.apps.cli import app
from ragguard.generation.cache import cached_models, prune
from ragguard.generation.models import file_sha256
from ragguard.locking import WriterLock

NOW = "9.9.9"  # the transformers version these tests call installed


def _conversion(models: Path, name: str, source: Path) -> Path:
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 1000)
    (folder / "ragguard-complete").write_text(f"{source}\n{'a' * 64}\n{'b' * 64}\n", encoding="utf-8")
    return folder


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_prune_removes_superseded_orphaned_and_stopped_conversions_only(cache: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"gguf")
    models = cache / "models"
    old = _conversion(models, "m-0123456789abcdef-tf1.0.0", gguf)
    new = _conversion(models, f"m-0123456789abcdef-tf{NOW}", gguf)
    alone = _conversion(models, "other-fedcba9876543210-tf1.0.0", gguf)  # no newer conversion: another install's
    orphan = _conversion(models, f"gone-0000000000000000-tf{NOW}", tmp_path / "gone.gguf")
    stopped = models / f".convert-m-0123456789abcdef-tf{NOW}-k2j_x9"
    stopped.mkdir()
    (stopped / "part").write_bytes(b"p" * 10)
    busy = models / f".convert-busy-1111111111111111-tf{NOW}-a1b2c3"
    busy.mkdir()
    file_sha256(gguf)  # a memo that is still right
    gone = tmp_path / "gone.txt"
    gone.write_text("x")
    file_sha256(gone)
    gone.unlink()  # its memo is never read again
    assert len(list((cache / "hashes").glob("*.json"))) == 2
    relative = cache / "hashes" / "000000000000000000000000.json"  # written from another working folder
    relative.write_text(json.dumps({"path": "m.gguf", "sha256": "c" * 64}), encoding="utf-8")

    listed = cached_models(NOW)
    stale = {m.path.name: m.stale for m in listed}
    sizes = {m.path.name: m.size for m in listed}
    assert stale[old.name] == f"superseded by its conversion for transformers {NOW}"
    assert stale[new.name] is None and stale[alone.name] is None
    assert stale[orphan.name] == "its GGUF file is gone" and stale[stopped.name] == "a stopped conversion"

    with WriterLock(models / f"busy-1111111111111111-tf{NOW}", what="converted model"):  # converting right now
        result = prune(NOW)
    assert sorted(Path(r["path"]).name for r in result["removed"]) == sorted([old.name, orphan.name, stopped.name])
    assert [Path(r["path"]).name for r in result["skipped"]] == [busy.name]
    assert result["freed"] == sizes[old.name] + sizes[orphan.name] + 10 and sizes[old.name] > 1000
    assert new.is_dir() and alone.is_dir() and busy.is_dir() and not old.exists() and not stopped.exists()
    assert result["memos"] == 1 and len(list((cache / "hashes").glob("*.json"))) == 2 and relative.exists()
    assert not [p for p in models.iterdir() if p.name.endswith(".lock")]  # no lock file left behind


def test_cache_command_lists_and_prunes(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"gguf")
    old = _conversion(cache / "models", "m-0123456789abcdef-tf1.0.0", gguf)
    _conversion(cache / "models", f"m-0123456789abcdef-tf{transformers.__version__}", gguf)
    runner = CliRunner()
    listed = runner.invoke(app, ["cache"])
    assert listed.exit_code == 0, listed.output
    assert "stale: superseded by its conversion for transformers" in listed.output
    assert "is stale: ragguard cache --prune removes it" in listed.output
    pruned = runner.invoke(app, ["cache", "--prune", "--json"])
    assert pruned.exit_code == 0, pruned.output
    data = json.loads(pruned.output)
    assert [Path(r["path"]).name for r in data["pruned"]["removed"]] == [old.name] and not old.exists()
    assert [m["stale"] for m in data["models"]] == [None] and data["cache"] == os.environ["RAGGUARD_CACHE"]
