"""RagGuardRetriever: a LangChain retriever over a ragguard index folder."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr

from ragguard.errors import UsageError
from ragguard.integrations.langchain._messages import documents
from ragguard.integrations.langchain._pipelines import as_config
from ragguard.pipeline import build_retriever

__all__ = ["RagGuardRetriever"]


class RagGuardRetriever(BaseRetriever):
    """Searches a ragguard index folder; returns ``Document`` objects best first.

    ``page_content`` is the chunk text and ``metadata`` holds ``doc_id``,
    ``chunk_id`` and ``score`` (cosine similarity). The index loads, and its
    checksums are verified, on the first search. The query is embedded with
    the config's embedder (its ``backend``, or ``embedder``), which must be the one
    that built the index.

    Example:
        .. code-block:: python

            retriever = RagGuardRetriever(k=3)          # the bundled example index
            docs = retriever.invoke("annual leave", k=1)
    """

    index_path: str | None = None
    """Index folder; ``None`` = the config's, else the bundled example index."""
    k: int = Field(default=3, ge=0, le=50)
    """Documents returned; ``invoke(query, k=...)`` overrides it per call."""
    config_path: Any = None
    """A ragguard YAML config (or a ``Config``) naming the embedder and the index."""
    embedder: Any = None
    """Any object with ``.name`` and ``.embed(texts) -> np.ndarray``; ``None`` = the config's embedder."""

    _searcher: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _get_searcher(self) -> Any:
        with self._lock:
            if self._searcher is None:
                cfg = as_config(self.config_path)
                embedder = self.embedder
                if embedder is None:  # the config's embedder backend (sentence-transformers or openai)
                    from ragguard.generation.backends import build_embedder

                    embedder = build_embedder(cfg.embedder)
                self._searcher = build_retriever(cfg, embedder, self.index_path)
            return self._searcher

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise UsageError(f"k must be an integer >= 0, got {k!r}")
        return documents(self._get_searcher().search(query, k))
