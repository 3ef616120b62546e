"""FAISS index types: exact (flat) and approximate (HNSW, IVF, IVF-PQ), chosen by size.

Every type scores by inner product over unit vectors (cosine similarity).
The parameters are picked from the number of vectors and recorded in the
manifest; search-time parameters (``ef_search``, ``nprobe``) are applied
again after loading. Vectors are always held as float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ragguard.errors import IndexLoadError, UsageError

__all__ = ["INDEX_TYPES", "choose_type", "default_params", "build_faiss", "apply_search_params", "recall_at_k",
           "faiss_module", "Reranked"]

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq")
# ``auto``: exact search while it stays fast, then a graph, then compressed codes when memory matters.
AUTO_FLAT_BELOW = 20_000
AUTO_HNSW_BELOW = 2_000_000
MIN_IVFPQ = 10_000  # 39 training points per code of 8-bit sub-quantizers


def faiss_module() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise IndexLoadError("faiss is not installed: run `pip install faiss-cpu`") from exc
    return faiss


def choose_type(requested: str, n: int) -> str:
    """The concrete type for ``requested`` (``auto``: flat below 20k vectors, HNSW below 2M, then IVF-PQ)."""
    if requested != "auto":
        if requested not in INDEX_TYPES:
            raise UsageError(f"index type {requested!r} is unknown: use auto, {', '.join(INDEX_TYPES)}")
        return requested
    if n < AUTO_FLAT_BELOW:
        return "flat"
    return "hnsw" if n < AUTO_HNSW_BELOW else "ivfpq"


def _nlist(n: int) -> int:
    # About 4 sqrt(n) lists, with at least 39 training points per list (FAISS's own rule of thumb).
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def default_params(kind: str, n: int, d: int) -> dict[str, int]:
    """Build and search parameters of ``kind`` for ``n`` vectors of dimension ``d``."""
    if kind == "flat":
        return {}
    if kind == "hnsw":
        # A wider search beam from 250k vectors: at 1M synthetic 384-d vectors efSearch 96 found
        # 0.945 of the exact top 10, 192 about 0.985 at ~170x the speed of flat (bench/index_scale.py).
        return {"m": 32, "ef_construction": 80, "ef_search": 96 if n < 250_000 else 192}
    nlist = _nlist(n)
    # About 1 % of the lists (at least 16): at 1M vectors (4,000 lists) nprobe 40 searches ~65x
    # faster than flat; 125 (the old n/32) was 23x with no recall to gain on the benchmark.
    params = {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 100))}
    if kind == "ivfpq":
        if n < MIN_IVFPQ:
            raise UsageError(f"index type ivfpq needs at least {MIN_IVFPQ} vectors (this index has {n}): use flat or hnsw")
        # 8 dimensions per sub-quantizer of 8 bits: d/8 bytes a vector (48 for 384-d).
        m = next(m for m in range(max(1, d // 8), 0, -1) if d % m == 0)
        # PQ codes rank coarsely: fetch ``rerank`` x k candidates and re-score them with the exact vectors.
        # At 1M synthetic vectors 10 x k kept 0.65 of the exact top 10, 30 x 0.90, 100 x 1.00 (+1.2 ms).
        params.update({"m": m, "nbits": 8, "rerank": 10 if n < 250_000 else 100})
    return params


def build_faiss(vectors: np.ndarray, kind: str, params: dict[str, int]) -> Any:
    """A FAISS index of ``kind`` holding ``vectors`` (rows in order, ids 0..n-1)."""
    faiss = faiss_module()
    n, d = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["m"], ip)
        index.hnsw.efConstruction = params["ef_construction"]
    elif kind in ("ivf", "ivfpq"):
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, params["nlist"], params["m"], params["nbits"], ip)
        index.cp.seed = 1234  # k-means seed, fixed so that rebuilds agree
        index.train(vectors)  # faiss's wrapper keeps ``quantizer`` alive with the index
    else:  # pragma: no cover - choose_type validated it
        raise UsageError(f"index type {kind!r} is unknown")
    if n:
        index.add(vectors)
    apply_search_params(index, kind, params)
    return index


def apply_search_params(index: Any, kind: str, params: dict[str, int]) -> None:
    """Set the search-time knobs recorded in the manifest."""
    if kind == "hnsw":
        index.hnsw.efSearch = int(params["ef_search"])
    elif kind in ("ivf", "ivfpq"):
        index.nprobe = int(params["nprobe"])


class Reranked:
    """An IVF-PQ index whose candidates are re-scored with exact vectors (memory-mapped from disk).

    ``search`` has FAISS's signature: ``(scores, ids)`` arrays of shape ``(len(queries), k)``.
    """

    def __init__(self, index: Any, vectors: np.ndarray, factor: int) -> None:
        self.index = index
        self.vectors = vectors
        self.factor = max(1, factor)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = self.index.search(queries, k * self.factor)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (q, cand) in enumerate(zip(queries, candidates, strict=True)):
            cand = cand[cand >= 0]
            if len(cand) == 0:
                continue
            exact = np.asarray(self.vectors[np.sort(cand)], dtype=np.float32) @ q
            cand = np.sort(cand)
            order = np.lexsort((cand, -exact))[:k]
            scores[row, : len(order)] = exact[order]
            ids[row, : len(order)] = cand[order]
        return scores, ids


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Ids of the ``k`` highest inner products of each query over ``vectors`` (ties: lower id first)."""
    k = min(k, len(vectors))
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start : start + block].T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        order = np.lexsort((all_ids, -all_scores), axis=1)[:, :k] if all_scores.shape[1] > k else np.lexsort(
            (all_ids, -all_scores), axis=1)
        best_scores = np.take_along_axis(all_scores, order, axis=1)
        best_ids = np.take_along_axis(all_ids, order, axis=1)
    return best_ids


def recall_at_k(index: Any, vectors: np.ndarray, sample: int = 200, k: int = 10, seed: int = 0) -> float:
    """Share of the exact top-``k`` (by brute force over ``vectors``) that ``index`` returns.

    Queries are ``sample`` stored vectors picked with ``seed``. A returned
    vector that ties with the exact ``k``-th score counts as a hit, so equal
    vectors (duplicate chunks) do not depress the figure.
    """
    n = len(vectors)
    if n == 0:
        return 1.0
    k = min(k, n)
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    queries = np.ascontiguousarray(vectors[picks], dtype=np.float32)
    exact = exact_top_k(vectors, queries, k)
    _, approx = index.search(queries, k)
    hits = 0
    for q, a, e in zip(queries, approx, exact, strict=True):
        kth = float(np.asarray(vectors[e[-1]], dtype=np.float32) @ q)
        found = [int(i) for i in a if i >= 0]
        if found:
            scores = np.asarray(vectors[np.asarray(found)], dtype=np.float32) @ q
            hits += int(np.sum(scores >= kth - 1e-5))
    return hits / (len(picks) * k)
