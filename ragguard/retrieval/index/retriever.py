"""Dense, hybrid (BM25 fusion) and MMR search over a loaded index: the retriever the pipeline uses."""

from __future__ import annotations

import numpy as np

from ragguard.core.protocols import Embedder
from ragguard.core.types import Passage
from ragguard.retrieval.index.store import KnowledgeIndex
from ragguard.retrieval.search import RetrievalOptions, matches, mmr_select, reciprocal_rank_fusion

__all__ = ["IndexRetriever"]


class IndexRetriever:
    """A :class:`~ragguard.core.protocols.Retriever` over a loaded index and its embedder.

    Args:
        options: filters, hybrid BM25 fusion and MMR (default: dense search only).
    """

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, options: RetrievalOptions | None = None):
        self.index = index
        self.embedder = embedder
        self.options = options or RetrievalOptions()
        self._checked = False

    def search(self, query: str, k: int) -> list[Passage]:
        opts = self.options
        vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
        if not self._checked:
            self.index.check_embedder(self.embedder, int(vector.shape[0]))
            self._checked = True
        if k <= 0:
            return []
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        allowed = None
        if opts.filtered:
            allowed = np.asarray([i for i, c in enumerate(self.index.chunks) if matches(c, opts)], dtype=np.int64)
            if len(allowed) == 0:
                return []
        wide = opts.mode == "hybrid" or opts.mmr_lambda is not None
        dense = self.index.dense_search(vector, max(k, opts.candidates) if wide else k, allowed)
        cosine = dict(dense)
        ids = [i for i, _ in dense]
        if opts.mode == "hybrid":
            keyword = self.index.bm25.search(query, max(k, opts.candidates), allowed)
            ids = reciprocal_rank_fusion([ids, keyword], opts.rrf_k)[: max(k, opts.candidates)]
        missing = [i for i in ids if i not in cosine]
        if missing:
            cosine.update(zip(missing, (self.index.vectors(missing) @ vector).tolist(), strict=True))
        if opts.mmr_lambda is not None:
            picked = mmr_select(vector, self.index.vectors(ids), k, opts.mmr_lambda)
            ids = [ids[p] for p in picked]
        return [self.index.passage(i, cosine[i]) for i in ids[:k]]
