"""What the model cache holds, and pruning what no install of this version will read again.

The cache (:func:`ragguard.generation.models.cache_dir`) holds GGUF checkpoints converted to
safetensors, one folder per source file, hash and transformers version
(``{stem}-{sha256[:16]}-tf{version}``), and memoised file hashes (``hashes/``). An upgrade of
transformers converts the GGUF again into a new folder and leaves the old one (about 500 MB for the
embedded model) behind. Nothing is pruned on load: another install sharing the cache may still run
the older transformers, and readers take no lock. :func:`prune` removes, when asked
(``ragguard cache --prune``):

* a conversion **superseded** by a finished conversion of the same GGUF (same stem and hash) for the
  transformers installed now;
* a conversion whose source GGUF file is gone from disk;
* a stopped conversion (``.convert-*``) whose folder's lock no converter holds;
* a hash memo whose file is gone or has changed since (its key names the size and mtime).

A folder whose lock is held (a conversion running now) is skipped and said to be.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragguard.errors import UsageError
from ragguard.generation.models import cache_dir, memo_key
from ragguard.generation.sources import _CONVERTING, _MARKER
from ragguard.locking import WriterLock

__all__ = ["CachedModel", "cached_models", "prune", "folder_size"]

_NAME = re.compile(r"^(?P<source>.+-[0-9a-f]{16})-tf(?P<transformers>.+)$")


@dataclass(frozen=True)
class CachedModel:
    """One folder under ``models/``: a conversion, or a stopped one (``.convert-*``)."""

    path: Path
    size: int
    transformers: str | None  # the version it was converted with (None: a stopped conversion)
    source_file: str | None  # the GGUF it came from, as its marker records it
    stale: str | None  # why --prune removes it, or None when it is kept

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "size": self.size, "transformers": self.transformers,
                "source_file": self.source_file, "stale": self.stale}


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _source_file(folder: Path) -> str | None:
    try:
        return (folder / _MARKER).read_text(encoding="utf-8").splitlines()[0] or None
    except (OSError, IndexError):
        return None


def cached_models(transformers_version: str | None = None) -> list[CachedModel]:
    """Every folder under the cache's ``models/``, with why ``--prune`` would remove it (``stale``)."""
    if transformers_version is None:
        import transformers

        transformers_version = transformers.__version__
    models = cache_dir() / "models"
    if not models.is_dir():
        return []
    folders = sorted(p for p in models.iterdir() if p.is_dir())
    finished = {p.name for p in folders if (p / _MARKER).is_file()}
    found = []
    for folder in folders:
        if folder.name.startswith(_CONVERTING):
            found.append(CachedModel(folder, folder_size(folder), None, None, "a stopped conversion"))
            continue
        m = _NAME.match(folder.name)
        version = m.group("transformers") if m else None
        source = _source_file(folder)
        stale = None
        if m and version != transformers_version and f"{m.group('source')}-tf{transformers_version}" in finished:
            stale = f"superseded by its conversion for transformers {transformers_version}"
        elif source and not Path(source).is_file():
            stale = "its GGUF file is gone"
        found.append(CachedModel(folder, folder_size(folder), version, source, stale))
    return found


def _stale_memos() -> list[Path]:
    stale = []
    for memo in sorted((cache_dir() / "hashes").glob("*.json")):
        try:
            path = Path(json.loads(memo.read_text(encoding="utf-8"))["path"])
        except (OSError, ValueError, KeyError, TypeError):
            stale.append(memo)  # unreadable
            continue
        if not path.is_absolute():
            continue  # written relative to another process's working folder: cannot be judged from here
        try:
            current = memo_key(path)
        except OSError:
            stale.append(memo)  # its file is gone
            continue
        if memo.stem != current:  # the file changed since: this memo is never read again
            stale.append(memo)
    return stale


def prune(transformers_version: str | None = None) -> dict[str, Any]:
    """Remove the stale folders of :func:`cached_models` and the stale hash memos.

    Returns:
        ``{"removed": [{path, size, why}], "skipped": [{path, why}], "freed": bytes, "memos": n}``.
    """
    removed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for model in cached_models(transformers_version):
        if model.stale is None:
            continue
        target = model.path
        if model.transformers is None:  # a stopped conversion: its converter held the lock of the folder it made
            name = model.path.name[len(_CONVERTING):]
            target = model.path.parent / name.rsplit("-", 1)[0]
        try:
            with WriterLock(target, what="converted model"):
                shutil.rmtree(model.path)
        except UsageError:
            skipped.append({"path": str(model.path), "why": "a conversion holds its lock now"})
            continue
        except OSError as exc:
            skipped.append({"path": str(model.path), "why": exc.strerror or type(exc).__name__})
            continue
        removed.append({"path": str(model.path), "size": model.size, "why": model.stale})
    memos = 0
    for memo in _stale_memos():
        try:
            memo.unlink()
            memos += 1
        except OSError:
            pass
    return {"removed": removed, "skipped": skipped, "freed": sum(r["size"] for r in removed), "memos": memos}
