"""LangChain components over ragguard (``pip install "ragguard[langchain]"``).

Built on ``langchain-core`` alone, one module per LangChain interface:

* :class:`ChatRagGuard` (:mod:`.chat_models`): a chat model. Messages in, the
  majority-voted answer out, with the consistency report in ``response_metadata``.
* :class:`ConsistencyGuard` (:mod:`.guards`): wraps a chat model (or any
  runnable) that an app already has, calls it several times and votes on the answers.
* :class:`RagGuardRetriever` (:mod:`.retrievers`): a retriever over a ragguard index folder.
* :class:`RagGuardChain` (:mod:`.chains`): the whole pipeline as a runnable,
  ``question -> {"answer", "report", "sources"}``.

Their shared pieces: :mod:`._pipelines` (the process-wide pipeline cache and
locks) and :mod:`._messages` (message conversion, token usage, documents).

Constructing a component is cheap: torch, transformers,
sentence-transformers and faiss load on the first question or search.
Components built from the same generator, embedder and index settings share
one loaded pipeline per process (weights load once), which reloads its index
when the folder changes on disk (:mod:`ragguard.retrieval.index.watch`); retrievers without an
embedder of their own share one loaded embedder and index per embedder settings and folder, in the
same way. :func:`clear_cache` drops both. Calls on one pipeline are serialised by a lock, since one model
is one compute resource. Each call asks a view of the shared pipeline with its
own settings (:meth:`ragguard.RagGuard.with_settings`).
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f'ragguard.integrations.langchain needs langchain-core ({exc}): run `pip install "ragguard[langchain]"`'
    ) from exc

from ragguard.endpoints import Refusals
from ragguard.integrations.langchain._pipelines import clear_cache
from ragguard.integrations.langchain.chains import RagGuardChain
from ragguard.integrations.langchain.chat_models import ChatRagGuard
from ragguard.integrations.langchain.guards import ConsistencyGuard
from ragguard.integrations.langchain.retrievers import RagGuardRetriever

__all__ = ["ChatRagGuard", "ConsistencyGuard", "RagGuardRetriever", "RagGuardChain", "Refusals", "clear_cache"]
