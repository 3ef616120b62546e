"""Loading a YAML config file: parse, validate, resolve relative paths against the file's folder."""

from __future__ import annotations

from pathlib import Path

from ragguard._io import read_user_text
from ragguard.config.schema import Config
from ragguard.config.validation import parse_yaml
from ragguard.errors import ConfigError

__all__ = ["load_config"]


def load_config(path: str | Path | None) -> Config:
    """Load and validate a YAML config; ``None`` gives the embedded default.

    Relative paths inside the file (index, adapter, local model folders) are
    resolved against the file's folder.
    """
    if path is None:
        return Config()
    p = Path(path)
    text = read_user_text(p, "config file", "check the path passed to --config", ConfigError)
    data = parse_yaml(text, f"config file {str(p)!r}")
    config = Config.from_dict(data, source=str(p))
    return _resolve_paths(config, p.parent)


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(value: str | None, always: bool = False) -> str | None:
        if value is None:
            return None
        candidate = Path(value).expanduser()
        if candidate.is_absolute():
            return str(candidate)
        # ``always``: the value is a path, never a hub id (the index), so resolve it even when missing.
        if always or value.startswith((".", "~")) or (base / candidate).exists():
            return str((base / candidate).resolve())
        return value  # a hub id such as "Qwen/Qwen2.5-0.5B-Instruct"

    cfg = config
    if cfg.retrieval.index is not None:
        cfg = cfg.replace("retrieval", index=resolve(cfg.retrieval.index, always=True))
    # A served model's adapter and model are names on the server, not local paths.
    served = cfg.generator.backend == "openai"
    if cfg.generator.adapter is not None and not served:
        cfg = cfg.replace("generator", adapter=resolve(cfg.generator.adapter))
    if cfg.generator.model != "embedded" and not served:
        cfg = cfg.replace("generator", model=resolve(cfg.generator.model))
    if cfg.consistency.nli_model is not None:
        cfg = cfg.replace("consistency", nli_model=resolve(cfg.consistency.nli_model))
    if cfg.consistency.calibration not in (None, "auto"):  # a file, always: found from any working folder
        cfg = cfg.replace("consistency", calibration=resolve(cfg.consistency.calibration, always=True))
    return cfg
