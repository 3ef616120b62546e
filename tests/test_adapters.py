"""Loading tuned adapters: metadata checks at load, and the doctor's adapter checks (tiny Qwen2, CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import save_tiny_qwen2  # noqa: E402

from ragguard.config import GeneratorConfig, SamplingConfig  # noqa: E402
from ragguard.generation.generators import TransformersGenerator  # noqa: E402
from ragguard.tuning.adapters import AdapterMismatchError, compare_logits, parity_passes  # noqa: E402
from ragguard.tuning.doctor import adapter_reload_parity_check, eval_mode_check, quant_config_check, run_checks  # noqa: E402


def _generator(base: Path, adapter: Path | None, **gen: object) -> TransformersGenerator:
    settings = {"model": str(base), "adapter": str(adapter) if adapter else None, "dtype": "float32",
                "attn_implementation": "eager", **gen}
    g = TransformersGenerator(GeneratorConfig(**settings), SamplingConfig(max_new_tokens=6))
    g.load()
    return g


def test_compare_logits_figures() -> None:
    a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    same = compare_logits([a], [a.clone()])
    assert same.bitwise_identical and same.max_abs_logit_diff == 0 and same.mean_kl == 0
    flipped = compare_logits([a], [a + torch.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, 0.0]])])
    assert not flipped.bitwise_identical and flipped.max_abs_logit_diff == pytest.approx(1.5)
    assert flipped.greedy_agreement == 0.5 and flipped.mean_kl > 0.01
    assert parity_passes(same, "float32")[0] and not parity_passes(flipped, "bfloat16")[0]


def test_a_reloaded_fp32_adapter_is_bitwise_identical_to_the_tuned_model(fp32_adapter: Path,
                                                                          tiny_qwen2_dir: Path) -> None:
    g = _generator(tiny_qwen2_dir, fp32_adapter)
    assert not g.model.training and type(g.model).__name__.startswith("Peft")  # kept separate, eval mode
    checks = {c.name: c for c in run_checks(g)}
    assert all(c.passed for c in checks.values()), [c.to_dict() for c in checks.values() if not c.passed]
    parity = checks["adapter_reload_parity"].figures
    assert parity["bitwise_identical"] == 1 and parity["max_abs_logit_diff"] == 0.0
    assert parity["greedy_agreement"] == 1.0 and parity["positions"] == 16  # 2 probes x 8 tokens
    assert checks["quant_config"].figures["differences"] == 0


def test_a_qlora_adapter_reloads_with_its_quantization(nf4_adapter: Path, tiny_qwen2_wide_dir: Path) -> None:
    g = _generator(tiny_qwen2_wide_dir, nf4_adapter, load_in_4bit=True, bnb_4bit_compute_dtype="float32")
    assert type(g.model.base_model.model.model.layers[0].mlp.up_proj.base_layer).__name__ == "Linear4bit"
    quant, parity = quant_config_check(g), adapter_reload_parity_check(g)
    assert quant.passed, quant.detail
    assert parity.passed and parity.figures["bitwise_identical"] == 1, parity.to_dict()


def test_a_quantization_mismatch_is_refused_at_load(nf4_adapter: Path, tiny_qwen2_wide_dir: Path) -> None:
    with pytest.raises(AdapterMismatchError, match=r"trained on a 4-bit base, loaded non-quantized \(set "
                                                   r"generator.load_in_4bit: true\).*adapter_mismatch: warn"):
        _generator(tiny_qwen2_wide_dir, nf4_adapter)
    with pytest.raises(AdapterMismatchError, match=r"compute_dtype trained 'float32', loaded 'bfloat16' \(set "
                                                   r"generator.bnb_4bit_compute_dtype: float32\)"):
        _generator(tiny_qwen2_wide_dir, nf4_adapter, load_in_4bit=True, bnb_4bit_compute_dtype="bfloat16")


def test_warn_mode_loads_and_the_doctor_fails_quant_config(nf4_adapter: Path, tiny_qwen2_wide_dir: Path) -> None:
    g = _generator(tiny_qwen2_wide_dir, nf4_adapter, adapter_mismatch="warn")
    assert g.adapter_problems and "4-bit" in g.adapter_problems[0]
    quant = quant_config_check(g)
    assert not quant.passed and quant.figures["differences"] == 1
    # The same adapter on the non-quantized base is a different model: the reload check measures it.
    parity = adapter_reload_parity_check(g)
    assert not parity.passed and parity.figures["max_abs_logit_diff"] > 1e-4


def test_an_adapter_on_another_base_is_refused(fp32_adapter: Path, tmp_path: Path) -> None:
    other = save_tiny_qwen2(tmp_path / "other", seed=1)
    with pytest.raises(AdapterMismatchError, match="base model weights differ"):
        _generator(other, fp32_adapter)


def test_an_adapter_without_ragguard_metadata_loads_but_cannot_be_vouched_for(fp32_adapter: Path,
                                                                                tiny_qwen2_dir: Path,
                                                                                tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(fp32_adapter / name, bare / name)
    g = _generator(tiny_qwen2_dir, bare)
    assert "has no ragguard-adapter.json" in g.adapter_problems[0]
    assert not quant_config_check(g).passed
    # No recorded reference: the doctor saves and reloads the adapter in-process and compares.
    parity = adapter_reload_parity_check(g)
    assert parity.passed, parity.detail
    assert parity.figures["bitwise_identical"] and parity.figures["probes"] >= 2
    assert "saved and reloaded in-process" in parity.detail and "unknown" in parity.detail
    (bare / "adapter_model.safetensors").unlink()
    with pytest.raises(Exception, match="no adapter_model.safetensors"):
        _generator(tiny_qwen2_dir, bare)


def test_a_lora_model_left_in_train_mode_fails_the_eval_check(fp32_adapter: Path, tiny_qwen2_dir: Path) -> None:
    g = _generator(tiny_qwen2_dir, fp32_adapter)
    g.model.train()  # seed 001: predictions right after training, with LoRA dropout active
    check = eval_mode_check(g.model)
    assert not check.passed and check.figures["active_dropout_layers"] >= 14  # 7 projections x 2 layers


def test_cli_doctor_with_an_adapter_exits_1_on_a_mismatch(fp32_adapter: Path, tiny_qwen2_dir: Path,
                                                          tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    bad = tmp_path / "bad.yaml"  # tuned in float32, loaded in bfloat16
    bad.write_text(f"generator:\n  model: {tiny_qwen2_dir}\n  attn_implementation: eager\n  dtype: bfloat16\n"
                   "sampling:\n  max_new_tokens: 4\n")
    result = CliRunner().invoke(app, ["doctor", "--config", str(bad), "--adapter", str(fp32_adapter), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["fingerprint"]["quantization"] == {"method": "none", "dtype": "bfloat16"}
    checks = {c["name"]: c for c in data["checks"]}
    assert [n for n, c in checks.items() if not c["passed"]] == ["quant_config", "adapter_reload_parity"]
    assert "dtype trained 'float32', loaded 'bfloat16'" in checks["quant_config"]["detail"]
    assert checks["adapter_reload_parity"]["figures"]["bitwise_identical"] == 0


def _pickled_copy(source: Path, folder: Path, marker: Path, weights: str) -> Path:
    """``source`` with its safetensors replaced by a pickle that would create ``marker`` if unpickled."""
    import pickle

    shutil.copytree(source, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (marker,))

    (folder / weights).write_bytes(pickle.dumps({"w": Payload()}))
    return folder


def test_pickled_weights_are_refused_with_the_reason_and_never_unpickled(tiny_qwen2_dir: Path, fp32_adapter: Path,
                                                                       tmp_path: Path) -> None:
    from ragguard.errors import ModelLoadError
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.generation.nli import TransformersNLI
    from ragguard.tuning.merge import merge_adapter

    marker = tmp_path / "unpickled"
    model = _pickled_copy(tiny_qwen2_dir, tmp_path / "model", marker, "pytorch_model.bin")
    refused = r"holds pickled weights \(pytorch_model.bin\) and no .safetensors: ragguard never unpickles"
    with pytest.raises(ModelLoadError, match=refused):
        TransformersGenerator(GeneratorConfig(model=str(model)), SamplingConfig(max_new_tokens=2)).load()
    with pytest.raises(ModelLoadError, match=refused):
        TransformersNLI(str(model))._load()
    with pytest.raises(ModelLoadError, match=refused):
        SentenceTransformerEmbedder(str(model)).dimension  # noqa: B018 - loads
    adapter = _pickled_copy(fp32_adapter, tmp_path / "adapter", marker, "adapter_model.bin")
    with pytest.raises(ModelLoadError, match=r"has no adapter_model.safetensors: ragguard loads adapters only from"):
        merge_adapter(adapter, tmp_path / "merged")
    assert not marker.exists()


def test_a_damaged_converted_model_in_the_cache_says_to_delete_it(tiny_qwen2_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.errors import ModelLoadError

    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "models" / "converted"
    shutil.copytree(tiny_qwen2_dir, cached)
    weights = cached / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"the converted model cached in .*converted' is damaged: delete that "
                                             r"folder and the next start converts it again"):
        TransformersGenerator(GeneratorConfig(model=str(cached)), SamplingConfig(max_new_tokens=2)).load()


def test_a_hub_id_neither_cached_nor_reachable_is_refused_at_once(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    from ragguard.errors import ModelLoadError
    from ragguard.generation.sources import require_hub_access

    probes: list[str] = []

    class NoNetwork:
        def head(self, url: str, timeout: float) -> None:
            probes.append(url)
            raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    monkeypatch.setattr(huggingface_hub, "get_session", NoNetwork)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ModelLoadError, match=r"generator.model 'Org/Model' is not in the local hub cache and "
                                             r"\S+ cannot be reached \(\[Errno -2\] Name or service not known\): "
                                             r"download it where there is network"):
        TransformersGenerator(GeneratorConfig(model="Org/Model"), SamplingConfig(max_new_tokens=2)).load()
    assert len(probes) == 1  # one probe, not a minute of retries per file
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: str(snapshot / "config.json"))
    with pytest.raises(ModelLoadError, match="is not in the local hub cache"):  # a download stopped after the config
        require_hub_access("Org/Model", "generator.model")
    assert len(probes) == 2
    (snapshot / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}', encoding="utf-8")
    (snapshot / "model-1.safetensors").write_bytes(b"w")
    with pytest.raises(ModelLoadError, match="is not in the local hub cache"):  # one shard of two
        require_hub_access("Org/Model", "generator.model")
    (snapshot / "model-2.safetensors").write_bytes(b"w")
    require_hub_access("Org/Model", "generator.model")  # cached whole: no probe
    assert len(probes) == 3
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"generator.model 'Org/Model' is not in the local hub cache \(.*\) "
                                             r"and HF_HUB_OFFLINE is set: download it where there is network"):
        require_hub_access("Org/Model", "generator.model")  # HF_HUB_OFFLINE: the cache alone decides, no probe
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: str(snapshot / "config.json"))
    require_hub_access("Org/Model", "generator.model")
    assert len(probes) == 3


def test_the_adapter_hash_covers_its_weights_alone_and_is_reproducible(fp32_adapter: Path, tiny_qwen2_dir: Path,
                                                                       tmp_path: Path) -> None:
    import hashlib

    from ragguard.tuning.adapters import REFERENCE_FILE, write_reference

    copy = tmp_path / "copy"
    shutil.copytree(fp32_adapter, copy)
    g = _generator(tiny_qwen2_dir, copy)
    # what `sha256sum adapter_model.safetensors` prints: the parity reference and the JSON files are left out
    assert g.adapter_sha256 == hashlib.sha256((copy / "adapter_model.safetensors").read_bytes()).hexdigest()
    # the parity reference is written byte for byte the same every time: safetensors writes a metadata map in
    # the order of a Rust HashMap, which changes from process to process, so it holds one key at most
    write_reference(copy, g.model, [[5, 9, 14]], n_tokens=2)
    raw = (copy / REFERENCE_FILE).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert len(header.get("__metadata__", {})) <= 1
    assert json.loads(header["__metadata__"]["ragguard"]) == {"probes": 1, "tokens": 2}
    assert _generator(tiny_qwen2_dir, copy).adapter_sha256 == g.adapter_sha256  # another reference, same weights


def test_an_adapter_without_its_adapter_config_is_refused_with_one_line(fp32_adapter: Path, tiny_qwen2_dir: Path,
                                                                        tmp_path: Path) -> None:
    from ragguard.errors import ModelLoadError

    broken = tmp_path / "ax"
    shutil.copytree(fp32_adapter, broken)
    (broken / "adapter_config.json").unlink()
    with pytest.raises(ModelLoadError, match="has no adapter_config.json"):
        _generator(tiny_qwen2_dir, broken, adapter_mismatch="warn")


def test_an_adapter_of_other_shapes_in_warn_mode_says_what_to_load(fp32_adapter: Path,
                                                                    tiny_qwen2_wide_dir: Path) -> None:
    from ragguard.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"does not fit the loaded base '.*' \(.*\): load the base it was tuned "
                                             r"on \('.*', named in its ragguard-adapter.json\)"):
        _generator(tiny_qwen2_wide_dir, fp32_adapter, adapter_mismatch="warn")


def test_an_adapter_without_metadata_of_other_shapes_says_to_pass_its_config(fp32_adapter: Path,
                                                                              tiny_qwen2_wide_dir: Path,
                                                                              tmp_path: Path) -> None:
    from ragguard.errors import ModelLoadError

    bare = tmp_path / "bare"
    shutil.copytree(fp32_adapter, bare)
    (bare / "ragguard-adapter.json").unlink()  # an adapter saved by peft itself
    with pytest.raises(ModelLoadError, match=r"it has no ragguard-adapter.json to name it: pass the config of that "
                                             r"base with --config"):
        _generator(tiny_qwen2_wide_dir, bare, adapter_mismatch="warn")


def test_cli_doctor_with_an_adapter_and_no_config_loads_the_recorded_base(fp32_adapter: Path, tiny_qwen2_dir: Path,
                                                                          tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app
    from ragguard.generation.sources import adapter_weights_sha256

    result = CliRunner().invoke(app, ["doctor", "--adapter", str(fp32_adapter), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fingerprint"]["model"] == str(tiny_qwen2_dir.resolve())
    assert data["fingerprint"]["adapter_sha256"] == adapter_weights_sha256(fp32_adapter)
    assert all(c["passed"] for c in data["checks"]), data["checks"]
    assert "loading the base recorded with the adapter" in result.stderr
