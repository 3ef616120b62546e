"""The pipelines the components share: one loaded :class:`RagGuard` per settings, and its lock; and the
indexes the retrievers share: one loaded index per embedder and folder."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragguard.config import Config, load_config
from ragguard.errors import ConfigError, RagGuardError, UsageError
from ragguard.pipeline import RagGuard, build_retriever, bundled_index_path, retriever_with_options

__all__ = ["as_config", "clear_cache", "embedder_for", "pipeline_for", "ragguard_errors", "retriever_for",
           "settings_for"]


class _Shared:
    """A loaded pipeline, the lock that serialises its use, and the watcher that reloads its index when it
    changes on disk (``ragguard index add`` or a rebuild while the app runs), as ``ragguard serve`` does."""

    def __init__(self, guard: RagGuard) -> None:
        from ragguard.retrieval.index.watch import IndexWatcher

        self.guard = guard
        self.lock = threading.RLock()
        self.watcher = IndexWatcher(guard)


class _SharedIndex:
    """A loaded index, the embedder that searches it, and the watcher that reloads it when it changes on disk."""

    def __init__(self, cfg: Config, folder: str) -> None:
        from ragguard.retrieval.index.watch import IndexWatcher

        self.retriever = build_retriever(cfg, embedder_for(cfg), folder)
        self.index_path = folder
        self.watcher = IndexWatcher(self)  # swaps self.retriever for one over the reloaded index


_PIPELINES: dict[tuple[Any, ...], _Shared] = {}
_INDEXES: dict[tuple[Any, ...], _SharedIndex] = {}
_EMBEDDERS: dict[Any, Any] = {}
_EMBEDDERS_LOCK = threading.Lock()  # its own: an index is built (under _PIPELINES_LOCK) with a shared embedder
_PIPELINES_LOCK = threading.Lock()
_GUARD_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def ragguard_errors() -> Iterator[None]:
    """Let a component's constructor raise ragguard's own error (a missing config file is a ``ConfigError``
    that ``except ConfigError`` catches) instead of the pydantic ``ValidationError`` that wraps it.
    Errors of a field's type (``samples="x"``) stay pydantic's."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        for error in exc.errors():
            original = (error.get("ctx") or {}).get("error")
            if isinstance(original, RagGuardError):
                raise original from None
        raise


def clear_cache() -> None:
    """Forget the pipelines, retrievers' indexes and embedders shared by components (their weights are freed once
    unused)."""
    with _PIPELINES_LOCK:
        _PIPELINES.clear()
        _INDEXES.clear()
    with _EMBEDDERS_LOCK:
        _EMBEDDERS.clear()


def embedder_for(cfg: Config) -> Any:
    """The process-wide embedder for ``cfg.embedder`` (its backend: sentence-transformers or an OpenAI-compatible
    server), built on first use: every :class:`ConsistencyGuard` and retriever with these settings shares one
    loaded model instead of loading its own."""
    from ragguard.generation.backends import build_embedder

    with _EMBEDDERS_LOCK:
        embedder = _EMBEDDERS.get(cfg.embedder)
        if embedder is None:
            embedder = _EMBEDDERS[cfg.embedder] = build_embedder(cfg.embedder)
    return embedder


def as_config(value: Any) -> Config:
    """A ragguard :class:`Config` from a YAML path, a Config, or ``None`` (the embedded default)."""
    if value is None:
        return Config()
    if isinstance(value, Config):
        return value
    if isinstance(value, (str, Path)):
        return load_config(value)
    raise ConfigError(
        f"config_path must be a YAML file path or a ragguard Config, got {type(value).__name__} {value!r}: "
        "pass e.g. config_path='configs/default.yaml'"
    )


def settings_for(
    guard: Any, config_path: Any, index_path: str | None, model: str | None = None, *, fields: str = "config_path/index_path"
) -> Config:
    """A component's base config: its ``guard``'s, else the config file with the index and model fields applied.

    Raises:
        UsageError: when ``guard`` is not a RagGuard, or comes with config_path/index_path/model.
    """
    if guard is not None:
        if not isinstance(guard, RagGuard):
            raise UsageError(f"guard must be a ragguard.RagGuard, got {type(guard).__name__}")
        if config_path is not None or index_path is not None or model is not None:
            raise UsageError(f"pass either guard or {fields}, not both")
        return guard.config
    cfg = as_config(config_path)
    if index_path is not None:
        cfg = cfg.replace("retrieval", index=str(Path(index_path).expanduser().resolve()))
    if model is not None:
        cfg = cfg.replace("generator", model=model)
    return cfg


def _shared_pipeline(cfg: Config, retrieval: bool) -> _Shared:
    """The process-wide pipeline for these generator, embedder and index settings (built on first use)."""
    index = (cfg.retrieval.index or str(bundled_index_path())) if retrieval else None
    key = (cfg.generator, cfg.embedder, index)
    with _PIPELINES_LOCK:
        shared = _PIPELINES.get(key)
        if shared is None:
            if index is not None:
                guard = RagGuard.from_config(cfg.replace("retrieval", index=index))
            else:  # no index to load or verify
                guard = RagGuard.from_config(cfg, retrieval=False)
            shared = _PIPELINES[key] = _Shared(guard)
    return shared


def _lock_for(guard: RagGuard) -> threading.RLock:
    with _PIPELINES_LOCK:
        lock = _GUARD_LOCKS.get(guard)
        if lock is None:
            lock = _GUARD_LOCKS[guard] = threading.RLock()
    return lock


def pipeline_for(guard: RagGuard | None, cfg: Config, retrieval: bool) -> tuple[RagGuard, threading.RLock]:
    """The loaded pipeline a call runs on (the component's own ``guard``, else the shared one) and its lock.

    Ask it through ``pipeline.with_settings(cfg)``, holding the lock.
    """
    if guard is not None:
        return guard, _lock_for(guard)
    shared = _shared_pipeline(cfg, retrieval)
    with shared.lock:  # between questions: no question is answered from two indexes
        shared.watcher.refresh()
    return shared.guard, shared.lock


def retriever_for(cfg: Config, folder: str) -> Any:
    """The process-wide retriever over the index ``folder`` with ``cfg``'s embedder, searching with
    ``cfg.retrieval``'s options: retrievers over the same index and embedder settings share one loaded
    embedder and index, as the other components share pipelines. Built on first use (the index verified
    then); reloaded when the folder changed on disk."""
    key = (cfg.embedder, folder)
    with _PIPELINES_LOCK:
        shared = _INDEXES.get(key)
        if shared is None:
            shared = _INDEXES[key] = _SharedIndex(cfg, folder)
    shared.watcher.refresh()  # one stat when nothing changed
    return retriever_with_options(shared.retriever, cfg)
