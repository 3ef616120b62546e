"""The ``ragguard tune`` configuration: the QLoRA recipe of seed 003 as defaults.

``configs/tune-qlora.yaml`` spells out the same defaults. Every value can be
changed in a YAML file (sections ``model``, ``lora``, ``train``, ``prompt``)
or on the command line with ``--set section.key=value``. Unknown keys are
refused with the valid ones listed; bad values name the key and show the value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ragguard._io import read_user_text
from ragguard.config import DEFAULT_SYSTEM_PROMPT, sections_from_dict
from ragguard.config.validation import parse_yaml
from ragguard.errors import ConfigError

__all__ = [
    "ModelSection",
    "LoraSection",
    "TrainSection",
    "TunePromptSection",
    "TuneConfig",
    "load_tune_config",
    "parse_override",
]

DTYPES = ("float32", "bfloat16", "float16")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _require(cond: bool, section: str, name: str, value: Any, expected: str) -> None:
    if not cond:
        raise ConfigError(f"tune config key '{section}.{name}' has bad value {value!r}: expected {expected}")


@dataclass(frozen=True)
class ModelSection:
    """The base model and how its weights are held while training."""

    base: str = _help("'embedded' (SmolLM2-135M-Instruct), a local folder or a hub id such as "
                      "Qwen/Qwen2.5-0.5B-Instruct", "embedded")
    gguf_file: str | None = _help("GGUF file inside `base` when the base is a GGUF checkpoint", None)
    load_in_4bit: bool = _help("QLoRA: hold the base in 4-bit through bitsandbytes", True)
    bnb_4bit_quant_type: str = _help("'nf4' (QLoRA) or 'fp4'", "nf4")
    bnb_4bit_use_double_quant: bool = _help("also quantize the quantization constants", True)
    bnb_4bit_compute_dtype: str = _help("compute dtype of 4-bit layers: 'auto' (bfloat16 where supported, "
                                        "else float32), float32, bfloat16 or float16", "auto")
    dtype: str = _help("dtype of the weights that are not quantized: 'auto' (bfloat16 where supported, "
                       "else float32), float32, bfloat16 or float16", "auto")
    device: str = _help("'auto', 'cpu', 'cuda' or 'cuda:N'", "auto")
    attn_implementation: str = _help("'sdpa', 'eager' (forced by train.deterministic) or 'flash_attention_2'",
                                     "sdpa")
    trust_remote_code: bool = _help("allow model repositories to run their own code", False)

    def __post_init__(self) -> None:
        s = "model"
        _require(bool(self.base and self.base.strip()), s, "base", self.base, "a model name or folder")
        _require(self.bnb_4bit_quant_type in ("nf4", "fp4"), s, "bnb_4bit_quant_type", self.bnb_4bit_quant_type,
                 "'nf4' or 'fp4'")
        _require(self.bnb_4bit_compute_dtype in ("auto",) + DTYPES, s, "bnb_4bit_compute_dtype",
                 self.bnb_4bit_compute_dtype, "auto, float32, bfloat16 or float16")
        _require(self.dtype in ("auto",) + DTYPES, s, "dtype", self.dtype, "auto, float32, bfloat16 or float16")
        _require(self.device in ("auto", "cpu") or self.device.startswith("cuda"), s, "device", self.device,
                 "'auto', 'cpu', 'cuda' or 'cuda:N'")
        _require(self.attn_implementation in ("sdpa", "eager", "flash_attention_2"), s, "attn_implementation",
                 self.attn_implementation, "'sdpa', 'eager' or 'flash_attention_2'")


@dataclass(frozen=True)
class LoraSection:
    """The LoRA adapter."""

    r: int = _help("rank of the update matrices", 8)
    alpha: int = _help("scaling numerator: updates are scaled by alpha / r", 32)
    dropout: float = _help("dropout on the adapter's input while training (inactive at inference)", 0.1)
    target_modules: list[str] = _help("projections that get an adapter", factory=lambda: list(PROJECTIONS))

    def __post_init__(self) -> None:
        s = "lora"
        _require(isinstance(self.r, int) and self.r >= 1, s, "r", self.r, "an integer >= 1")
        _require(isinstance(self.alpha, int) and self.alpha >= 1, s, "alpha", self.alpha, "an integer >= 1")
        _require(0 <= self.dropout < 1, s, "dropout", self.dropout, "a number in [0, 1)")
        _require(bool(self.target_modules) and all(isinstance(m, str) and m for m in self.target_modules), s,
                 "target_modules", self.target_modules, "a non-empty list of module names")


@dataclass(frozen=True)
class TrainSection:
    """The optimisation schedule, checkpoints, logging and determinism."""

    epochs: int = _help("passes over the training split", 3)
    max_steps: int | None = _help("stop after this many optimizer steps (null: run every epoch)", None)
    learning_rate: float = _help("peak learning rate (AdamW)", 1e-4)
    warmup_ratio: float = _help("share of the steps spent warming the learning rate up from 0", 0.1)
    lr_scheduler: str = _help("'linear' (decay to 0 after warm-up) or 'constant'", "linear")
    weight_decay: float = _help("AdamW weight decay", 0.01)
    batch_size: int = _help("examples per micro-batch", 2)
    gradient_accumulation_steps: int = _help("micro-batches per optimizer step", 2)
    max_length: int = _help("longest example in tokens; longer answers are cut, longer prompts are refused", 384)
    gradient_checkpointing: bool = _help("recompute activations in the backward pass (less memory)", True)
    bf16: str = _help("'auto' (bfloat16 on GPUs that support it), 'true' or 'false'", "auto")
    fp32: bool = _help("train and record everything in float32 (slowest, most reproducible; seed 002)", False)
    max_grad_norm: float = _help("gradient clipping norm (0: off)", 1.0)
    save_steps: int = _help("write a resumable checkpoint every this many optimizer steps (and at the end of "
                            "every epoch and after the last step)", 100)
    save_total_limit: int = _help("checkpoints kept (older ones are deleted)", 2)
    logging_steps: int = _help("log the training loss every this many optimizer steps", 10)
    eval_split: float = _help("share of the records held out for validation loss and perplexity", 0.2)
    eval_steps: int | None = _help("also evaluate every this many steps (null: after each epoch)", None)
    tensorboard: bool = _help("write TensorBoard logs to OUT/logs", True)
    seed: int = _help("seed of the data split, the shuffling, the adapter's initialisation and dropout", 42)
    deterministic: bool = _help("eager attention and transformers.enable_full_determinism (seed 002)", False)
    probe_prompts: int = _help("validation prompts recorded in parity-reference.safetensors for later checks", 3)
    probe_tokens: int = _help("greedy tokens recorded per probe prompt", 32)

    def __post_init__(self) -> None:
        s = "train"
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps",
                     "save_total_limit"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, s, name, value, "an integer >= 1")
        _require(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1), s,
                 "max_steps", self.max_steps, "null or an integer >= 1")
        _require(self.eval_steps is None or (isinstance(self.eval_steps, int) and self.eval_steps >= 1), s,
                 "eval_steps", self.eval_steps, "null or an integer >= 1")
        _require(self.learning_rate > 0, s, "learning_rate", self.learning_rate, "a number > 0")
        _require(0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        _require(self.lr_scheduler in ("linear", "constant"), s, "lr_scheduler", self.lr_scheduler,
                 "'linear' or 'constant'")
        _require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "a number >= 0")
        _require(isinstance(self.max_length, int) and self.max_length >= 8, s, "max_length", self.max_length,
                 "an integer >= 8")
        _require(self.bf16 in ("auto", "true", "false"), s, "bf16", self.bf16, "'auto', true or false")
        _require(self.max_grad_norm >= 0, s, "max_grad_norm", self.max_grad_norm, "a number >= 0")
        _require(0 <= self.eval_split < 1, s, "eval_split", self.eval_split, "a number in [0, 1)")
        _require(isinstance(self.seed, int) and self.seed >= 0, s, "seed", self.seed, "an integer >= 0")
        _require(isinstance(self.probe_prompts, int) and 0 <= self.probe_prompts <= 16, s, "probe_prompts",
                 self.probe_prompts, "an integer from 0 to 16")
        _require(isinstance(self.probe_tokens, int) and 1 <= self.probe_tokens <= 256, s, "probe_tokens",
                 self.probe_tokens, "an integer from 1 to 256")


@dataclass(frozen=True)
class TunePromptSection:
    """How records become chat messages (RAG records use exactly the prompt builder of ``ask``)."""

    system: str = _help("system prompt of RAG records: keep it equal to prompt.system of the config you ask "
                        "with", DEFAULT_SYSTEM_PROMPT)
    max_context_chars: int = _help("context budget of RAG records, as prompt.max_context_chars", 2400)
    instruction_system: str | None = _help("system prompt of instruction records without their own `system` "
                                           "field (null: none, the chat template's default applies)", None)

    def __post_init__(self) -> None:
        _require(isinstance(self.max_context_chars, int) and self.max_context_chars >= 0, "prompt",
                 "max_context_chars", self.max_context_chars, "an integer >= 0")


_SECTIONS: dict[str, type] = {"model": ModelSection, "lora": LoraSection, "train": TrainSection,
                              "prompt": TunePromptSection}


@dataclass(frozen=True)
class TuneConfig:
    """The whole tuning configuration."""

    model: ModelSection = _help("the base model", factory=ModelSection)
    lora: LoraSection = _help("the adapter", factory=LoraSection)
    train: TrainSection = _help("the optimisation", factory=TrainSection)
    prompt: TunePromptSection = _help("record formatting", factory=TunePromptSection)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "tune config") -> TuneConfig:
        """A validated config; unknown sections or keys raise :class:`ConfigError`."""
        return cls(**sections_from_dict(data, _SECTIONS, source, _coerce, kind="tune config"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> TuneConfig:
        """A copy with ``{"section.key": value}`` changes applied and validated."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in _SECTIONS or not key:
                raise ConfigError(f"cannot set {dotted!r}: use section.key with a section among "
                                  + ", ".join(_SECTIONS))
            data[section][key] = value
        return TuneConfig.from_dict(data, source="--set")


def _coerce(section_cls: type, section: str, key: str, value: Any) -> Any:
    """Check a YAML value against the field's annotation."""
    annotation = str({f.name: f.type for f in fields(section_cls)}[key])
    where = f"tune config key '{section}.{key}'"
    if value is None:
        if "None" in annotation:
            return None
        raise ConfigError(f"{where} must not be empty")
    if key == "bf16":  # 'auto' or a YAML boolean
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).lower()
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} has bad value {value!r}: expected true or false")
        return value
    if annotation.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} has bad value {value!r}: expected an integer")
        return value
    if annotation.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} has bad value {value!r}: expected a number")
        return float(value)
    if annotation.startswith("list"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where} has bad value {value!r}: expected a list")
        return [str(v) for v in value]
    if annotation.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where} has bad value {value!r}: expected a string")
        return value
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.learning_rate=2e-4'`` -> ``('train.learning_rate', 0.0002)`` (values parsed as YAML)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r} is not key=value: use e.g. --set train.epochs=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads 1e-4 as a string; accept plain float spellings.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.strip(), value


def load_tune_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """Load a tune config (``None``: the defaults, i.e. ``configs/tune-qlora.yaml``) and apply overrides.

    A relative ``model.base`` folder (a path starting with ``.`` or ``~``, or a folder that exists next to the
    file) is resolved against the file's folder; any other name is a hub id.
    """
    if path is None:
        cfg = TuneConfig()
    else:
        p = Path(path)
        text = read_user_text(p, "tune config file", "check the path passed to --config", ConfigError)
        data = parse_yaml(text, f"tune config {str(p)!r}")
        cfg = TuneConfig.from_dict(_floats(data), source=str(p))
        base = cfg.model.base
        local = p.parent / Path(base).expanduser()
        # A path (./, ../, ~) or a folder next to the file; anything else stays a hub id (Qwen/Qwen2.5-0.5B).
        if base != "embedded" and (base.startswith((".", "~")) or local.is_dir()):
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, base=str(local.resolve())))
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg


def _floats(data: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string: turn such strings into floats."""
    if isinstance(data, dict):
        return {k: _floats(v) for k, v in data.items()}
    if isinstance(data, str):
        try:
            if any(c in data for c in "eE") and data.strip()[0] in "0123456789.-+":
                return float(data)
        except (ValueError, IndexError):
            return data
    return data
