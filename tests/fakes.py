"""Small deterministic fakes shared by several test modules (importable, unlike conftest)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


class WordEmbedder:
    """Bag-of-words hashing embedder: texts with the same words get the same vector."""

    name = "word-embedder"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


# CONTRACTS.md "ask --json"; ragguard adds confidence, grounded and warnings (additions are allowed).
CONTRACT_KEYS = frozenset({
    "question", "answer", "verdict", "agreement", "semantic_entropy", "samples", "clusters",
    "contradictions", "sources", "fingerprint", "timings",
})


def finite_json(text: str) -> Any:
    """``text`` parsed as strict JSON: NaN and Infinity (which Python's json writes and reads) are refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in ragguard's JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)
