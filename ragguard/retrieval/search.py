"""Retrieval options over a loaded index: filters, BM25, rank fusion and MMR.

The ranking helpers take plain arrays and lists, so they are tested on
hand-written vectors. :class:`RetrievalOptions` carries the ``retrieval``
settings of the config that shape a search (``top_k`` and ``min_score``
are applied by the pipeline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import numpy as np

__all__ = ["RetrievalOptions", "reciprocal_rank_fusion", "mmr_select", "bm25_tokens", "BM25Index", "matches"]

MODES = ("dense", "hybrid")


@dataclass(frozen=True)
class RetrievalOptions:
    """How a query is matched against the index.

    Args:
        mode: ``"dense"`` (embeddings only) or ``"hybrid"`` (dense and BM25
            keyword results fused by reciprocal rank).
        candidates: results fetched from each retriever before fusion and MMR.
        rrf_k: the constant of reciprocal rank fusion (``1 / (rrf_k + rank)``).
        mmr_lambda: ``None`` for no MMR; else the weight of relevance against
            novelty in maximal marginal relevance (1 = relevance only).
        source_glob: keep chunks whose source path matches this shell glob.
        tags: keep chunks carrying at least one of these tags.
        language: keep chunks of this language code (``en``, ``zh``...).
    """

    mode: str = "dense"
    candidates: int = 50
    rrf_k: int = 60
    mmr_lambda: float | None = None
    source_glob: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    language: str | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.source_glob or self.tags or self.language)

    @classmethod
    def from_config(cls, cfg: Any) -> RetrievalOptions:
        """Options from a :class:`ragguard.config.RetrievalConfig`."""
        return cls(mode=cfg.mode, candidates=cfg.candidates, rrf_k=cfg.rrf_k, mmr_lambda=cfg.mmr_lambda,
                   source_glob=cfg.source_glob, tags=tuple(cfg.tags or ()), language=cfg.language)


def matches(chunk: dict[str, Any], options: RetrievalOptions) -> bool:
    """Whether a chunk record passes the metadata filters of ``options``."""
    if options.source_glob and not fnmatch(chunk.get("source") or chunk["doc_id"], options.source_glob):
        return False
    if options.tags and not set(options.tags) & set(chunk.get("tags") or ()):
        return False
    return not (options.language and _primary(chunk.get("lang") or "") != _primary(options.language))


def _primary(code: str) -> str:
    """The primary language of a code, case aside: ``zh-CN``, ``zh_TW`` and ``ZH`` are all ``zh``."""
    return code.strip().lower().replace("_", "-").split("-")[0]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[int]:
    """Fuse ranked id lists: score ``sum 1/(k + rank)`` (rank from 1); ties go to the lower id."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))


def mmr_select(query: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance over candidate ``vectors`` (unit rows): positions picked, in order.

    Each step takes the candidate maximising ``lam * sim(query, c) - (1 - lam) * max sim(c, picked)``;
    ties go to the earlier candidate.
    """
    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    relevance = vectors @ query
    similarity = vectors @ vectors.T
    picked: list[int] = []
    redundancy = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        score = np.where(available, lam * relevance - (1 - lam) * penalty, -np.inf)
        best = int(np.argmax(score))  # argmax returns the first of equal maxima
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return picked


_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how i if in is it its my of on or our so that the their "
    "them then there these this to was we were what when where which who why will with you your".split()
)


def bm25_tokens(text: str) -> list[str]:
    """Keyword tokens: lower-case words (minus English stop words), and CJK characters and bigrams.

    CJK text has no spaces, so each run contributes its characters and
    adjacent pairs, which match words of one or two characters alike.
    """
    lower = text.lower()
    tokens = [w for w in _WORD.findall(lower) if w not in _STOP]
    for run in _CJK.findall(lower):
        tokens.extend(run)
        tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


class BM25Index:
    """BM25 (the maintained ``bm25s`` library) over chunk texts, built in memory on first use."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        # An empty chunk gets a placeholder token so that ids stay aligned with the chunk store.
        self._bm25.index([bm25_tokens(t) or ["\0"] for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        tokens = bm25_tokens(query)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[int]:
        """Ids of the best ``k`` chunks with a positive score (ties: lower id first)."""
        scores = self.scores(query)
        if allowed is not None:
            mask = np.zeros(self.size, dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        ids = np.flatnonzero(scores > 0)
        order = np.lexsort((ids, -scores[ids]))[:k]
        return [int(i) for i in ids[order]]
