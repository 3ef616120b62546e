"""RagGuardRetriever: a LangChain retriever over a ragguard index folder."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr

from ragguard.config import Config
from ragguard.errors import UsageError
from ragguard.integrations.langchain._messages import documents
from ragguard.integrations.langchain._pipelines import as_config, retriever_for
from ragguard.pipeline import build_retriever, bundled_index_path, require_question

__all__ = ["RagGuardRetriever"]

MAX_K = 50  # as retrieval.top_k


class RagGuardRetriever(BaseRetriever):
    """Searches a ragguard index folder; returns ``Document`` objects best first.

    ``page_content`` is the chunk text and ``metadata`` holds ``doc_id``,
    ``chunk_id``, ``score`` (cosine similarity), ``source`` (the source
    document's path as the index stores it) and the chunk's ``tags`` and
    ``lang`` when the index has them. The index loads, and its
    checksums are verified, on the first search. The query is embedded with
    the config's embedder (its ``backend``, or ``embedder``), which must be the one
    that built the index.

    The config's ``retrieval`` section applies as it does to ``ask``: ``top_k``
    is the number of documents unless ``k`` says otherwise; ``mode``, ``source_glob``,
    ``tags`` and ``language`` shape the search; and when the best document scores
    below ``min_score`` nothing is returned (where ``ask`` abstains: the index has
    nothing on the query). ``k`` is at most 50, per call too. A query that is not a
    string, is empty, or has no word in it is refused with a :class:`UsageError`.

    Example:
        .. code-block:: python

            retriever = RagGuardRetriever(k=3)          # the bundled example index
            docs = retriever.invoke("annual leave", k=1)
    """

    index_path: str | None = None
    """Index folder; ``None`` = the config's, else the bundled example index."""
    k: int | None = Field(default=None, ge=0, le=MAX_K)
    """Documents returned; ``None`` = the config's ``retrieval.top_k``; ``invoke(query, k=...)`` overrides it per call."""
    config_path: Any = None
    """A ragguard YAML config (or a ``Config``) naming the embedder and the index."""
    embedder: Any = None
    """Any object with ``.name`` and ``.embed(texts) -> np.ndarray``; ``None`` = the config's embedder."""

    _searcher: Any = PrivateAttr(default=None)
    _watcher: Any = PrivateAttr(default=None)
    _config: Config | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _get_searcher(self) -> Any:
        """The loaded searcher; its index is reloaded when the folder changed on disk (``index add``, a rebuild),
        as the shared pipelines of the other components and ``serve`` do, so they never disagree. Without an
        ``embedder`` of its own, retrievers over the same index and embedder settings share one loaded
        embedder and index (:func:`~ragguard.integrations.langchain._pipelines.retriever_for`)."""
        with self._lock:
            if self._config is None:
                self._config = as_config(self.config_path)
            cfg = self._config
            folder = self.index_path or cfg.retrieval.index or str(bundled_index_path())
            if self.embedder is None:  # the config's embedder backend (sentence-transformers or openai)
                return retriever_for(cfg, folder)
            if self._searcher is None:
                from types import SimpleNamespace

                from ragguard.retrieval.index.watch import IndexWatcher

                self._searcher = SimpleNamespace(retriever=build_retriever(cfg, self.embedder, folder),
                                                 index_path=folder)
                self._watcher = IndexWatcher(self._searcher)
            else:
                self._watcher.refresh()  # one stat when nothing changed
            return self._searcher.retriever

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        require_question(query, what="RagGuardRetriever's query", noun="query", takes="pass a string, e.g. "
                         "retriever.invoke('annual leave')", example="pass a query with words in it, e.g. "
                         "retriever.invoke('annual leave')")
        searcher = self._get_searcher()
        retrieval = self._config.retrieval  # set with the searcher
        k = k if k is not None else self.k if self.k is not None else retrieval.top_k
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_K:
            raise UsageError(f"k must be an integer from 0 to {MAX_K}, got {k!r}: ask for at most {MAX_K} documents")
        passages = searcher.search(query, k)
        best = max((p.score for p in passages), default=None)
        if best is not None and retrieval.min_score is not None and best < retrieval.min_score:
            return []  # ask abstains here: the index has nothing on the query (pipeline._off_topic)
        return documents(passages, getattr(searcher, "index", None))
