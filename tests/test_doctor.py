"""`ragguard doctor` checks, on tiny random models (no download)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from test_generators import TinyTokenizer, make, tiny_model  # noqa: E402

from ragguard.config import SamplingConfig  # noqa: E402
from ragguard.generation import hardware  # noqa: E402
from ragguard.generation.generators import TransformersGenerator  # noqa: E402
from ragguard.tuning.doctor import (  # noqa: E402
    batch_invariance_check,
    eval_mode_check,
    greedy_repeatability_check,
    hardware_check,
    run_checks,
)


def test_all_checks_pass_on_a_model_in_eval_mode() -> None:
    checks = {c.name: c for c in run_checks(make("qwen2"))}
    assert set(checks) == {"eval_mode", "greedy_repeatability", "batch_invariance", "attention_dtype", "hardware",
                           "traditional_chinese"}
    assert all(c.passed for c in checks.values())
    assert checks["batch_invariance"].figures["tokens_differing"] == 0
    assert checks["greedy_repeatability"].figures["tokens"] == 12


def test_a_model_left_in_train_mode_with_dropout_fails() -> None:
    import transformers

    config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, attention_dropout=0.3,
                                      eos_token_id=2, pad_token_id=2)
    model = transformers.LlamaForCausalLM(config)
    model.train()
    check = eval_mode_check(model)
    assert not check.passed
    assert check.figures["modules_in_train_mode"] > 0
    assert "model.eval()" in check.detail


def test_nondeterministic_generator_fails_repeatability() -> None:
    gen = make()
    calls = {"n": 0}
    real = gen.generate_tokens

    def flaky(prompt, seeds, *, ignore_stop=False):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        rows = real(prompt, seeds, ignore_stop=ignore_stop)
        return [r[:3] + [(r[3] + calls["n"]) % 64] + r[4:] for r in rows]

    gen.generate_tokens = flaky  # type: ignore[method-assign]
    check = greedy_repeatability_check(gen)
    assert not check.passed and check.figures["first_differing_token"] == 3


def test_batch_invariance_reports_differing_tokens() -> None:
    gen = make()
    real = gen.generate_tokens_batch

    def padded_differently(prompts, seeds, *, ignore_stop=False):  # type: ignore[no-untyped-def]
        out = real(prompts, seeds, ignore_stop=ignore_stop)
        if len(prompts) > 1:  # only a real (padded) batch is disturbed, not a prompt alone
            out[-1][1] = [t ^ 1 for t in out[-1][1]]
        return out

    gen.generate_tokens_batch = padded_differently  # type: ignore[method-assign]
    check = batch_invariance_check(gen)
    assert not check.passed and check.figures["rows_identical"] == 2 and check.figures["tokens_differing"] == 12


def test_cli_doctor_exits_1_when_a_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ragguard.generation.generators as generators
    from ragguard.apps.cli import app

    def fake_from_config(gen_config, sampling):  # type: ignore[no-untyped-def]
        model = tiny_model("llama")
        gen = TransformersGenerator.from_model(model, TinyTokenizer(), SamplingConfig(max_new_tokens=8), name="tiny")
        gen.load = lambda: None  # type: ignore[method-assign]
        model.train()  # left in train mode, as in seed 001
        return gen

    monkeypatch.setattr(generators.TransformersGenerator, "from_config", staticmethod(fake_from_config))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["fingerprint"]["model"] == "tiny"
    failed = [c["name"] for c in data["checks"] if not c["passed"]]
    assert failed == ["eval_mode"]
    assert data["fingerprint"]["dtype"] == "float32" and data["fingerprint"]["cpu"] == hardware.cpu_capability()


@pytest.mark.parametrize("amx", [True, False])
def test_doctor_reports_the_cpu_capability_and_the_dtype_auto_picks(amx: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    features = {"cpu_name": "Test CPU", "avx512_bf16": amx, "amx_tile": amx, "amx_bf16": amx}
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    monkeypatch.setattr(hardware, "kernel_level", lambda: "AVX512" if amx else "AVX2")
    check = hardware_check(make("qwen2"))
    assert check.passed and check.figures == {"amx_bf16": int(amx), "avx512_bf16": int(amx), "packed_4bit_layers": 0}
    label = "AVX512+AVX512-BF16+AMX-BF16" if amx else "AVX2"
    assert check.detail.startswith(f"CPU Test CPU, capability {label}; generator.dtype 'auto', loaded float32 "
                                   f"(auto picks {'bfloat16' if amx else 'float32'} on this CPU")


def test_doctor_says_when_traditional_chinese_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.core import script
    from ragguard.tuning.doctor import traditional_chinese_check

    found = traditional_chinese_check()
    assert found.passed and found.figures["characters"] > 1000
    monkeypatch.setattr(script, "_table", lambda: {})
    missing = traditional_chinese_check()
    assert not missing.passed and "pip install opencc-python-reimplemented" in missing.detail
