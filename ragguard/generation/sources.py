"""Where a generator's weights come from, and their hash.

A model is a local folder, a hub id, a GGUF checkpoint or ``'embedded'``
(:mod:`ragguard.generation.models` finds the bundled GGUF file). GGUF
checkpoints are dequantized once and cached as safetensors. The weights'
SHA-256 goes into fingerprints and adapter metadata, so inference, tuning and
merging all resolve a model here. Also here: which device and dtype a
generator config asks for.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragguard.errors import ModelLoadError, UsageError
from ragguard.generation.models import cache_dir, embedded_gguf, file_sha256
from ragguard.locking import WriterLock

__all__ = [
    "resolve_device",
    "resolve_dtype",
    "resolve_model_source",
    "weights_sha256",
    "adapter_weights_sha256",
    "hub_weights_sha256",
    "refuse_pickled_weights",
    "load_remedy",
    "require_hub_access",
    "check_weights_source",
]

logger = logging.getLogger("ragguard")


_PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def refuse_pickled_weights(source: str | Path) -> None:
    """Refuse a local model folder whose weights exist only as pickles.

    Every load passes ``use_safetensors=True``, so a pickle is never read; this says why such a
    folder cannot load before transformers answers with advice to unpickle it.
    """
    folder = Path(source)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted({p.name for pattern in _PICKLED for p in folder.glob(pattern)})
    if pickled:
        raise ModelLoadError(
            f"{str(folder)!r} holds pickled weights ({', '.join(pickled[:3])}) and no .safetensors: ragguard never "
            "unpickles weights (a pickle can run code); convert them once where you trust the file "
            "(transformers' from_pretrained, then save_pretrained, writes safetensors)")


def load_remedy(source: str | Path, default: str) -> str:
    """What to do when the weights at ``source`` failed to load: ``default``, unless ``source`` is a
    converted model in ragguard's cache (the user never named it: deleting it makes it anew)."""
    try:
        cached = Path(source).resolve().is_relative_to((cache_dir() / "models").resolve())
    except (OSError, ValueError):
        cached = False
    if cached:
        return f"the converted model cached in {str(source)!r} is damaged: delete that folder and the next start " \
               "converts it again"
    return default


def resolve_device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"generator.device is {spec!r} but no CUDA device is available: use 'cpu' or 'auto'")
    return spec


def resolve_dtype(spec: str, device: str, adapter: str | None = None) -> Any:
    import torch

    if spec == "auto":
        from ragguard.tuning.adapters import tuned_dtype

        tuned = tuned_dtype(adapter)  # an adapter reproduces its tuned model only in the dtype it was tuned in
        if tuned:
            return getattr(torch, tuned)
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        from ragguard.generation import hardware

        return getattr(torch, hardware.auto_cpu_dtype())  # bfloat16 only where the CPU has AMX-BF16
    return getattr(torch, spec)


_MARKER = "ragguard-complete"  # written last into a converted model: the GGUF it came from, its hash, the weights' hash
_CONVERTING = ".convert-"  # a conversion in progress: f"{_CONVERTING}{target.name}-{random}" beside its target


def _load_gguf_cached(folder: Path, filename: str, sha256: str) -> Path:
    """Dequantize a GGUF checkpoint once and keep it as safetensors in the cache.

    The converted weights' hash is written beside them and checked on every load (the hash is memoised by
    size and mtime, so an unchanged file is not read again): a damaged cache would otherwise answer
    gibberish under the GGUF's hash, so it is converted again. One process converts at a time (a lock
    next to the folder; another waits and then uses its result), and a conversion that was stopped
    (Ctrl-C, ``kill -9``) leaves a ``.convert-*`` folder that the next conversion removes.
    """
    import transformers

    target = cache_dir() / "models" / f"{Path(filename).stem}-{sha256[:16]}-tf{transformers.__version__}"
    if _intact(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(target.parent, exc.strerror or type(exc).__name__) from None

    def waiting(holder: str) -> None:
        logger.warning("another process is converting %s (%s): waiting for it", target.name, holder)

    try:
        with WriterLock(target, what="converted model", wait=waiting):
            if _intact(target):  # another process converted it while this one waited
                return target
            for stale in target.parent.glob(f"{_CONVERTING}{target.name}-*"):  # stopped conversions (under the lock: dead)
                shutil.rmtree(stale, ignore_errors=True)
            _convert(folder, filename, sha256, target)
    except UsageError as exc:  # the lock file cannot be written
        raise _unwritable(target.parent, str(exc)) from None
    return target


def _unwritable(folder: Path, why: str) -> ModelLoadError:
    env = os.environ.get("RAGGUARD_CACHE")
    now = f"it is set to {env!r}" if env else f"unset, so {str(cache_dir())!r} is used"
    return ModelLoadError(f"cannot write the converted model under {str(folder)!r} ({why}): set RAGGUARD_CACHE to "
                          f"a writable folder ({now})")


@contextlib.contextmanager
def _quiet_gguf_bar() -> Iterator[None]:
    """Keep transformers' GGUF tensor bar (its own tqdm, which ``quiet_transformers`` does not reach) off a log.

    On a terminal it stays: it redraws in place. Elsewhere (CI logs, ``--json`` piped) its frames would
    pile up on one line; the log lines before and after say what happens and how long it took.
    """
    if sys.stderr.isatty():
        yield
        return
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _intact(target: Path) -> bool:
    """Whether ``target`` holds a finished conversion whose weights still have the hash written with them."""
    marker = target / _MARKER
    if not marker.is_file():
        return False
    lines = marker.read_text(encoding="utf-8").splitlines()
    now = weights_sha256(target)
    if len(lines) < 3:  # converted before the hash was recorded: record it now (nothing to check it against)
        with contextlib.suppress(OSError):
            marker.write_text("\n".join([*lines[:2], now or ""]) + "\n", encoding="utf-8")
        return now is not None
    if now != lines[2]:
        logger.warning("the converted model in %s is damaged (its weights' hash is not the one written when it was "
                       "converted): converting it again", target)
        return False
    return True


def _convert(folder: Path, filename: str, sha256: str, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{_CONVERTING}{target.name}-", dir=target.parent))
    except OSError as exc:
        raise _unwritable(target.parent, exc.strerror or type(exc).__name__) from None
    logger.info("converting %s once (about 30 s); it is cached in %s", filename, target.parent)
    started = time.perf_counter()
    try:
        with _quiet_gguf_bar():
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
            model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename, dtype=torch.float32)
        # The weights are already dequantized to float32; drop the GGUF marker so
        # transformers agrees to serialise them as ordinary safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        # A cache warmed by one user (a Docker build as root) is read by others: mkdtemp made it private.
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
        (tmp / _MARKER).write_text(f"{folder / filename}\n{sha256}\n{weights_sha256(tmp)}\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        logger.info("converted %s in %.0f s", filename, time.perf_counter() - started)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise ModelLoadError(f"no space left on the disk of {str(target.parent)!r} while converting {filename} "
                                 "(it needs about 4 times the GGUF's size): free some, or set RAGGUARD_CACHE to a "
                                 "folder on another disk") from None
        raise
    except BaseException:  # Ctrl-C too: no half-written folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def weights_sha256(folder: Path) -> str | None:
    """Hash of a model folder's safetensors weights (None when it holds none).

    One file: that file's SHA-256. Several shards: the SHA-256 of their
    ``name:sha256`` lines, so every shard counts.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{f.name}:{file_sha256(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Files in an adapter folder that are not its weights (ragguard tune's parity reference: probe logits).
_NOT_ADAPTER_WEIGHTS = ("parity-reference.safetensors",)


def adapter_weights_sha256(folder: Path) -> str | None:
    """Hash of a LoRA adapter's weights: the SHA-256 of ``adapter_model.safetensors`` (what ``sha256sum``
    prints for that file), or None when the folder has no weights.

    Only the weights: ``parity-reference.safetensors`` (the probe logits ``ragguard tune`` records) and the
    JSON files are left out, so two runs that wrote byte-identical weights get the same hash. A folder without
    ``adapter_model.safetensors`` is hashed like a model folder, its other safetensors files only.
    """
    folder = Path(folder)
    if (folder / ADAPTER_WEIGHTS).is_file():
        return file_sha256(folder / ADAPTER_WEIGHTS)
    files = sorted(f for f in folder.glob("*.safetensors") if f.name not in _NOT_ADAPTER_WEIGHTS)
    if not files:
        return None
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(f"{f.name}:{file_sha256(f)}\n" for f in files).encode()).hexdigest()


def resolve_model_source(model: str, gguf_file: str | None = None, key: str = "generator.model") -> tuple[str, str | None]:
    """Where to load ``model`` from (a folder or a hub id) and the hash of its weights.

    ``'embedded'`` and GGUF checkpoints are converted once to safetensors in
    the cache (see :func:`_load_gguf_cached`); their hash is the GGUF file's.
    """
    if model == "embedded" or gguf_file:
        if model == "embedded":
            gguf = embedded_gguf()
        else:
            gguf = Path(model) / str(gguf_file)
            if not gguf.is_file():
                raise ModelLoadError(f"GGUF file {str(gguf)!r} not found: check generator.model and generator.gguf_file")
        sha = file_sha256(gguf)
        return str(_load_gguf_cached(gguf.parent, gguf.name, sha)), sha
    local = Path(model).expanduser()
    if model.startswith(("/", "./", "../", "~")) and not local.is_dir():
        raise ModelLoadError(
            f"generator.model {model!r} is not a folder: check the path, or use a hub id "
            "such as Qwen/Qwen2.5-0.5B-Instruct"
        )
    if local.is_dir():
        return str(local), weights_sha256(local)
    require_hub_access(model, key)
    return model, hub_weights_sha256(model)


def check_weights_source(source: str, key: str) -> None:
    """Before a loader reads ``source`` (config key ``key``): a local folder must hold safetensors
    (:func:`refuse_pickled_weights`), a hub id must be cached or reachable (:func:`require_hub_access`)."""
    if Path(source).expanduser().is_dir():
        refuse_pickled_weights(Path(source).expanduser())
    else:
        require_hub_access(source, key)


def require_hub_access(repo_id: str, key: str) -> None:
    """Refuse at once a hub id that is neither in the local hub cache nor downloadable from here.

    Without this, transformers retries each file for about a minute and prints a retry line each time
    before failing. One probe of the hub (5 s at most) decides. Under ``HF_HUB_OFFLINE=1`` the cache alone
    decides, and the refusal says that the setting is why (transformers' own message blames the network).
    """
    import huggingface_hub
    from huggingface_hub import constants

    try:
        config = huggingface_hub.try_to_load_from_cache(repo_id, "config.json")
        if isinstance(config, str) and _weights_cached(Path(config).parent):
            return
    except Exception:  # noqa: BLE001 - not a valid repo id: the probe, then the loader, say what is wrong
        pass
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"{key} {repo_id!r} is not in the local hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: "
            f"download it where there is network (`hf download {repo_id}`) and copy the cache, unset HF_HUB_OFFLINE, "
            f"or set {key} to a local folder")
    try:
        huggingface_hub.get_session().head(constants.ENDPOINT, timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the hub: DNS, refused, timeout, proxy
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ModelLoadError(
            f"{key} {repo_id!r} is not in the local hub cache and {constants.ENDPOINT} cannot be reached ({reason}): "
            f"download it where there is network (`hf download {repo_id}`) and copy the cache, or set {key} to a "
            "local folder") from None


def _weights_cached(snapshot: Path) -> bool:
    """Whether a hub snapshot folder holds its safetensors weights (every shard), not only its config.

    A download stopped after ``config.json`` leaves a snapshot without weights; counting it as cached
    sent the loader into minutes of silent retries offline."""
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        return all((snapshot / shard).is_file() for shard in shards)
    return any(snapshot.glob("*.safetensors"))


def hub_weights_sha256(repo_id: str) -> str | None:
    """Hash of a hub model's safetensors weights, read from the local hub cache.

    Nothing is downloaded: returns None when the model is not cached yet
    (callers fill the hash in after their own download).
    """
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, local_files_only=True, allow_patterns=["*.safetensors", "*.json"])
    except Exception:  # noqa: BLE001 - not cached yet: the hash is filled in after the download
        return None
    return weights_sha256(Path(folder))
