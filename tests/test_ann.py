"""FAISS index types: choice by size, build, recall, storage and what `index info` reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

# FAISS's OpenMP threads spin while waiting; on a busy 2-core machine that makes IVF-PQ training ~6x
# slower. Set before FAISS is first imported (test modules are imported before any test runs).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ragguard.errors import IndexLoadError, UsageError
from ragguard.retrieval.ann import (
    INDEX_TYPES,
    Reranked,
    build_faiss,
    choose_type,
    default_params,
    exact_top_k,
    recall_at_k,
)
from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex, build_index


def clustered(n: int, d: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Unit vectors around random centres (real embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_auto_chooses_by_size() -> None:
    assert choose_type("auto", 100) == "flat"
    assert choose_type("auto", 19_999) == "flat"
    assert choose_type("auto", 20_000) == "hnsw"
    assert choose_type("auto", 5_000_000) == "ivfpq"
    assert choose_type("ivf", 10) == "ivf"
    with pytest.raises(UsageError, match="index type 'annoy' is unknown"):
        choose_type("annoy", 10)


def test_exact_top_k_matches_a_full_sort() -> None:
    v = clustered(500, 8)
    q = v[:5]
    full = np.argsort(-(q @ v.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(exact_top_k(v, q, 10, block=64), full)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_each_type_finds_the_true_neighbours(kind: str) -> None:
    v = clustered(4000, 32)
    index = build_faiss(v, kind, default_params(kind, len(v), 32))
    assert index.ntotal == 4000
    recall = recall_at_k(index, v, sample=100)
    assert recall == 1.0 if kind == "flat" else recall >= 0.9


def test_ivfpq_compresses_and_needs_enough_vectors() -> None:
    with pytest.raises(UsageError, match="ivfpq needs at least 10000 vectors"):
        default_params("ivfpq", 500, 32)
    params = default_params("ivfpq", 12_000, 384)
    assert params["m"] == 48 and params["nbits"] == 8  # 48 bytes a 384-d vector
    v = clustered(12_000, 32)
    params = default_params("ivfpq", len(v), 32)
    index = build_faiss(v, "ivfpq", params)
    codes_only = recall_at_k(index, v, sample=100)
    reranked = recall_at_k(Reranked(index, v, params["rerank"]), v, sample=100)
    assert reranked >= 0.8 and reranked > codes_only + 0.3


def test_hnsw_index_through_build_load_info_and_search(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    for i in range(40):
        (tiny_docs / f"n{i:02d}.md").write_text(f"# Note {i}\n\nItem {i} concerns area {i % 5}.", encoding="utf-8")
    summary = build_index([tiny_docs], tmp_path / "idx", fake_embedder, index_type="hnsw")
    assert summary.index_type == "hnsw"
    index = KnowledgeIndex.load(tmp_path / "idx")
    assert type(index._index).__name__ == "IndexHNSWFlat"
    assert index._index.hnsw.efSearch == default_params("hnsw", 44, 16)["ef_search"]
    info = index.info()
    assert info["index_type"] == "hnsw" and info["index_params"]["m"] == 32
    assert info["recall_at_10"] == pytest.approx(1.0) and info["recall_sample"] == 44
    assert info["bytes_per_vector"] > 16 * 4  # the vectors plus the graph
    top = IndexRetriever(index, fake_embedder).search("payroll bank card employment certificate", 1)
    assert top[0].doc_id == "docs/payroll-bank-card.md"
    assert KnowledgeIndex.load(tiny_docs.parent / "idx").info(recall_sample=0)["recall_at_10"] is None


def test_flat_info_reports_no_recall(tiny_index: Path) -> None:
    info = KnowledgeIndex.load(tiny_index).info()
    assert info["index_type"] == "flat" and info["recall_at_10"] is None
    assert info["faiss_bytes"] == (tiny_index / "index.faiss").stat().st_size
    assert info["languages"] == {"en": 3, "zh": 1}


def test_ivfpq_index_keeps_exact_vectors_and_verifies_them(tmp_path: Path, make_embedder) -> None:
    src = tmp_path / "faq"
    src.mkdir()
    rows = [json.dumps({"question": f"What is rule {i}?", "answer": f"Rule {i} covers case {i * 7 % 1000}."})
            for i in range(10_000)]
    (src / "rules.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    embedder = make_embedder()
    summary = build_index([src], tmp_path / "idx", embedder, index_type="ivfpq")
    assert summary.chunks == 10_000 and summary.index_type == "ivfpq"
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["files"]) == ["chunks.jsonl", "index.faiss", "vectors.npy"]
    index = KnowledgeIndex.load(tmp_path / "idx")
    stored = index.vectors([0, 9_999])
    fresh = embedder.embed([index.chunks[0]["text"], index.chunks[9_999]["text"]])
    np.testing.assert_allclose(stored, fresh / np.linalg.norm(fresh, axis=1, keepdims=True), atol=1e-6)
    info = index.info(recall_sample=50)
    assert 0 < info["recall_at_10"] <= 1 and info["bytes_per_vector"] < 16 * 4
    data = (tmp_path / "idx" / "vectors.npy").read_bytes()
    (tmp_path / "idx" / "vectors.npy").write_bytes(data[:-8])
    with pytest.raises(IndexLoadError, match="vectors.npy does not match its checksum"):
        KnowledgeIndex.load(tmp_path / "idx")


def test_every_type_is_listed() -> None:
    assert INDEX_TYPES == ("flat", "hnsw", "ivf", "ivfpq")
