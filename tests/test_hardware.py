"""What the CPU runs: the dtype ``auto`` picks, the fingerprint, and bitsandbytes' two CPU 4-bit paths (issue 19).

The CPU's answers are forced (monkeypatched), so every machine tests both
sides: AMX-BF16 or not, and bitsandbytes' packed AVX512-BF16 path or its
plain one (``bnb_cpu_path``, see tests/tiny_models.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from ragguard.config import GeneratorConfig, SamplingConfig  # noqa: E402
from ragguard.errors import ModelLoadError, QuantizationError  # noqa: E402
from ragguard.generation import hardware  # noqa: E402
from ragguard.generation.generators import TransformersGenerator, resolve_dtype  # noqa: E402

AVX2 = {"avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_tile": False, "amx_bf16": False}
SAPPHIRE_RAPIDS = {**AVX2, "avx512_f": True, "avx512_bf16": True, "amx_tile": True, "amx_bf16": True}


@pytest.fixture(params=["amx", "avx2"])
def forced_cpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CPU as PyTorch reports it, forced to an AMX-BF16 one or a plain AVX2 one."""
    amx = request.param == "amx"
    monkeypatch.setattr(hardware, "cpu_features", lambda: SAPPHIRE_RAPIDS if amx else AVX2)
    monkeypatch.setattr(hardware, "kernel_level", lambda: "AVX512" if amx else "AVX2")
    return str(request.param)


def test_auto_dtype_is_bfloat16_only_with_amx(forced_cpu: str) -> None:
    expected = torch.bfloat16 if forced_cpu == "amx" else torch.float32
    assert resolve_dtype("auto", "cpu") is expected
    assert resolve_dtype("float32", "cpu") is torch.float32 and resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    assert hardware.cpu_capability() == ("AVX512+AVX512-BF16+AMX-BF16" if forced_cpu == "amx" else "AVX2")


def test_amx_without_onednn_stays_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_features", lambda: SAPPHIRE_RAPIDS)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert hardware.auto_cpu_dtype() == "float32" and not hardware.has_amx_bf16()


def test_the_probe_reads_this_cpu() -> None:
    """Unforced: the label starts with ATen's kernel level and names AMX only where cpuinfo saw it."""
    label = hardware.cpu_capability()
    assert label.split("+")[0] == torch.backends.cpu.get_cpu_capability()
    assert ("AMX-BF16" in label) == bool(torch.cpu.get_capabilities().get("amx_bf16"))


def test_auto_loads_the_model_in_the_dtype_of_the_cpu(forced_cpu: str, tiny_qwen2_dir: Path) -> None:
    gen = TransformersGenerator(GeneratorConfig(model=str(tiny_qwen2_dir), dtype="auto"), SamplingConfig(max_new_tokens=4))
    gen.load()
    dtype = "bfloat16" if forced_cpu == "amx" else "float32"
    assert next(gen.model.parameters()).dtype is getattr(torch, dtype)
    assert gen.dtype == dtype and gen.cpu == hardware.cpu_capability()
    assert gen.quantization == {"method": "none", "dtype": dtype}
    assert len(gen.generate_tokens([5, 6, 7], [None, 1], ignore_stop=True)[1]) == 4


def test_the_fingerprint_records_dtype_and_cpu(fake_guard, fake_generator) -> None:  # type: ignore[no-untyped-def]
    fake_generator.enqueue(["Yes."] * 5)
    fake_generator.dtype, fake_generator.cpu = "bfloat16", "AVX512+AVX512-BF16+AMX-BF16"
    fp = fake_guard.ask("Do I need a certificate?").to_dict()["fingerprint"]
    assert fp["dtype"] == "bfloat16" and fp["cpu"] == "AVX512+AVX512-BF16+AMX-BF16"
    assert {"model", "adapter", "embedder", "config_hash", "versions", "device", "seeds"} <= set(fp)


def test_a_wrapped_model_reports_its_dtype() -> None:
    from test_generators import TinyTokenizer, tiny_model

    for dtype in (torch.float32, torch.bfloat16):
        gen = TransformersGenerator.from_model(tiny_model("llama").to(dtype), TinyTokenizer(), SamplingConfig())
        assert gen.dtype == str(dtype).replace("torch.", "") and gen.cpu == hardware.cpu_capability()


# ------------------------------------------------------------- 4-bit CPU paths
def _four_bit(base: Path, compute: str = "float32") -> TransformersGenerator:
    gen = TransformersGenerator(GeneratorConfig(model=str(base), load_in_4bit=True, bnb_4bit_compute_dtype=compute,
                                                dtype=compute, attn_implementation="eager"),
                                SamplingConfig(max_new_tokens=4))
    gen.load()
    return gen


def test_a_layer_narrower_than_the_block_is_refused_in_one_line(bnb_cpu_path: str, tiny_qwen2_dir: Path) -> None:
    """The 32-wide tiny Qwen2 in 4-bit: one message on either path, not bitsandbytes' reshape traceback."""
    with pytest.raises(QuantizationError) as caught:
        _four_bit(tiny_qwen2_dir)
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, ModelLoadError)
    assert message.startswith("layer 'model.layers.0.self_attn.q_proj' is 32 inputs wide (and ")
    assert "64-value 4-bit quantisation block" in message and "set generator.load_in_4bit: false" in message


def test_tune_refuses_a_narrow_4bit_base_before_training(bnb_cpu_path: str, tiny_qwen2_dir: Path,
                                                          tune_data_file: Path, tmp_path: Path) -> None:
    from tiny_models import tune_overrides
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    sets = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
            for k, v in tune_overrides(tiny_qwen2_dir, model__load_in_4bit=True, train__max_steps=1).items()]
    args = ["tune", str(tune_data_file), "--out", str(tmp_path / "out")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("ragguard: loading")]
    assert len(lines) == 1 and "is 32 inputs wide" in lines[0] and "set model.load_in_4bit: false" in lines[0]
    assert "Traceback" not in result.output and not (tmp_path / "out" / "adapter_model.safetensors").exists()


def _packed(model: object) -> int:
    from bitsandbytes.nn import Linear4bit

    return sum(bool(getattr(m.weight.quant_state, "packing_format_for_cpu", False))
               for m in model.modules() if isinstance(m, Linear4bit))  # type: ignore[attr-defined]


def test_the_packed_path_is_kept_only_for_bfloat16_inference(bnb_cpu_path: str, tiny_qwen2_wide_dir: Path) -> None:
    """float32 compute keeps the plain path (the packed kernel computes in bfloat16); bfloat16 may pack."""
    layers = 2 * 7  # q, k, v, o, gate, up, down per layer
    fp32 = _four_bit(tiny_qwen2_wide_dir, "float32")
    fp32.generate_tokens([5, 6, 7, 8], [None, 1], ignore_stop=True)
    assert hardware.packed_4bit_layers(fp32.model) == 0 and _packed(fp32.model) == 0
    bf16 = _four_bit(tiny_qwen2_wide_dir, "bfloat16")
    expected = layers if bnb_cpu_path == "avx512bf16" else 0
    assert hardware.packed_4bit_layers(bf16.model) == expected
    rows = bf16.generate_tokens([5, 6, 7, 8], [None, 1], ignore_stop=True)
    assert [len(r) for r in rows] == [4, 4]
    assert _packed(bf16.model) == expected  # the eval forward repacked the weights for the fused kernel
    # Training never takes it: the packed kernel has no backward.
    hardware.prepare_4bit(bf16.model, compute_dtype="bfloat16", training=True)
    assert hardware.packed_4bit_layers(bf16.model) == 0


def test_the_packed_kernel_agrees_with_the_plain_path(tiny_qwen2_wide_dir: Path) -> None:
    """Where the CPU has AVX512-BF16 (bitsandbytes registers its fused kernel only there; elsewhere it is
    an illegal instruction), the packed path's logits match the plain path's to bfloat16 precision."""
    from bitsandbytes.functional import has_avx512bf16
    from tiny_models import forced_bnb_cpu_path

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes' packed 4-bit kernel cannot run here")
    logits = {}
    for path in ("plain", "avx512bf16"):
        with forced_bnb_cpu_path(path):
            gen = _four_bit(tiny_qwen2_wide_dir, "bfloat16")
        with torch.inference_mode():
            logits[path] = gen.model(input_ids=torch.tensor([[5, 6, 7, 8, 9]])).logits.float()
        assert _packed(gen.model) == (14 if path == "avx512bf16" else 0)
    assert torch.allclose(logits["plain"], logits["avx512bf16"], atol=5e-2), (logits["plain"] - logits["avx512bf16"]).abs().max()


def test_auto_loads_an_adapter_in_the_dtype_it_was_tuned_in(forced_cpu: str, fp32_adapter: Path,
                                                            tiny_qwen2_dir: Path) -> None:
    """On an AMX CPU ``auto`` would pick bfloat16, and the float32-tuned adapter would be refused."""
    gen = TransformersGenerator(GeneratorConfig(model=str(tiny_qwen2_dir), adapter=str(fp32_adapter), dtype="auto",
                                                attn_implementation="eager"), SamplingConfig(max_new_tokens=4))
    gen.load()
    assert gen.dtype == "float32" and not gen.adapter_problems
    assert resolve_dtype("auto", "cpu", str(fp32_adapter)) is torch.float32
    assert resolve_dtype("bfloat16", "cpu", str(fp32_adapter)) is torch.bfloat16  # an explicit dtype still wins
