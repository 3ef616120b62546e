"""Adaptive sampling: how many answers each round draws, and when a question is settled early.

Pure functions over counts and reports, so the rounds and the stopping rule
are tested without a model.
"""

from __future__ import annotations

from ragguard.core.consistency import CONTRADICTION_KINDS
from ragguard.core.types import Report

__all__ = ["adaptive_rounds", "samples_adaptively", "round_agrees", "settled"]


def adaptive_rounds(samples: int) -> list[int]:
    """How many answers adaptive sampling has after each round: greedy + 2 first, then up to ``samples``.

    The middle round, when there is room for one, ends at the first count that is a majority of
    ``samples`` (from there :func:`settled` may stop on agreement): ``[3, 5, 8]`` for 8,
    ``[3, 4, 6]`` for 6, ``[3, 5]`` for 5.
    """
    if samples <= 3:
        return [samples]
    majority = samples // 2 + 1
    return [3, majority, samples] if 3 < majority < samples else [3, samples]


def samples_adaptively(adaptive: bool, samples: int) -> bool:
    """Whether ``sampling.adaptive`` draws in more than one round for ``samples`` answers (more than 3)."""
    return adaptive and len(adaptive_rounds(samples)) > 1


def round_agrees(report: Report) -> bool:
    """A round agrees when every sample sits in one cluster and nothing contradicts."""
    return len(report.clusters) == 1 and not report.contradictions and report.verdict != "abstain"


def settled(report: Report, of: int) -> str | None:
    """Why adaptive sampling may stop now that ``len(report.samples)`` of ``of`` answers are drawn, or None.

    ``contradiction`` (any round): a detector already found two answers that
    contradict; the detectors read pairs, so that pair and the verdict
    ``contradiction`` stay in any larger set of samples.
    ``agreed``: every answer so far in one cluster, nothing contradicting, and
    they are more than half of the ``of`` planned answers (so the vote's
    majority is already there). Fewer agreeing answers are weak evidence with
    a small model: stopping on agreement at 3 of 8 changed 2 of 36 FAQ verdicts
    on each of two seeds, waiting for 5 of 8 none (see the README).
    """
    if any(c.kind in CONTRADICTION_KINDS for c in report.contradictions):
        return "contradiction"
    if 2 * len(report.samples) > of and round_agrees(report):
        return "agreed"
    return None
