"""Typed results shared by the library, the CLI, the audit and integrations.

Every result has one ``to_dict()`` whose shape is the contract in
``CONTRACTS.md``; nothing else builds those dictionaries by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "Verdict",
    "FindingKind",
    "POLARITY",
    "QUANTITY",
    "ENTITY",
    "NLI",
    "DIVERGENT",
    "Passage",
    "Sample",
    "Cluster",
    "Contradiction",
    "Fingerprint",
    "Report",
]

Verdict = Literal["consistent", "inconsistent", "contradiction", "abstain"]

# What a contradiction says is wrong. The rule-based detectors of ragguard.core.detectors find
# polarity (opposite answers), quantity (different values) and entity (different names); nli is
# an NLI model's reading; divergent only says two clusters differ in meaning.
FindingKind = Literal["polarity", "quantity", "entity", "nli", "divergent"]
POLARITY: FindingKind = "polarity"
QUANTITY: FindingKind = "quantity"
ENTITY: FindingKind = "entity"
NLI: FindingKind = "nli"
DIVERGENT: FindingKind = "divergent"


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk of context with its similarity score."""

    doc_id: str
    chunk_id: str
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "score": round(float(self.score), 6),
        }


def _rounded(value: float | None) -> float | None:
    """A float for JSON, rounded to 6 decimals; ``None`` (and anything not finite) is ``null``."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


@dataclass(frozen=True)
class Sample:
    """One generated answer. ``seed`` is ``None`` for the greedy answer.

    ``logprob_mean`` and ``logprob_min`` summarise the natural-log
    probabilities of the answer's own tokens under the model's raw
    distribution (see :class:`ragguard.core.protocols.Completion`), over
    ``tokens`` scored tokens; all three are ``None`` when the backend (or the
    ``check`` input) gave no log-probabilities. ``truncated`` is True when the answer was cut at
    the generator's length limit (``sampling.max_new_tokens``) before it ended; ``None`` when that is
    not known (a ``check`` input that did not say).
    """

    text: str
    seed: int | None
    greedy: bool
    cluster: int = -1
    logprob_mean: float | None = None
    logprob_min: float | None = None
    tokens: int | None = None
    truncated: bool | None = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "seed": self.seed, "greedy": self.greedy, "cluster": self.cluster,
                "logprob_mean": _rounded(self.logprob_mean), "logprob_min": _rounded(self.logprob_min),
                "tokens": self.tokens, "truncated": self.truncated}


@dataclass(frozen=True)
class Cluster:
    """A group of samples that say the same thing."""

    id: int
    size: int
    representative: str
    members: list[int]
    support: float | None = None  # best cosine between the representative and a source passage
    claim_support: float | None = None  # lexical support of what the representative adds (core.grounding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "size": self.size,
            "representative": self.representative,
            "members": list(self.members),
            "support": None if self.support is None else round(float(self.support), 6),
            "claim_support": None if self.claim_support is None else round(float(self.claim_support), 6),
        }


@dataclass(frozen=True)
class Contradiction:
    """Two samples (indexes into ``Report.samples``) that disagree."""

    a: int
    b: int
    kind: FindingKind
    score: float
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "kind": self.kind,
            "score": round(float(self.score), 6),
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Fingerprint:
    """Everything that produced a report, so a run can be reproduced or compared."""

    model: str
    adapter: str | None
    embedder: str
    config_hash: str
    versions: dict[str, str]
    device: str
    seeds: list[int]
    model_sha256: str | None = None
    index: str | None = None
    # The generator's weight dtype and, on a CPU, its capability (ragguard.generation.hardware.cpu_capability):
    # bfloat16 and float32, or AMX and AVX2 kernels, give different tokens for the same config.
    dtype: str | None = None
    cpu: str | None = None
    # The config hash without the index folder (``Config.setup_hash``): what a calibration is checked against.
    setup_hash: str | None = None
    # The adapter's weights hash (``adapter`` is only its path: a retrained adapter there has another hash).
    adapter_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """The answer to one question with its consistency evidence."""

    question: str
    answer: str
    verdict: Verdict
    agreement: float
    semantic_entropy: float
    samples: list[Sample]
    clusters: list[Cluster]
    contradictions: list[Contradiction]
    sources: list[Passage] = field(default_factory=list)
    fingerprint: Fingerprint | None = None
    timings: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    grounded: bool | None = None
    warnings: list[str] = field(default_factory=list)
    # With ``sampling.adaptive``: {"drawn": int, "of": int, "stopped": "agreed" | "contradiction" | "all drawn"}.
    adaptive: dict[str, Any] | None = None
    # Semantic entropy with clusters weighted by their members' probabilities (None without log-probs).
    semantic_entropy_weighted: float | None = None
    # Claim-level grounding of the voted answer (``ragguard.core.grounding.Grounding.to_dict()``).
    grounding: dict[str, Any] | None = None
    # With a calibration (``consistency.calibration``): confidence is the fitted P(right), and
    # ``calibration`` names the file and any mismatch with the setup it was fitted for.
    calibrated: bool = False
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The contract JSON form (see CONTRACTS.md, ``ask --json``)."""
        extra = {"adaptive": dict(self.adaptive)} if self.adaptive is not None else {}
        return {
            "question": self.question,
            "answer": self.answer,
            "verdict": self.verdict,
            "agreement": round(float(self.agreement), 6),
            "semantic_entropy": round(float(self.semantic_entropy), 6),
            "semantic_entropy_weighted": _rounded(self.semantic_entropy_weighted),
            "confidence": round(float(self.confidence), 6),
            "calibrated": self.calibrated,
            **({"calibration": dict(self.calibration)} if self.calibration is not None else {}),
            "grounded": self.grounded,
            "grounding": self.grounding,
            "samples": [s.to_dict() for s in self.samples],
            "clusters": [c.to_dict() for c in self.clusters],
            "contradictions": [c.to_dict() for c in self.contradictions],
            "sources": [p.to_dict() for p in self.sources],
            "warnings": list(self.warnings),
            **extra,
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }
