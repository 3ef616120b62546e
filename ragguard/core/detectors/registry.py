"""The checks, their order and their gating, in one table; and :func:`detect` / :func:`detect_all`.

Each check reads something from each answer (read once per answer, when first needed, since
:func:`detect_all` compares every answer with all the others) and compares the two readings.
:data:`CHECKS` runs in order; a check runs only for the questions it applies to, and an
``alone`` check only when no earlier check found anything. Adding a detector is adding a module
with a reader and a comparison, and a row here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from ragguard.core.detectors import entity, polarity, predicates, quantity
from ragguard.core.detectors.finding import Finding
from ragguard.core.script import simplified
from ragguard.core.types import ENTITY, POLARITY, QUANTITY, FindingKind

__all__ = ["Question", "Reading", "Check", "CHECKS", "detect", "detect_all"]


@dataclass(frozen=True)
class Question:
    """What the checks need to know about the question, worked out once per set of answers."""

    text: str

    @cached_property
    def yes_no(self) -> bool:
        return polarity.is_yes_no_question(self.text)

    @cached_property
    def asks_for_a_name(self) -> bool:
        return entity.asks_for_a_name(self.text)

    @cached_property
    def asks_who(self) -> bool:
        return entity.asks_who(self.text)

    @cached_property
    def quantities(self) -> quantity.Quantities:
        # Values the question itself gives ("a vacation longer than a week") are conditions, not answers.
        return quantity.quantities(self.text) if self.text else {}


@dataclass
class Reading:
    """One answer to a question, with each reader's result computed once, when first asked for."""

    text: str
    question: str
    _cache: dict[Callable[[str, str], Any], Any] = field(default_factory=dict, repr=False)

    def read(self, reader: Callable[[str, str], Any]) -> Any:
        if reader not in self._cache:
            self._cache[reader] = reader(self.text, self.question)
        return self._cache[reader]


@dataclass(frozen=True)
class Check:
    """One row of the check table.

    Attributes:
        kind: The kind of finding it reports.
        read: ``read(answer, question)``: what the check looks at in one answer.
        compare: ``compare(reading_a, reading_b, question)``: the findings for a pair.
        applies: Which questions the check is for.
        alone: Run only when no earlier check found anything.
    """

    kind: FindingKind
    read: Callable[[str, str], Any]
    compare: Callable[[Any, Any, Question], list[Finding]]
    applies: Callable[[Question], bool] = lambda q: True
    alone: bool = False


def _stance(answer: str, question: str) -> polarity.Stance:
    return polarity.stance(answer, question)


def _predicates(answer: str, question: str) -> predicates.Clauses:
    return predicates.predicate_clauses(answer)


def _quantities(answer: str, question: str) -> quantity.Quantities:
    return quantity.quantities(answer)


def _entities(answer: str, question: str) -> set[str]:
    return entity.entities(answer, question)


def _roles(answer: str, question: str) -> dict[str, str]:
    return entity.roles(answer, question)


CHECKS: tuple[Check, ...] = (
    # Opposite yes/no stances.
    Check(POLARITY, _stance, lambda a, b, q: polarity.clash(a, b)),
    # A predicate asserted and denied: for open questions only, where no stance decides.
    Check(POLARITY, _predicates, lambda a, b, q: predicates.clash(a, b), applies=lambda q: not q.yes_no, alone=True),
    # Different values of one unit, whatever else was found (one finding per unit).
    Check(QUANTITY, _quantities, lambda a, b, q: quantity.clash(a, b, q.quantities)),
    # Names and roles only settle which/where/who questions that nothing else explains.
    Check(ENTITY, _entities, lambda a, b, q: entity.name_clash(a, b), applies=lambda q: q.asks_for_a_name,
          alone=True),
    Check(ENTITY, _roles, lambda a, b, q: entity.role_clash(a, b),
          applies=lambda q: q.asks_for_a_name and q.asks_who, alone=True),
)


def _compare(ra: Reading, rb: Reading, question: Question, checks: Sequence[Check] = CHECKS) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        if (check.alone and findings) or not check.applies(question):
            continue
        findings += check.compare(ra.read(check.read), rb.read(check.read), question)
    return findings


def _as_written(finding: Finding, a: str, b: str, folded_a: str, folded_b: str) -> Finding:
    """``finding`` with its spans quoted from the texts as written (the checks read them folded to Simplified)."""
    def quote(span: str, text: str, folded: str) -> str:
        at = folded.find(span) if folded != text else -1
        return text[at : at + len(span)] if at >= 0 else span
    return replace(finding, span_a=quote(finding.span_a, a, folded_a), span_b=quote(finding.span_b, b, folded_b))


def detect(a: str, b: str, question: str = "") -> list[Finding]:
    """All contradictions between answers ``a`` and ``b`` to ``question``.

    Traditional Chinese is read as Simplified (:func:`~ragguard.core.script.simplified`); the findings quote the
    answers as written.
    """
    fa, fb, fq = simplified(a), simplified(b), simplified(question)
    return [_as_written(f, a, b, fa, fb) for f in _compare(Reading(fa, fq), Reading(fb, fq), Question(fq))]


def detect_all(texts: Sequence[str], question: str = "") -> dict[tuple[int, int], list[Finding]]:
    """Run :func:`detect` on every pair ``i < j``; only pairs with findings are returned.

    Identical answers (up to surrounding whitespace) are not compared. Traditional Chinese is read as
    Simplified, as in :func:`detect`.
    """
    out: dict[tuple[int, int], list[Finding]] = {}
    folded, fq = [simplified(t) for t in texts], simplified(question)
    readings = [Reading(t, fq) for t in folded]
    q = Question(fq)
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if texts[i].strip() == texts[j].strip():
                continue
            found = _compare(readings[i], readings[j], q)
            if found:
                out[(i, j)] = [_as_written(f, texts[i], texts[j], folded[i], folded[j]) for f in found]
    return out
