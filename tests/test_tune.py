"""``ragguard tune``: config, data formatting, deterministic steps, resume, the 4-bit path (tiny Qwen2, CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import (  # noqa: E402
    INSTRUCTION_RECORDS,
    RAG_RECORDS,
    SHORT_SYSTEM,
    tiny_tokenizer,
    tune_overrides,
    write_records,
)

from ragguard.config import SamplingConfig  # noqa: E402
from ragguard.core.types import Passage  # noqa: E402
from ragguard.errors import ConfigError, UsageError  # noqa: E402
from ragguard.generation.chat import chat_example_ids  # noqa: E402
from ragguard.generation.generators import TransformersGenerator  # noqa: E402
from ragguard.generation.prompts import build_messages  # noqa: E402
from ragguard.tuning.config import TuneConfig, load_tune_config, parse_override  # noqa: E402
from ragguard.tuning.data import load_examples, record_messages, split_examples  # noqa: E402
from ragguard.tuning.tune import learning_rate_at, tune  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ config
def test_the_shipped_config_is_the_seed_003_recipe() -> None:
    cfg = load_tune_config(ROOT / "configs" / "tune-qlora.yaml")
    assert cfg == TuneConfig()
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (8, 32, 0.1)
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    t = cfg.train
    assert (t.learning_rate, t.warmup_ratio, t.lr_scheduler, t.weight_decay) == (1e-4, 0.1, "linear", 0.01)
    assert (t.batch_size, t.gradient_accumulation_steps, t.epochs, t.max_length) == (2, 2, 3, 384)
    assert (t.gradient_checkpointing, t.bf16, t.save_steps, t.tensorboard, t.eval_split) == (True, "auto", 100, True, 0.2)
    assert cfg.model.load_in_4bit and cfg.model.bnb_4bit_quant_type == "nf4" and cfg.model.bnb_4bit_use_double_quant


def test_overrides_are_parsed_and_validated() -> None:
    cfg = TuneConfig().with_overrides(dict([parse_override("train.learning_rate=2e-4"),
                                            parse_override("lora.target_modules=q_proj,v_proj"),
                                            parse_override("train.bf16=false")]))
    assert cfg.train.learning_rate == 2e-4 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.train.bf16 == "false"
    with pytest.raises(ConfigError, match=r"unknown tune config key 'train.epoch'.*train.epochs"):
        TuneConfig().with_overrides({"train.epoch": 1})
    with pytest.raises(ConfigError, match=r"'lora.dropout' has bad value 1.5"):
        TuneConfig().with_overrides({"lora.dropout": 1.5})
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.epochs")


def test_learning_rate_warms_up_then_decays_linearly() -> None:
    cfg = TuneConfig()
    lrs = [learning_rate_at(s, 20, cfg) for s in range(20)]
    assert lrs[0] == pytest.approx(5e-5) and lrs[1] == lrs[2] == pytest.approx(1e-4)  # 2 warm-up steps
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert lrs[-1] == pytest.approx(1e-4 / 18)


# -------------------------------------------------------------------- data
def test_rag_records_get_exactly_the_prompt_ask_builds() -> None:
    tok = tiny_tokenizer()
    cfg = TuneConfig().with_overrides({"prompt.system": SHORT_SYSTEM})
    record = {"question": "How many days?", "context": [{"doc_id": "handbook/leave-annual.md", "text": "25 days."}],
              "answer": "25 days."}
    kind, messages, answer = record_messages(record, cfg.prompt)
    passage = Passage("handbook/leave-annual.md", "x", "25 days.", 1.0)
    assert kind == "rag" and messages == build_messages("How many days?", [passage], SHORT_SYSTEM, 2400)
    prompt_ids, answer_ids = chat_example_ids(tok, messages, answer)
    generator = TransformersGenerator.from_model(torch.nn.Linear(1, 1), tok, SamplingConfig())
    assert prompt_ids == generator.encode_prompt(messages)  # the inference path, token for token
    assert tok.decode(answer_ids) == "25 days.<|im_end|>\n"


def test_labels_mask_the_prompt(tmp_path: Path) -> None:
    data = load_examples(write_records(tmp_path / "d.jsonl", RAG_RECORDS[:2]), tiny_tokenizer(),
                         TuneConfig().prompt, 512)
    for e in data.examples:
        assert e.labels[: e.prompt_tokens] == [-100] * e.prompt_tokens
        assert e.labels[e.prompt_tokens :] == e.input_ids[e.prompt_tokens :]
        assert len(e.input_ids) > e.prompt_tokens


def test_bad_records_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([
        json.dumps(RAG_RECORDS[0]),
        "{not json",
        json.dumps({"question": "Q?", "context": "c"}),
        json.dumps({"instruction": "x", "output": 3}),
        json.dumps({"text": "free text"}),
        json.dumps({"question": "Long?", "context": "word " * 400, "answer": "A."}),
    ]) + "\n", encoding="utf-8")
    prompt = TuneConfig().with_overrides({"prompt.system": SHORT_SYSTEM}).prompt
    data = load_examples(path, tiny_tokenizer(), prompt, 160)
    assert [e.line for e in data.examples] == [1]
    errors = {b.line: b.error for b in data.bad}
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert "not valid JSON" in errors[2] and "missing field 'answer'" in errors[3]
    assert "'output' must be a string" in errors[4] and "expected instruction" in errors[5]
    assert "no room for the answer" in errors[6]


def test_the_example_datasets_are_usable_in_both_formats() -> None:
    tok = tiny_tokenizer()
    rag = load_examples(ROOT / "examples" / "tune" / "rag.jsonl", tok, TuneConfig().prompt, 2048)
    inst = load_examples(ROOT / "examples" / "tune" / "instructions.json", tok, TuneConfig().prompt, 2048)
    assert not rag.bad and not inst.bad
    assert {e.kind for e in rag.examples} == {"rag"} and {e.kind for e in inst.examples} == {"instruction"}
    assert len(rag.examples) >= 10 and len(inst.examples) >= 8


def test_split_is_seeded_and_holds_out_a_fifth() -> None:
    data = load_examples(ROOT / "examples" / "tune" / "instructions.json", tiny_tokenizer(), TuneConfig().prompt, 512)
    train, held = split_examples(data.examples, 0.2, 7)
    assert len(held) == 2 and len(train) == 8
    assert split_examples(data.examples, 0.2, 7) == (train, held)
    assert split_examples(data.examples, 0.2, 8) != (train, held)


def test_an_unusable_dataset_is_refused_before_loading_the_model(tmp_path: Path, tiny_qwen2_dir: Path) -> None:
    path = write_records(tmp_path / "bad.jsonl", [{"text": "no fields we know"}, {"question": "no answer"}])
    with pytest.raises(UsageError, match=r"has no usable record \(2 records: line 1: expected"):
        tune(path, tmp_path / "out", TuneConfig().with_overrides(tune_overrides(tiny_qwen2_dir)), show_progress=False)
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


# ---------------------------------------------------------------- training
def _cfg(base: Path, **extra: object) -> TuneConfig:
    return TuneConfig().with_overrides(tune_overrides(base, **extra))


def test_two_deterministic_runs_give_identical_losses(tmp_path: Path, tiny_qwen2_dir: Path,
                                                      tune_data_file: Path, fp32_adapter: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="ragguard"):
        again = tune(tune_data_file, tmp_path / "again", _cfg(tiny_qwen2_dir), show_progress=False)
    # without a bar (logs, CI): the stages, and the first and last steps of a run shorter than logging_steps
    steps = [m.split(" loss")[0] for m in caplog.messages if m.startswith("step ")]
    assert steps == ["step 1/4", "step 4/4"] and any(m.startswith("loading the base") for m in caplog.messages)
    first = json.loads((fp32_adapter / "ragguard-adapter.json").read_text())
    assert len(again.losses) == 4
    assert again.metrics["train_loss"] == first["metrics"]["train_loss"]
    assert again.metrics["eval_loss"] == first["metrics"]["eval_loss"]
    assert [e["eval_loss"] for e in again.metrics["evaluations"]] == [
        e["eval_loss"] for e in first["metrics"]["evaluations"]]
    # A different seed gives a different run (so the comparison above can fail).
    other = tune(tune_data_file, tmp_path / "other", _cfg(tiny_qwen2_dir, train__seed=7, train__max_steps=1,
                                                          train__probe_prompts=0), show_progress=False)
    assert other.losses[0] != again.losses[0]


def test_the_adapter_folder_records_how_it_was_made(fp32_adapter: Path, tiny_qwen2_dir: Path) -> None:
    from ragguard.generation.sources import weights_sha256

    names = {p.name for p in fp32_adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "ragguard-adapter.json",
            "parity-reference.safetensors", "checkpoints", "logs"} <= names
    assert not list(fp32_adapter.glob("*.bin"))
    assert list((fp32_adapter / "logs").glob("events.out.tfevents.*"))
    meta = json.loads((fp32_adapter / "ragguard-adapter.json").read_text())
    assert meta["base"]["sha256"] == weights_sha256(tiny_qwen2_dir)
    assert meta["quantization"] == {"method": "none", "dtype": "float32"}
    assert meta["prompt"]["system"] == SHORT_SYSTEM and "<|im_start|>" in meta["prompt"]["chat_template"]
    assert meta["training"]["lora"]["r"] == 8 and meta["seeds"]["seed"] == 42 and meta["seeds"]["deterministic"]
    assert meta["base"]["attn_implementation"] == "eager"
    assert meta["environment"]["versions"]["torch"] and meta["environment"]["device"] == "cpu"
    m = meta["metrics"]
    assert m["steps"] == 4 and m["perplexity"] == pytest.approx(2.718281828 ** m["eval_loss"])
    assert meta["data"]["train"] + meta["data"]["validation"] == len(RAG_RECORDS) + len(INSTRUCTION_RECORDS)
    assert meta["data"]["validation"] == 2 and meta["data"]["kinds"] == ["instruction", "rag"]


def test_resume_after_an_interruption_takes_the_same_steps(tmp_path: Path, tiny_qwen2_dir: Path,
                                                           tune_data_file: Path, fp32_adapter: Path) -> None:
    class Stop(Exception):
        pass

    def stop_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir), show_progress=False, on_step=stop_at_3)
    # every train.save_steps (2) and at the end of the first epoch (3 steps)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    with pytest.raises(UsageError, match="--resume"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir), show_progress=False)
    resumed = tune(tune_data_file, out, _cfg(tiny_qwen2_dir), resume=True, show_progress=False)
    assert resumed.resumed_from == 3
    uninterrupted = json.loads((fp32_adapter / "ragguard-adapter.json").read_text())["metrics"]
    assert resumed.metrics["train_loss"] == uninterrupted["train_loss"]
    assert resumed.metrics["eval_loss"] == uninterrupted["eval_loss"]
    # the finished run is not trained over, though its checkpoints are there
    before = (out / "adapter_model.safetensors").read_bytes()
    with pytest.raises(UsageError, match=r"holds a finished adapter \(4 steps\): nothing to resume"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir), resume=True, show_progress=False)
    assert (out / "adapter_model.safetensors").read_bytes() == before


def test_a_resume_names_the_settings_that_differ_and_allows_those_that_do_not_train(
        tmp_path: Path, tiny_qwen2_dir: Path, tune_data_file: Path) -> None:
    class Stop(Exception):
        pass

    def stop_at_2(step: int, loss: float) -> None:
        if step == 2:
            raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir, train__probe_prompts=0), show_progress=False,
             on_step=stop_at_2)
    with pytest.raises(UsageError, match=r"written with other settings: train.learning_rate 0.0001 -> 0.5; rerun"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir, train__learning_rate=0.5, train__probe_prompts=0),
             resume=True, show_progress=False)
    other = write_records(tmp_path / "other.jsonl", RAG_RECORDS)
    with pytest.raises(UsageError, match=r"other settings: the data file .*other.jsonl' \(sha256"):
        tune(other, out, _cfg(tiny_qwen2_dir, train__probe_prompts=0), resume=True, show_progress=False)
    # a checkpoint of an older ragguard (no settings recorded, another run key) is refused for what it is
    from ragguard.tuning.checkpoints import last_checkpoint

    state_file = last_checkpoint(out) / "trainer_state.json"
    kept = state_file.read_text()
    state = json.loads(kept)
    state.pop("settings")
    state["run_key"] = "0" * 16
    state_file.write_text(json.dumps(state))
    with pytest.raises(UsageError, match=r"written by an older ragguard, which keyed runs differently"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir, train__probe_prompts=0), resume=True, show_progress=False)
    state_file.write_text(kept)
    # logging, checkpoints, TensorBoard and probes change no step: resumed
    resumed = tune(tune_data_file, out, _cfg(tiny_qwen2_dir, train__logging_steps=5, train__save_total_limit=3),
                   resume=True, show_progress=False)
    assert resumed.resumed_from == 2 and len(resumed.losses) == 4



def test_resume_never_trains_over_a_finished_adapter_that_left_no_checkpoint(tmp_path: Path, tiny_qwen2_dir: Path,
                                                                             tune_data_file: Path,
                                                                             fp32_adapter: Path) -> None:
    out = tmp_path / "done"
    shutil.copytree(fp32_adapter, out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a run shorter than train.save_steps keeps none
    before = (out / "adapter_model.safetensors").read_bytes()
    with pytest.raises(UsageError, match="holds a finished adapter .*nothing to resume"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir, train__learning_rate=0.5), resume=True, show_progress=False)
    # and without --resume the refusal does not advise the --resume that would be refused
    with pytest.raises(UsageError, match=r"is not empty: choose a new folder \(it holds a finished adapter, kept as "
                                         r"it is\)$"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir), show_progress=False)
    assert (out / "adapter_model.safetensors").read_bytes() == before


def test_qlora_nf4_path_records_its_quantization(nf4_adapter: Path) -> None:
    meta = json.loads((nf4_adapter / "ragguard-adapter.json").read_text())
    assert meta["quantization"] == {"method": "bitsandbytes-4bit", "quant_type": "nf4", "double_quant": True,
                                    "compute_dtype": "float32"}
    assert meta["metrics"]["steps"] == 2 and meta["metrics"]["train_loss"] > 0


def test_unknown_lora_targets_are_refused_with_the_choices(tmp_path: Path, tiny_qwen2_dir: Path,
                                                           tune_data_file: Path) -> None:
    with pytest.raises(UsageError, match=r"\['c_attn'\] are not modules of this model: pick from .*q_proj"):
        tune(tune_data_file, tmp_path / "o", _cfg(tiny_qwen2_dir, lora__target_modules=["c_attn"]),
             show_progress=False)


def test_cli_tune_prints_metrics_and_refuses_empty_data(tmp_path: Path, tiny_qwen2_dir: Path,
                                                        tune_data_file: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    sets = [f"--set={k}={json.dumps(v) if isinstance(v, bool) else v}"
            for k, v in tune_overrides(tiny_qwen2_dir, train__max_steps=1, train__probe_prompts=0).items()]
    result = CliRunner().invoke(app, ["tune", str(tune_data_file), "--out", str(tmp_path / "o"), "--json", *sets])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["steps"] == 1 and len(data["losses"]) == 1 and data["metrics"]["perplexity"] > 1
    # --json writes the ask config too, and names it
    assert data["ask_config"] == str(tmp_path / "o" / "ragguard-ask.yaml") and Path(data["ask_config"]).is_file()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = CliRunner().invoke(app, ["tune", str(empty), "--out", str(tmp_path / "o2"), *sets])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "no usable record" in result.stderr
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = CliRunner().invoke(app, ["tune", str(tune_data_file), "--out", str(afile), *sets])
    assert result.exit_code == 2 and result.stderr.strip().endswith("is a file: give a folder for the adapter")


def test_cli_tune_says_what_an_interrupt_left(tmp_path: Path, tune_data_file: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ragguard.tuning.tune as tune_module
    from ragguard.apps.cli import app

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_module, "tune", interrupted)
    result = CliRunner().invoke(app, ["tune", str(tune_data_file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 130
    line = result.stderr.strip()
    assert "\n" not in line and "nothing saved" in line and "checkpoints" not in line.split("nothing saved")[1]


# ------------------------------------------------------- the embedded SmolLM2
@pytest.mark.slow  # a fresh test cache converts the GGUF first (about 30 s)
@pytest.mark.integration
def test_embedded_model_formats_the_examples_like_ask_does() -> None:
    from transformers import AutoTokenizer

    from ragguard.generation.sources import resolve_model_source
    from ragguard.tuning.data import record_messages

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source("embedded")[0])  # no weights needed
    generator = TransformersGenerator.from_model(torch.nn.Linear(1, 1), tokenizer, SamplingConfig())
    cfg = TuneConfig()
    for name in ("rag.jsonl", "instructions.json"):
        data = load_examples(ROOT / "examples" / "tune" / name, generator.tokenizer, cfg.prompt, cfg.train.max_length)
        assert not data.bad and not any(e.truncated for e in data.examples), name  # fit the default 384 tokens
    record = json.loads((ROOT / "examples" / "tune" / "rag.jsonl").read_text(encoding="utf-8").splitlines()[0])
    _, messages, answer = record_messages(record, cfg.prompt)
    prompt_ids, answer_ids = chat_example_ids(generator.tokenizer, messages, answer)
    assert prompt_ids == generator.encode_prompt(messages)
    assert generator.tokenizer.decode(answer_ids).startswith(answer)


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_model_tunes_and_reloads_bitwise(tmp_path: Path) -> None:
    from ragguard.config import GeneratorConfig
    from ragguard.tuning.doctor import run_checks

    cfg = TuneConfig().with_overrides({"model.load_in_4bit": False, "train.fp32": True, "train.max_steps": 2,
                                       "train.batch_size": 1, "train.gradient_accumulation_steps": 1,
                                       "train.probe_prompts": 1, "train.probe_tokens": 8})
    result = tune(ROOT / "examples" / "tune" / "rag.jsonl", tmp_path / "a", cfg, show_progress=False)
    assert len(result.losses) == 2 and result.metrics["perplexity"] > 1
    generator = TransformersGenerator(GeneratorConfig(adapter=str(tmp_path / "a"), dtype="float32"),
                                      SamplingConfig(max_new_tokens=6))
    checks = {c.name: c for c in run_checks(generator)}
    assert all(c.passed for c in checks.values()), [c.to_dict() for c in checks.values() if not c.passed]
    assert checks["adapter_reload_parity"].figures["bitwise_identical"] == 1


def test_tunes_hint_names_every_key_a_config_needs_to_load_the_adapter(nf4_adapter: Path, tmp_path: Path) -> None:
    from ragguard.apps.cli.models import _load_keys
    from ragguard.config import load_config

    keys = _load_keys(nf4_adapter)
    assert "generator.load_in_4bit: true" in keys and "generator.bnb_4bit_compute_dtype: float32" in keys
    lines = ["generator:"] + [f"  {k.split('.', 1)[1]}" for k in keys.split(", ")]
    config = tmp_path / "load.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_config(config).generator  # every key is one the config knows, with a valid value
    assert loaded.load_in_4bit and loaded.bnb_4bit_quant_type == "nf4" and loaded.bnb_4bit_compute_dtype == "float32"
    # the closing hint's config, written into the adapter folder: it loads the adapter from any working folder
    from ragguard.apps.cli.models import _write_ask_config

    copy = tmp_path / "adapter"
    shutil.copytree(nf4_adapter, copy)
    written = load_config(_write_ask_config(copy)).generator
    assert written.adapter == str(copy.resolve()) and written.load_in_4bit and written.bnb_4bit_quant_type == "nf4"


def test_an_interrupt_while_the_adapter_is_written_loses_no_training(tmp_path: Path, tiny_qwen2_dir: Path,
                                                                      tune_data_file: Path, fp32_adapter: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.tuning.tune as tune_module
    from ragguard.tuning.tune import interrupted_message

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with monkeypatch.context() as mp:  # Ctrl-C while the probes are recorded, after the last step
        mp.setattr(tune_module, "write_reference", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tune(tune_data_file, out, _cfg(tiny_qwen2_dir), show_progress=False)
    assert not (out / "ragguard-adapter.json").exists() and not (out / "adapter_model.safetensors").exists()
    assert (out / "checkpoints" / "step-000004").is_dir()  # the last step's checkpoint
    message = interrupted_message(out, 2)
    assert "after the last training step" in message and "--resume" in message and "step-000004" in message
    with pytest.raises(UsageError, match="pass --resume to continue"):
        tune(tune_data_file, out, _cfg(tiny_qwen2_dir), show_progress=False)
    finished = tune(tune_data_file, out, _cfg(tiny_qwen2_dir), resume=True, show_progress=False)
    assert finished.resumed_from == 4 and not (out / ".tmp-adapter").exists()
    tuned = json.loads((fp32_adapter / "ragguard-adapter.json").read_text())
    assert finished.metrics["eval_loss"] == tuned["metrics"]["eval_loss"]
    for name in ("adapter_model.safetensors", "parity-reference.safetensors"):
        assert (out / name).read_bytes() == (fp32_adapter / name).read_bytes(), name
    assert interrupted_message(out, 2).endswith("holds a finished adapter (nothing lost)")


def test_the_interrupt_message_says_when_nothing_was_saved(tmp_path: Path) -> None:
    from ragguard.tuning.tune import interrupted_message

    (tmp_path / "logs").mkdir()
    message = interrupted_message(tmp_path, 100)
    assert "nothing saved" in message and "start again from step 0" in message and "continue" not in message


def test_an_out_that_is_a_file_is_refused_before_the_model_loads(tmp_path: Path, tune_data_file: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match=r"--out '.*afile' is a file: give a folder"):
        tune(tune_data_file, afile, TuneConfig().with_overrides({"model.base": str(tmp_path / "missing")}),
             show_progress=False)


def test_a_relative_base_is_recorded_as_an_absolute_folder(tmp_path: Path, tiny_qwen2_dir: Path,
                                                          tune_data_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_qwen2_dir.parent)
    result = tune(tune_data_file, tmp_path / "rel", _cfg(Path(tiny_qwen2_dir.name), train__max_steps=1,
                                                          train__probe_prompts=0), show_progress=False)
    meta = json.loads((result.out / "ragguard-adapter.json").read_text())
    assert meta["base"]["model"] == str(tiny_qwen2_dir.resolve()) == meta["training"]["model"]["base"]


def test_a_relative_base_in_a_tune_config_is_read_against_the_configs_folder(tmp_path: Path) -> None:
    (tmp_path / "q64").mkdir()
    config = tmp_path / "tune.yaml"
    config.write_text("model:\n  base: q64\n")
    assert load_tune_config(config).model.base == str((tmp_path / "q64").resolve())
    config.write_text("model:\n  base: Qwen/Qwen2.5-0.5B-Instruct\n")  # no such folder: a hub id
    assert load_tune_config(config).model.base == "Qwen/Qwen2.5-0.5B-Instruct"


def test_a_json_lists_bad_items_are_named_by_position_and_a_null_context_is_no_context(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([RAG_RECORDS[0], "not an object",
                                {"question": "Q?", "context": None, "answer": "A."}]), encoding="utf-8")
    data = load_examples(path, tiny_tokenizer(), TuneConfig().with_overrides({"prompt.system": SHORT_SYSTEM}).prompt,
                         160)
    assert [e.line for e in data.examples] == [1, 3]  # "context": null is read as a record without context
    assert data.where(path, data.bad[0]) == f"{path} item 2" and data.bad_summary().startswith("item 2: ")


def test_an_unsupported_data_type_names_the_types_tune_reads(tmp_path: Path) -> None:
    for name in ("d.txt", "d.csv", "d"):
        (tmp_path / name).write_text("question\nQ?\n")
        with pytest.raises(UsageError, match=r"must be \.jsonl or \.json \(a list of records\), (not \.|a file)") as err:
            load_examples(tmp_path / name, tiny_tokenizer(), TuneConfig().prompt, 160)
        assert "or .csv" not in str(err.value)  # tune refuses .csv: it must not be offered


@pytest.mark.parametrize(("rows", "columns"), [(0, 0), (24, 0), (24, 60)])
def test_the_progress_bar_is_drawn_on_a_terminal_of_any_reported_size(rows: int, columns: int) -> None:
    """A terminal that reports no size (0 x 0: a tty not sized yet) got an empty line from tqdm, the whole run long."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    script = ("from ragguard.tuning.tune import _progress_bar\nbar = _progress_bar(3, 1, True)\n"
              "bar.update(1)\nbar.set_postfix(loss='1.2345')\nbar.update(1)\nbar.close()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    subprocess.run([sys.executable, "-c", script], stderr=follower, check=True, timeout=120, env=env)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower side is closed: all was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    text = drawn.decode("utf-8", "replace")
    assert "tuning" in text and "3/3" in text and "loss=1.23" in text, repr(text)
    assert max(len(line) for line in text.replace("\r\n", "\r").split("\r")) <= (columns or 80)


def test_a_resumed_run_logs_each_step_to_tensorboard_once(tmp_path: Path, tiny_qwen2_dir: Path,
                                                           tune_data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps after the last checkpoint are trained and logged again on --resume: the stopped run's values for
    them are purged (SummaryWriter's purge_step), as TensorBoard would otherwise plot both."""
    import sys
    import types

    events: list[tuple[str, int]] = []  # the event files of OUT/logs, as TensorBoard reads them

    class SummaryWriter:  # what a purge_step does: later events of earlier writers are dropped
        def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
            if purge_step is not None:
                events[:] = [(tag, step) for tag, step in events if step < purge_step]

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            events.append((tag, step))

        def flush(self) -> None:
            pass

        close = flush

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))

    class Stop(Exception):
        pass

    def stop_at_4(step: int, loss: float) -> None:
        if step == 4:
            raise Stop

    out = tmp_path / "run"
    # checkpoints at the end of the first epoch (step 3) and after the last step (5) only
    cfg = _cfg(tiny_qwen2_dir, train__save_steps=100, train__max_steps=5, train__probe_prompts=0)
    with pytest.raises(Stop):
        tune(tune_data_file, out, cfg, show_progress=False, on_step=stop_at_4)
    assert [step for tag, step in events if tag == "train/loss"] == [1, 2, 3, 4]
    resumed = tune(tune_data_file, out, cfg, resume=True, show_progress=False)
    assert resumed.resumed_from == 3
    assert [step for tag, step in events if tag == "train/loss"] == [1, 2, 3, 4, 5]  # step 4 once, the resumed one
