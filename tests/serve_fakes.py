"""A fast deterministic pipeline for tests and benchmarks of ``ragguard serve``.

``ragguard serve --guard serve_fakes:build_guard`` (with ``tests/`` on ``PYTHONPATH``) serves it.
The generator's answers depend only on (question, seed), like a real model's; a generation call
costs ``RAGGUARD_FAKE_PASS_MS`` plus ``RAGGUARD_FAKE_ROW_MS`` per row (sleeps, to model a model
whose batched pass costs little more than one row), so batching pays as it does on a GPU.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from fakes import WordEmbedder

from ragguard.config import Config
from ragguard.core.protocols import Completion
from ragguard.core.types import Passage
from ragguard.pipeline import RagGuard

PASSAGES = [
    ("leave-annual.md", "Every employee gets 25 days of annual leave per calendar year."),
    ("payroll-bank-card.md", "Employees without the payroll bank card must request an employment certificate from HR."),
    ("it-vpn.md", "Connect to the office network from home with the VPN client and your hardware token."),
]

ANSWERS = [
    "You get 25 days of annual leave per year.",
    "You get 25 days of annual leave each year.",
    "Yes, request an employment certificate from HR.",
    "No, you do not need a certificate.",
    "Use the VPN client with your hardware token.",
]
_QUESTION = re.compile(r"Question: (.*)\Z", re.S)


def answer_for(question: str, seed: int | None) -> str:
    """The fake model's answer: the greedy one fixed per question, samples vary with the seed."""
    digest = hashlib.sha256(f"{question}\0{seed}".encode()).digest()
    if seed is None or digest[0] % 4:  # most samples agree with the greedy answer
        digest = hashlib.sha256(question.encode()).digest()
    return ANSWERS[digest[1] % len(ANSWERS)]


class SimulatedGenerator:
    """Deterministic answers at a simulated cost per generation call."""

    name = "simulated"
    device = "cpu"
    adapter = None
    model_sha256 = None

    def __init__(self, pass_ms: float = 0.0, row_ms: float = 0.0) -> None:
        self.pass_s = pass_ms / 1000
        self.row_s = row_ms / 1000
        self.calls = 0
        self._lock = threading.Lock()

    def _question(self, messages: Sequence[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        match = _QUESTION.search(user)
        return match.group(1).strip() if match else user.strip()

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        return self.generate_batch([messages], [seeds])[0]

    def generate_batch(
        self, conversations: Sequence[Sequence[dict[str, str]]], seeds: Sequence[Sequence[int | None]]
    ) -> list[list[Completion]]:
        rows = sum(len(s) for s in seeds)
        with self._lock:  # one model, one pass at a time
            self.calls += 1
            time.sleep(self.pass_s + self.row_s * rows)
        return [
            [Completion(answer_for(self._question(m), s), s) for s in row_seeds]
            for m, row_seeds in zip(conversations, seeds, strict=True)
        ]


class ListRetriever:
    """Scores a fixed list of passages by cosine with the query."""

    def __init__(self, embedder: Any, passages: Sequence[tuple[str, str]] = PASSAGES) -> None:
        self.embedder, self.passages = embedder, list(passages)
        self.vectors = embedder.embed([text for _, text in self.passages])

    def search(self, query: str, k: int) -> list[Passage]:
        scores = self.vectors @ self.embedder.embed([query])[0]
        order = sorted(range(len(self.passages)), key=lambda i: (-float(scores[i]), i))[:k]
        return [Passage(self.passages[i][0], f"{self.passages[i][0]}#0", self.passages[i][1], float(scores[i]))
                for i in order]


def build_guard() -> RagGuard:
    """The served pipeline (cost from RAGGUARD_FAKE_PASS_MS / RAGGUARD_FAKE_ROW_MS, default free)."""
    generator = SimulatedGenerator(
        float(os.environ.get("RAGGUARD_FAKE_PASS_MS", "0")), float(os.environ.get("RAGGUARD_FAKE_ROW_MS", "0"))
    )
    embedder = WordEmbedder()
    config = Config().replace("retrieval", min_score=None)
    return RagGuard(config, generator, embedder, ListRetriever(embedder))


def build_gated_guard() -> RagGuard:
    """The served pipeline with the off-topic gate on: a question sharing no word with a passage abstains."""
    guard = build_guard()
    return RagGuard(guard.config.replace("retrieval", min_score=0.2), guard.generator, guard.embedder, guard.retriever)
