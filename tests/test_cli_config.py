"""``ragguard config``: a config checked as ``ask`` reads it, without loading a model, and every setting printed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragguard.apps.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.generation.generators import TransformersGenerator

    def refuse(self):  # type: ignore[no-untyped-def]
        raise AssertionError("ragguard config loaded a model")

    monkeypatch.setattr(TransformersGenerator, "load", refuse)
    monkeypatch.setattr(SentenceTransformerEmbedder, "load", refuse)


def test_a_config_is_checked_and_every_setting_printed_with_the_files_own_marked(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "indexes" / "handbook", tmp_path / "kb")
    (tmp_path / "my.yaml").write_text("sampling:\n  samples: 7\nretrieval:\n  index: kb\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "--config", str(tmp_path / "my.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["valid"] is True and out["settings"]["sampling.samples"] == 7
    assert out["index"] == str(tmp_path / "kb") and out["index_chunks"] > 0  # relative to the file's folder
    assert out["set_in_file"] == ["retrieval.index", "sampling.samples"]
    assert out["index_embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    text = CliRunner().invoke(app, ["config", "--config", str(tmp_path / "my.yaml")]).stdout
    assert text.splitlines()[0].startswith(f"config {tmp_path / 'my.yaml'} is valid (hash ")
    assert any(line.split() == ["sampling.samples", "7", "#", "set", "in", "the", "file"] for line in text.splitlines())
    assert any(line.split() == ["sampling.seed", "0"] for line in text.splitlines())
    default = CliRunner().invoke(app, ["config"])
    assert default.exit_code == 0 and default.stdout.startswith("the embedded default config is valid")


@pytest.mark.parametrize(("yaml", "code", "expected"), [
    ("generator:\n  modle: x\n", 2, "unknown config key 'generator.modle'"),
    ("sampling:\n  samples: 0\n", 2, "config key 'sampling.samples' has bad value 0"),
    ("consistency:\n  calibration: nothere.json\n", 2, "nothere.json does not exist"),
    ("embedder:\n  model: intfloat/e5-small\n", 3, "was built with embedder 'sentence-transformers/all-MiniLM-L6-v2' "
                                                   "but the config uses 'intfloat/e5-small'"),
])
def test_a_bad_config_is_one_line_naming_the_problem(tmp_path: Path, yaml: str, code: int, expected: str) -> None:
    (tmp_path / "bad.yaml").write_text(yaml, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == code and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ragguard: error: ") and expected in lines[0]
