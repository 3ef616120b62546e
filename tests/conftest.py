"""Shared fakes for the unit tests: a hashing embedder, a queued generator, a tiny index.

Nothing here touches the network or loads a model.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragguard.core.protocols import Completion

DIM = 16
_TOKEN = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")

PAYROLL_DOC = """# Payroll bank card

Salaries are paid to a payroll bank card issued by Eastbridge Bank.

## Employment certificate

Employees without the payroll bank card must request an employment certificate from HR
with form HR-07 before the bank opens an account for them.
"""

LEAVE_DOC = """# Annual leave

Every employee gets 25 days of annual leave per calendar year.

## Carry over

Up to five unused days may be carried over into the next year with a manager's approval.
"""

ZH_DOC = """# 年假

员工每年享有十五天带薪年假。年假需要提前两周通过系统申请。未休年假可以顺延到下一年。
"""

VPN_DOC = """# VPN

Connect to the office network from home with the VPN client and your hardware token.
"""


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder (16 dims, unit length).

    Lower-cased words (and single CJK characters) are hashed with SHA-256 into
    16 buckets, so texts sharing words are close and unrelated texts are far.
    An empty text gives the zero vector. ``vectors`` maps exact texts to fixed
    vectors (returned as given) for tests that need exact similarities.
    """

    name = "fake-embedder"

    def __init__(self, vectors: dict[str, Sequence[float]] | None = None) -> None:
        self.vectors = {k: list(v) for k, v in (vectors or {}).items()}
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        self.calls.append(texts)
        dim = len(next(iter(self.vectors.values()))) if self.vectors else DIM
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if text in self.vectors:
                out[row] = np.asarray(self.vectors[text], dtype=np.float32)
                continue
            if dim != DIM:
                raise AssertionError(f"FakeEmbedder: no fixed vector for {text!r} (fixed vectors are {dim}-d)")
            for token in _TOKEN.findall(text.lower()):
                out[row, int(hashlib.sha256(token.encode("utf-8")).hexdigest(), 16) % DIM] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


class FakeGenerator:
    """A generator whose replies are queued: ``enqueue([...])`` one list of texts per call."""

    name = "fake-generator"

    def __init__(self) -> None:
        self.device = "cpu"
        self.adapter: str | None = None
        self.model_sha256: str | None = None
        self._replies: deque[list[str]] = deque()
        self.calls: list[dict[str, Any]] = []

    def enqueue(self, texts: Sequence[str]) -> None:
        if isinstance(texts, str):
            raise TypeError("enqueue takes a list of texts (one per seed), not a single string")
        self._replies.append(list(texts))

    @property
    def pending(self) -> int:
        return len(self._replies)

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        seeds = list(seeds)
        self.calls.append({"messages": [dict(m) for m in messages], "seeds": seeds})
        if not self._replies:
            raise AssertionError(
                f"FakeGenerator.generate was called with {len(seeds)} seeds but no replies are queued: "
                "call fake_generator.enqueue([...]) before asking"
            )
        texts = self._replies.popleft()
        if len(texts) != len(seeds):
            raise AssertionError(
                f"FakeGenerator: the queued reply list has {len(texts)} texts but generate got {len(seeds)} seeds"
            )
        return [Completion(text=t, seed=s) for t, s in zip(texts, seeds, strict=True)]


def write_docs(folder: Path) -> Path:
    """Write the small handbook used by ``tiny_index`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payroll-bank-card.md").write_text(PAYROLL_DOC, encoding="utf-8")
    (folder / "leave-annual.md").write_text(LEAVE_DOC, encoding="utf-8")
    (folder / "zh-leave-annual.md").write_text(ZH_DOC, encoding="utf-8")
    (folder / "it-vpn.md").write_text(VPN_DOC, encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _ragguard_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test away from the user's ~/.cache/ragguard."""
    cache = tmp_path_factory.mktemp("ragguard-cache")
    monkeypatch.setenv("RAGGUARD_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _fresh_default_embedder():  # type: ignore[no-untyped-def]
    """check()'s per-process embedder cache must not carry a fake from one test into another."""
    from ragguard.apps.check import default_embedder

    default_embedder.cache_clear()
    yield
    default_embedder.cache_clear()


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def make_embedder() -> type[FakeEmbedder]:
    """The FakeEmbedder class, for tests that pass fixed ``vectors``."""
    return FakeEmbedder


@pytest.fixture
def fake_generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def tiny_docs(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "docs")


@pytest.fixture
def tiny_index(tmp_path: Path, tiny_docs: Path, fake_embedder: FakeEmbedder) -> Path:
    """An index built with the FakeEmbedder from four small documents; returns its folder."""
    from ragguard.retrieval.index import build_index

    out = tmp_path / "index"
    build_index([tiny_docs], out, fake_embedder)
    return out


@pytest.fixture
def fake_guard(tiny_index: Path, fake_generator: FakeGenerator, fake_embedder: FakeEmbedder) -> Any:
    """The whole pipeline over the fakes and ``tiny_index`` (default config)."""
    from ragguard.config import Config
    from ragguard.pipeline import RagGuard
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex

    retriever = IndexRetriever(KnowledgeIndex.load(tiny_index), fake_embedder)
    return RagGuard(Config(), fake_generator, fake_embedder, retriever, index_path=str(tiny_index))


# Tiny Qwen2 models and tuned adapters for the tuning, adapter and merge tests (issue 7).
# The 4-bit ones run once per bitsandbytes CPU path, forced (issue 19): see tiny_models.bnb_cpu_path.
from tiny_models import (  # noqa: E402, F401
    _forced_bnb_cpu_path,
    bnb_cpu_path,
    fp32_adapter,
    nf4_adapter,
    tiny_qwen2_dir,
    tiny_qwen2_wide_dir,
    tune_data_file,
)
