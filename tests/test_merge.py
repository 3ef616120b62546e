"""``ragguard merge``: parity-checked merges, and a broken merge that must be refused (tiny Qwen2, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from ragguard.errors import UsageError  # noqa: E402
from ragguard.tuning.adapters import greedy_tokens  # noqa: E402
from ragguard.tuning.merge import MERGE_META_FILE, REPORT_FILE, merge_adapter  # noqa: E402

TOKENS = 8  # per probe prompt; the CLI default is 64


def test_an_fp32_merge_holds_parity_and_behaves_like_the_adapter(fp32_adapter: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with caplog.at_level(logging.INFO, logger="ragguard"):
        result = merge_adapter(fp32_adapter, tmp_path / "merged", tokens=TOKENS)
    assert result.passed and result.written
    stages = [m for m in caplog.messages if m[:4] in ("1/3 ", "2/3 ", "3/3 ")]  # progress in logs, stage by stage
    assert [m[:3] for m in stages] == ["1/3", "2/3", "3/3"] and "4 probe prompt(s)" in stages[2]
    f = result.report["figures"]
    assert f["max_abs_logit_diff"] <= 1e-3 and f["greedy_agreement"] == 1.0
    assert result.report["probes"] == 4 and f["positions"] == 4 * TOKENS  # 2 recorded + 2 built like ask
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "merged" / MERGE_META_FILE).read_text())["parity_passed"] is True
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    meta = json.loads((fp32_adapter / "ragguard-adapter.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(meta["base"]["source"], dtype=torch.float32,
                                                attn_implementation="eager")
    adapter_model = PeftModel.from_pretrained(base, str(fp32_adapter)).eval()
    prompt = list(range(5, 40))
    assert greedy_tokens(merged, prompt, 12) == greedy_tokens(adapter_model, prompt, 12)


def test_a_qlora_adapter_merges_into_the_dequantized_base(nf4_adapter: Path, tmp_path: Path) -> None:
    result = merge_adapter(nf4_adapter, tmp_path / "merged", tokens=TOKENS)
    assert result.report["merged_into"] == "dequantized 4-bit weights"
    assert result.passed, result.report["figures"]
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert "quantization_config" not in config  # a plain float32 model, not 4-bit


def test_a_broken_merge_is_refused(nf4_adapter: Path, tmp_path: Path) -> None:
    """Merging a QLoRA adapter into the original weights drops the quantization error it was trained on."""
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    out = tmp_path / "refused"
    args = ["merge", str(nf4_adapter), "--into", "original", "--tokens", "4"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "gate failed" in result.stderr
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["passed"] is False and report["written"] is False
    assert report["figures"]["max_abs_logit_diff"] > 1e-3
    assert sorted(p.name for p in out.iterdir()) == [REPORT_FILE]  # no model written
    # its advice is taken: --force into the same --out, which holds only the report
    assert "rerun with --force: the same --out is accepted" in result.stderr
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and json.loads((out / REPORT_FILE).read_text())["forced"] is True


def test_force_writes_a_failed_merge_and_records_it(nf4_adapter: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    forced = tmp_path / "forced"
    args = ["merge", str(nf4_adapter), "--into", "original", "--tokens", "4"]
    result = CliRunner().invoke(app, [*args, "--out", str(forced), "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forced"] is True
    meta = json.loads((forced / MERGE_META_FILE).read_text())
    assert meta["parity_passed"] is False and meta["forced"] is True
    assert (forced / "model.safetensors").is_file()


def test_merge_refuses_bad_requests(fp32_adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="never into 4-bit"):
        merge_adapter(fp32_adapter, tmp_path / "a", dtype="int4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        merge_adapter(fp32_adapter, tmp_path / "full")
    with pytest.raises(UsageError, match="has no ragguard-adapter.json"):
        merge_adapter(tmp_path / "full", tmp_path / "b")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match=r"is a file: give a folder"):
        merge_adapter(fp32_adapter, afile)


def test_an_adapter_without_its_adapter_config_is_refused_at_once(fp32_adapter: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ragguard.errors import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the old code looked the folder's name up on the hub
    broken = tmp_path / "ax"
    shutil.copytree(fp32_adapter, broken)
    (broken / "adapter_config.json").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=r"'ax' has no adapter_config.json .*copy it back"):
        merge_adapter(Path("ax"), tmp_path / "m", tokens=TOKENS)
    assert not (tmp_path / "m").exists()
