"""Scoring answers that were generated elsewhere (``ragguard check``).

Any LLM can produce the samples; ragguard clusters them, runs the
contradiction detectors and returns the same report as ``ask``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ragguard.config import Config
from ragguard.core.consistency import ConsistencyChecker, ConsistencyResult, ConsistencySettings
from ragguard.core.protocols import Embedder
from ragguard.core.types import Passage, Report, Sample
from ragguard.errors import UsageError
from ragguard.generation.nli import NLIModel

__all__ = [
    "check",
    "check_record",
    "checker_from_config",
    "default_embedder",
    "nli_from_config",
    "report_from_result",
    "settings_from_config",
]


@functools.lru_cache(maxsize=4)
def default_embedder(model: str, device: str, batch_size: int) -> Embedder:
    """One embedder per setting per process: repeated ``check`` calls must not reload the model."""
    from ragguard.generation.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model, device, batch_size)


def settings_from_config(config: Config) -> ConsistencySettings:
    """The consistency thresholds of ``config`` (see :meth:`ragguard.config.ConsistencyConfig.settings`)."""
    return config.consistency.settings()


def nli_from_config(config: Config) -> NLIModel | None:
    """The configured NLI model (loaded once per process, weights on first use), or ``None``."""
    c = config.consistency
    if not c.nli_model:
        return None
    from ragguard.generation.nli import load_nli

    return load_nli(c.nli_model, c.nli_device, c.nli_batch_size)


def checker_from_config(config: Config, embedder: Embedder, nli: NLIModel | None = None) -> ConsistencyChecker:
    """A :class:`ConsistencyChecker` with the config's thresholds and NLI model."""
    return ConsistencyChecker(embedder, settings_from_config(config), nli if nli is not None else nli_from_config(config))


def report_from_result(question: str, result: ConsistencyResult) -> Report:
    """Wrap a :class:`ConsistencyResult` into a :class:`Report` (no sources or fingerprint yet)."""
    return Report(
        question=question,
        answer=result.answer,
        verdict=result.verdict,
        agreement=result.agreement,
        semantic_entropy=result.semantic_entropy,
        samples=result.samples,
        clusters=result.clusters,
        contradictions=result.contradictions,
        confidence=result.confidence,
        grounded=result.grounded,
        warnings=list(result.warnings),
    )


def check(
    question: str,
    samples: Sequence[str],
    context: str | Sequence[str] | None = None,
    *,
    embedder: Embedder | None = None,
    config: Config | None = None,
    nli: NLIModel | None = None,
) -> Report:
    """Score externally generated answers to ``question``.

    Args:
        question: the question the samples answer.
        samples: the answers (at least one). None of them is treated as the
            greedy answer, so size ties go to the lowest cluster id.
        context: passages the answers were generated from; carried in the
            report's ``sources`` so the evidence travels with the verdict.
        embedder: defaults to the configured (embedded) sentence embedder.
        config: thresholds; defaults to :class:`Config`.
        nli: an NLI model; defaults to ``consistency.nli_model`` of the config (none by default).
    """
    cfg = config or Config()
    if not isinstance(question, str) or not question.strip():
        raise UsageError("'question' is empty: every record needs the question its samples answer")
    if isinstance(samples, str) or not isinstance(samples, Sequence) or not samples:
        raise UsageError("'samples' must be a non-empty list of answer strings")
    if not all(isinstance(s, str) for s in samples):
        raise UsageError("'samples' must contain only strings")
    if embedder is None and cfg.embedder.backend != "sentence-transformers":
        from ragguard.generation.backends import build_embedder

        embedder = build_embedder(cfg.embedder)
    if embedder is None:
        embedder = default_embedder(cfg.embedder.model, cfg.embedder.device, cfg.embedder.batch_size)
    checker = checker_from_config(cfg, embedder, nli)
    passages = [context] if isinstance(context, str) else list(context or [])
    samples_ = [Sample(text=s, seed=None, greedy=False) for s in samples]
    result = checker.check(question.strip(), samples_, [str(p) for p in passages])
    report = report_from_result(question.strip(), result)
    report.sources = [
        Passage(doc_id="context", chunk_id=f"context#{i}", text=str(text), score=1.0)
        for i, text in enumerate(passages)
        if str(text).strip()
    ]
    return report


def check_record(data: dict[str, Any], embedder: Embedder, config: Config) -> Report:
    """Score one input record ``{"question", "samples", "context"?}``."""
    if "question" not in data:
        raise UsageError("record has no 'question' field")
    if "samples" not in data:
        raise UsageError("record has no 'samples' field (a list of answers)")
    return check(data["question"], data["samples"], data.get("context"), embedder=embedder, config=config)
