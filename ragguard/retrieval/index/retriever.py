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

    Results never repeat a text: among chunks whose text is the same after
    case folding and whitespace collapsing, only the best-ranked is returned.
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
        want = max(k, opts.candidates) if wide else k
        pool = len(allowed) if allowed is not None else len(self.index.chunks)
        fetch = want
        while True:
            # Widen the search until ``want`` distinct texts are found (or the index is exhausted).
            dense = self.index.dense_search(vector, fetch, allowed)
            ids = self._distinct([i for i, _ in dense])
            if opts.mode == "hybrid":
                keyword = self.index.bm25.search(query, fetch, allowed)
                ids = self._distinct(reciprocal_rank_fusion([[i for i, _ in dense], keyword], opts.rrf_k))
            if len(ids) >= want or fetch >= pool:
                break
            fetch = min(pool, fetch * 2)
        ids = ids[:want]
        cosine = dict(dense)
        missing = [i for i in ids if i not in cosine]
        if missing:
            cosine.update(zip(missing, (self.index.vectors(missing) @ vector).tolist(), strict=True))
        if opts.mmr_lambda is not None:
            picked = mmr_select(vector, self.index.vectors(ids), k, opts.mmr_lambda)
            ids = [ids[p] for p in picked]
        return [self.index.passage(i, cosine[i]) for i in ids[:k]]

    def _distinct(self, ranked: list[int]) -> list[int]:
        """``ranked`` without the chunks whose normalised text an earlier (better) one already has.

        Two files with the same text (a copy, a page saved twice) would
        otherwise fill the top-k with one passage; the best-ranked copy is
        kept and the next results fill its place.
        """
        seen: set[str] = set()
        out: list[int] = []
        for i in ranked:
            key = " ".join(self.index.chunks[i]["text"].casefold().split())
            if key not in seen:
                seen.add(key)
                out.append(i)
        return out
