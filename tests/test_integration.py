"""End-to-end checks with the real embedded models (offline; part of `make test`).

The converted generator is cached under RAGGUARD_CACHE; the first test in a
fresh environment pays the one-off GGUF conversion (about 30 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import CONTRACT_KEYS

from ragguard.config import Config
from ragguard.pipeline import RagGuard, bundled_index_path
from ragguard.retrieval.chunking import ChunkingSettings
from ragguard.retrieval.index import KnowledgeIndex, collect_chunks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Do employees without the payroll bank's debit card need an employment certificate?"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One converted-model cache for the module (conversion is the slow part)."""
    env = os.environ.get("RAGGUARD_TEST_CACHE")
    path = env or str(tmp_path_factory.mktemp("ragguard-cache"))
    return path


@pytest.fixture(scope="module")
def guard(shared_cache: str) -> RagGuard:
    old = os.environ.get("RAGGUARD_CACHE")
    os.environ["RAGGUARD_CACHE"] = shared_cache
    try:
        cfg = Config().replace("sampling", samples=3, max_new_tokens=40)
        g = RagGuard.from_config(cfg)
        g.generator.load()  # type: ignore[attr-defined]
        yield g
    finally:
        if old is None:
            os.environ.pop("RAGGUARD_CACHE", None)
        else:
            os.environ["RAGGUARD_CACHE"] = old


def _without_timings(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "timings"}


def test_real_models_contract_and_determinism(guard: RagGuard) -> None:
    first = guard.ask(QUESTION).to_dict()
    second = guard.ask(QUESTION).to_dict()
    assert CONTRACT_KEYS <= set(first)
    assert _without_timings(first) == _without_timings(second)
    assert 0.0 <= first["confidence"] <= 1.0 and first["grounded"] in (True, False)
    # The embedded default ships a calibration; this guard draws 3 answers of at most 40 tokens, not the
    # 5 of 64 it was fitted for, and the record says so.
    assert first["calibrated"] is True and first["calibration"]["file"].endswith("embedded.json")
    assert first["calibration"]["fitted_for_this_setup"] is False
    assert [m.split(":")[0] for m in first["calibration"]["mismatch"]] == ["config (prompt, sampling or thresholds; fingerprint.setup_hash)"]
    assert all(c["support"] is not None for c in first["clusters"])
    assert first["verdict"] in {"consistent", "inconsistent", "contradiction", "abstain"}
    assert len(first["samples"]) == 3
    assert first["samples"][0]["greedy"] is True and first["samples"][0]["seed"] is None
    assert all(isinstance(s["seed"], int) for s in first["samples"][1:])
    assert all(s["text"] for s in first["samples"]), "the real model produced an empty answer"
    members = sorted(m for c in first["clusters"] for m in c["members"])
    assert members == [0, 1, 2]
    # Retrieval found the payroll-bank policy for the bank-card question.
    assert any("payroll-bank-account" in s["doc_id"] or "employment-certificate" in s["doc_id"]
               for s in first["sources"])
    fp = first["fingerprint"]
    assert fp["model"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert len(fp["model_sha256"]) == 64
    assert fp["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert fp["seeds"] == [s["seed"] for s in first["samples"][1:]]
    assert {"torch", "transformers", "ragguard"} <= set(fp["versions"])


def test_seeded_samples_really_differ_from_greedy(guard: RagGuard) -> None:
    # With temperature > 0 the seeded rows must not all copy the greedy answer
    # (a degenerate sampler would make every verdict "consistent").
    report = guard.ask("What must I do to get my salary paid if I have no Eastbridge Bank card?", samples=4)
    texts = [s.text for s in report.samples]
    assert len(set(texts)) > 1


def test_other_seed_changes_samples_not_greedy(guard: RagGuard) -> None:
    a = guard.ask(QUESTION, seed=0)
    b = guard.ask(QUESTION, seed=1)
    assert a.samples[0].text == b.samples[0].text  # greedy ignores the seed
    assert [s.seed for s in a.samples[1:]] != [s.seed for s in b.samples[1:]]


def test_cli_ask_json_on_embedded_default(shared_cache: str) -> None:
    env = {**os.environ, "RAGGUARD_CACHE": shared_cache}
    proc = subprocess.run(
        [sys.executable, "-m", "ragguard", "ask", QUESTION, "--json", "--samples", "2"],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "--json must print exactly one JSON object"
    data = json.loads(lines[0])
    assert CONTRACT_KEYS <= set(data)
    assert len(data["samples"]) == 2
    assert data["calibrated"] is True
    assert "Traceback" not in proc.stderr


def test_committed_index_matches_its_sources() -> None:
    path = bundled_index_path()
    assert path == ROOT / "indexes" / "handbook"
    index = KnowledgeIndex.load(path)
    settings = ChunkingSettings.from_dict(index.manifest["chunking"])
    from ragguard.generation.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    assert settings.tokenizer == embedder.name  # chunks are measured in the embedder's own tokens
    chunks, hashes, skipped = collect_chunks([ROOT / "examples" / "handbook"], settings, embedder.count_tokens)
    assert hashes == index.manifest["sources"], "examples/handbook changed: run `make index`"
    assert [(c.doc_id, c.chunk_id, c.text) for c in chunks] == [
        (c["doc_id"], c["chunk_id"], c["text"]) for c in index.chunks
    ], "chunking changed: run `make index`"
    assert skipped == []


def test_committed_index_vectors_match_the_embedder() -> None:
    from ragguard.generation.embedders import SentenceTransformerEmbedder

    index = KnowledgeIndex.load(bundled_index_path())
    embedder = SentenceTransformerEmbedder()
    index.check_embedder(embedder, embedder.dimension)
    fresh = embedder.embed([c["text"] for c in index.chunks])
    stored = index._index.reconstruct_n(0, index._index.ntotal)
    assert np.abs(fresh - stored).max() < 1e-4


def test_the_embedded_embedder_is_said_not_to_read_chinese_documents(tmp_path: Path) -> None:
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.retrieval.index import build_index

    embedder = SentenceTransformerEmbedder()
    assert embedder.unknown_share(["Employees without the card must ask HR for a certificate."]) == 0.0
    zh, en = tmp_path / "zh", tmp_path / "en"
    zh.mkdir(), en.mkdir()
    (zh / "pay.md").write_text("工资统一通过招商银行代发。没有招商银行借记卡的员工，须向人力资源部提交有效的在职证明。\n",
                               encoding="utf-8")
    (en / "pay.md").write_text("Salaries are paid through the payroll bank. Employees without its card need a "
                               "certificate from HR.\n", encoding="utf-8")
    warned = build_index([zh], tmp_path / "idx-zh", embedder).warnings
    assert len(warned) == 1 and "configs/chinese-bge-small.yaml" in warned[0]
    assert build_index([en], tmp_path / "idx-en", embedder).warnings == []
