"""Keeping a running process's index current: reload it when ``ragguard index add`` (or a rebuild) changed it.

Used by ``ragguard serve`` and by the pipelines the LangChain components share.
Reload, rather than only report staleness: a server that knows its index is
stale and keeps answering from it still gives users outdated answers, and
restarting it means reloading the models (minutes). Reloading the index alone
is safe because of how indexes are written and read: a writer swaps a finished
folder into place with renames (:mod:`ragguard.retrieval.index.write`), the
manifest lists every file's SHA-256, and :meth:`KnowledgeIndex.load` checks
them, so a folder read in the middle of a swap fails to load instead of
loading half old, half new. The check runs between questions (in serve's
batching thread between batches; in a component's call under its pipeline's
lock), so no question is ever answered from two indexes. A change that cannot
be loaded (a damaged folder, another embedder) keeps the old index, and
serve's ``/healthz`` and every record say so (``stale``, the reason) until a
later change loads.

The version is the first 16 hex digits of the manifest's SHA-256: the
manifest holds every file's checksum, so it names the index content.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ragguard.errors import RagGuardError
from ragguard.retrieval.index.manifest import MANIFEST

__all__ = ["IndexWatcher"]

logger = logging.getLogger("ragguard")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _version(path: Path) -> str | None:
    try:
        return hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


class IndexWatcher:
    """Reloads the index of ``guard`` (an :class:`~ragguard.retrieval.index.IndexRetriever` over a folder) when it changes.

    A guard without an index folder, or whose retriever does not search a
    loaded :class:`~ragguard.retrieval.index.KnowledgeIndex`, is left alone
    (``status()`` says ``{"path": None}``).
    """

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        retriever = getattr(guard, "retriever", None)
        path = getattr(guard, "index_path", None)
        self.path = Path(path) if path and hasattr(retriever, "index") else None
        self._lock = threading.Lock()
        self._stamp = _stamp(self.path) if self.path else None
        self.version = _version(self.path) if self.path else None
        self.loaded_at = time.time()
        self.error: str | None = None
        self.reloads = 0

    @property
    def stale(self) -> bool:
        """Whether the folder changed and the change could not be loaded (answers come from the older index)."""
        return self.error is not None

    def refresh(self) -> None:
        """Reload the index if its manifest changed since the last look (cheap: one ``stat`` when it did not)."""
        if self.path is None:
            return
        with self._lock:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            version = _version(self.path)
            if version is not None and version == self.version:
                self.error = None
                return
            try:
                from ragguard.retrieval.index.store import KnowledgeIndex

                index = KnowledgeIndex.load(self.path)
                retriever = copy.copy(self.guard.retriever)
                retriever.index = index
                retriever._checked = False  # the new index is checked against the embedder on its first search
                retriever.search("index reload check", 0)
            except (RagGuardError, OSError) as exc:
                # Keep answering from the loaded index; a later change is tried again.
                self.error = f"the index at {str(self.path)!r} changed but was not reloaded: {exc}"
                logger.warning("%s", self.error)
                return
            self.guard.retriever = retriever  # one reference swap, between batches
            self.version, self.loaded_at, self.error = version, time.time(), None
            self.reloads += 1
            logger.info("reloaded the index %s (version %s)", self.path, version)

    def status(self) -> dict[str, Any]:
        """``/healthz``'s ``index`` object: path, version, when loaded, reloads, and staleness with its reason."""
        return {"path": str(self.path) if self.path else None, "version": self.version,
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
                "reloads": self.reloads, "stale": self.stale, "error": self.error}
