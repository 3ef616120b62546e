"""``ragguard config``: check a config the way ``ask`` would read it, without loading a model, and print every
setting it resolves to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard.apps.cli.common import app, handle_errors


@app.command("config")
@handle_errors
def config_check(
    config: Path | None = typer.Option(None, "--config", help="YAML config to check (default: the embedded default)."),
    index: Path | None = typer.Option(None, "--index", help="Index folder, as ask/audit/serve take it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a config without loading a model: every key known and in range, relative paths resolved against the
    file's folder, the index loaded and verified against the embedder, the calibration file read; then print every
    setting with the ones the file sets marked (exit 2, one line, at the first problem)."""
    from ragguard.config import load_config
    from ragguard.pipeline import RagGuard

    cfg = load_config(config)
    guard = RagGuard.from_config(cfg, index=index)  # what ask does before its first question: no model is loaded
    chosen = _set_in_file(config)
    settings = {f"{section}.{key}": value for section, keys in guard.config.to_dict().items()
                for key, value in keys.items()}
    retriever = getattr(guard, "retriever", None)
    loaded = getattr(retriever, "index", None)
    if loaded is not None:
        loaded.check_embedder(guard.embedder)  # ask checks it at its first search: a mismatch is refused here now
    summary = {
        "config": str(config) if config is not None else None,
        "valid": True,
        "config_hash": guard.config.hash(),
        "index": guard.index_path,
        "index_chunks": len(loaded.chunks) if loaded is not None and hasattr(loaded, "chunks") else None,
        "index_embedder": getattr(loaded, "embedder_name", None),
        "settings": settings,
        "set_in_file": sorted(k for k in settings if k in chosen),
    }
    if as_json:
        typer.echo(json_line(summary))
        return
    where = f"config {config}" if config is not None else "the embedded default config"
    chunks = f", {summary['index_chunks']} chunks" if summary["index_chunks"] is not None else ""
    typer.echo(f"{where} is valid (hash {summary['config_hash']}); index {summary['index']}{chunks}, built with "
               f"{summary['index_embedder']}; no model was loaded")
    width = max(len(k) for k in settings)
    for key, value in settings.items():
        mark = "  # set in the file" if key in chosen else ""
        typer.echo(f"{key:<{width}}  {_shown(value)}{mark}")


def _set_in_file(path: Path | None) -> set[str]:
    """``section.key`` of every setting the YAML file gives (the rest are defaults)."""
    if path is None:
        return set()
    from ragguard.config.validation import parse_yaml

    data: Any = parse_yaml(path.read_text(encoding="utf-8-sig"), str(path))
    if not isinstance(data, dict):
        return set()
    return {f"{section}.{key}" for section, keys in data.items() if isinstance(keys, dict) for key in keys}


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
