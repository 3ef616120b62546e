"""Retrieval options: rank fusion, MMR, BM25, metadata filters and hybrid search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragguard.config import Config
from ragguard.errors import ConfigError
from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex, build_index
from ragguard.retrieval.search import BM25Index, RetrievalOptions, bm25_tokens, mmr_select, reciprocal_rank_fusion


def test_reciprocal_rank_fusion_by_hand() -> None:
    # 7: 1/61 + 1/62; 3: 1/62 + 1/61 (a tie, the lower id wins); 5: 1/63; 9: 1/63 + 0 ... 9 only once
    assert reciprocal_rank_fusion([[7, 3, 5], [3, 7, 9]], k=60) == [3, 7, 5, 9]
    assert reciprocal_rank_fusion([[1, 2], [2]], k=1) == [2, 1]  # 2: 1/3 + 1/2 beats 1: 1/2
    assert reciprocal_rank_fusion([]) == []


def test_mmr_trades_relevance_for_novelty() -> None:
    query = np.array([1.0, 0.0, 0.0])
    a = np.array([0.9, 0.436, 0.0])
    a_copy = a.copy()
    b = np.array([0.8, 0.0, 0.6])
    vectors = np.stack([a, a_copy, b])
    assert mmr_select(query, vectors, 3, lam=1.0) == [0, 1, 2]  # relevance only; ties keep order
    assert mmr_select(query, vectors, 2, lam=0.5) == [0, 2]  # the duplicate gives way
    assert mmr_select(query, vectors, 0, lam=0.5) == []
    assert mmr_select(query, np.zeros((0, 3)), 2, lam=0.5) == []


def test_bm25_tokens_words_and_chinese() -> None:
    assert bm25_tokens("What is the HR-07 form?") == ["hr", "07", "form"]
    assert bm25_tokens("年假规定") == ["年", "假", "规", "定", "年假", "假规", "规定"]
    assert bm25_tokens("the of and") == []


def test_bm25_index_ranks_exact_terms_and_respects_allowed_ids() -> None:
    bm25 = BM25Index(["Form HR-07 requests a certificate.", "Annual leave is 25 days.", "", "HR handles payroll."])
    assert bm25.search("HR-07", 3) == [0, 3]
    assert bm25.search("HR-07", 3, allowed=np.array([1, 3])) == [3]
    assert bm25.search("nothing matches here", 3) == []
    assert bm25.search("the", 3) == []


@pytest.fixture
def tagged_docs(tmp_path: Path) -> Path:
    src = tmp_path / "kb"
    (src / "hr").mkdir(parents=True)
    (src / "it").mkdir()
    (src / "hr" / "certificate.md").write_text(
        "---\ntags: [hr, payroll]\n---\n# Employment certificate\n\nRequest form HR-07 from HR.", encoding="utf-8")
    (src / "hr" / "leave.md").write_text("---\ntags: hr\n---\n# Leave\n\nAnnual leave is 25 days.", encoding="utf-8")
    (src / "hr" / "zh-leave.md").write_text("# 年假\n\n员工每年享有十五天带薪年假。", encoding="utf-8")
    (src / "it" / "vpn.md").write_text("---\ntags: [it]\n---\n# VPN\n\nUse the VPN client.", encoding="utf-8")
    # Near-duplicate (same words, so the same fake vector) but not the same text: retrieval keeps both.
    (src / "it" / "vpn-copy.md").write_text("---\ntags: [it]\n---\n# VPN\n\nUse the VPN client!", encoding="utf-8")
    return src


@pytest.fixture
def kb(tmp_path: Path, tagged_docs: Path, fake_embedder) -> KnowledgeIndex:  # type: ignore[no-untyped-def]
    build_index([tagged_docs], tmp_path / "index", fake_embedder)
    return KnowledgeIndex.load(tmp_path / "index")


def search(kb: KnowledgeIndex, embedder, query: str, k: int = 5, **options) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.doc_id for p in IndexRetriever(kb, embedder, RetrievalOptions(**options)).search(query, k)]


def test_filters_by_source_glob_tags_and_language(kb: KnowledgeIndex, fake_embedder) -> None:
    assert search(kb, fake_embedder, "leave", source_glob="kb/it/*") == ["kb/it/vpn-copy.md", "kb/it/vpn.md"]
    assert set(search(kb, fake_embedder, "leave", tags=("payroll",))) == {"kb/hr/certificate.md"}
    assert set(search(kb, fake_embedder, "leave", tags=("hr", "it"))) == {
        "kb/hr/certificate.md", "kb/hr/leave.md", "kb/it/vpn.md", "kb/it/vpn-copy.md"}
    assert search(kb, fake_embedder, "年假", language="zh") == ["kb/hr/zh-leave.md"]
    assert "kb/hr/zh-leave.md" not in search(kb, fake_embedder, "年假", language="en")
    assert search(kb, fake_embedder, "leave", tags=("finance",)) == []


def test_mmr_skips_the_duplicate(kb: KnowledgeIndex, fake_embedder) -> None:
    plain = search(kb, fake_embedder, "VPN client", k=2)
    assert sorted(plain) == ["kb/it/vpn-copy.md", "kb/it/vpn.md"]
    diverse = search(kb, fake_embedder, "VPN client", k=2, mmr_lambda=0.5)
    assert len(diverse) == 2 and len({d for d in diverse if "vpn" in d}) == 1


@pytest.mark.parametrize("options", [{}, {"mode": "hybrid", "candidates": 3}, {"mmr_lambda": 0.9, "candidates": 3}])
def test_duplicate_chunk_texts_are_returned_once_and_the_next_results_fill_in(
        tmp_path: Path, fake_embedder, options) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "kb"
    src.mkdir()
    for name in ("a-leave.md", "b-leave-copy.md", "c-leave-again.md"):
        (src / name).write_text("Annual leave is 25 days.", encoding="utf-8")
    (src / "d-leave-rules.md").write_text("Annual leave requests go to your manager.", encoding="utf-8")
    (src / "e-vpn.md").write_text("Use the VPN client.", encoding="utf-8")
    (src / "f-leave-case.md").write_text("ANNUAL   leave is 25 days.", encoding="utf-8")  # same after normalising
    build_index([src], tmp_path / "index", fake_embedder)
    kb = KnowledgeIndex.load(tmp_path / "index")
    got = IndexRetriever(kb, fake_embedder, RetrievalOptions(**options)).search("annual leave 25 days", 3)
    texts = [" ".join(p.text.casefold().split()) for p in got]
    assert len(got) == 3 and len(set(texts)) == 3
    copies = {"kb/a-leave.md", "kb/b-leave-copy.md", "kb/c-leave-again.md", "kb/f-leave-case.md"}
    assert got[0].doc_id in copies and not {p.doc_id for p in got[1:]} & copies  # one copy, the best-ranked
    assert "kb/d-leave-rules.md" in {p.doc_id for p in got}


def test_hybrid_fuses_dense_and_bm25_ranks(kb: KnowledgeIndex, fake_embedder) -> None:
    query = "HR-07"
    options = RetrievalOptions(mode="hybrid", candidates=5)
    got = IndexRetriever(kb, fake_embedder, options).search(query, 3)
    vector = fake_embedder.embed([query])[0]
    dense = [i for i, _ in kb.dense_search(vector, 5)]
    keyword = kb.bm25.search(query, 5)
    assert keyword[0] == next(i for i, c in enumerate(kb.chunks) if c["doc_id"] == "kb/hr/certificate.md")
    expected = reciprocal_rank_fusion([dense, keyword], 60)[:3]
    assert [p.chunk_id for p in got] == [kb.chunks[i]["chunk_id"] for i in expected]
    assert got[0].doc_id == "kb/hr/certificate.md"
    # Scores stay cosine similarities, so retrieval.min_score keeps its meaning.
    for p in got:
        i = next(j for j, c in enumerate(kb.chunks) if c["chunk_id"] == p.chunk_id)
        assert p.score == pytest.approx(float(kb.vectors([i])[0] @ (vector / np.linalg.norm(vector))), abs=1e-5)


def test_retrieval_config_keys_are_validated_and_passed() -> None:
    cfg = Config.from_dict({"retrieval": {"mode": "hybrid", "mmr_lambda": 0.7, "tags": ["hr"], "language": "zh",
                                          "source_glob": "kb/hr/*", "candidates": 20, "rrf_k": 10}})
    assert RetrievalOptions.from_config(cfg.retrieval) == RetrievalOptions(
        mode="hybrid", candidates=20, rrf_k=10, mmr_lambda=0.7, source_glob="kb/hr/*", tags=("hr",), language="zh")
    for bad, key in (({"mode": "bm25"}, "retrieval.mode"), ({"mmr_lambda": 2}, "retrieval.mmr_lambda"),
                     ({"tags": "hr"}, "retrieval.tags"), ({"candidates": 0}, "retrieval.candidates"),
                     ({"filter": 1}, "retrieval.filter")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            Config.from_dict({"retrieval": bad})


def test_new_retrieval_keys_leave_the_default_hash_alone() -> None:
    # Keys added in this release enter the hash only when set, so earlier fingerprints stay valid
    # (tests/test_backends.py rebuilds the digest without every such key).
    assert Config().hash() == "1b3387007c168501"
    assert Config.from_dict({"retrieval": {"mode": "dense", "mmr_lambda": None}}).hash() == Config().hash()
    changed = {Config().replace("retrieval", mode="hybrid").hash(), Config().replace("retrieval", mmr_lambda=0.5).hash(),
               Config().replace("retrieval", tags=["hr"]).hash()}
    assert len(changed) == 3 and Config().hash() not in changed
