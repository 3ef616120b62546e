"""The polarity detector: an answer's yes/no stance on a yes/no question.

A leading yes/no marker decides (yes, no, 是, 不是, 需要, 不需要 ...). Without one, the first
sentence must be about the question; then a negation cue in it that the question does not itself
contain makes it a "no", and its absence a "yes". Two answers with opposite stances contradict.
Cues come from :class:`~ragguard.core.detectors.lexicon.StanceCues`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ragguard.core.detectors.finding import Finding
from ragguard.core.detectors.languages import compiled, joined
from ragguard.core.detectors.lexicon import Lexicon
from ragguard.core.detectors.text import (
    answer_part,
    context,
    first_sentence,
    in_script,
    main_clause,
    masked,
    on_topic,
    opening_clause,
)
from ragguard.core.script import simplified
from ragguard.core.types import POLARITY

__all__ = ["stance", "lead_stance", "same_lead_pairs", "is_yes_no_question", "clash"]

Stance = tuple[int, str]


@dataclass(frozen=True)
class _Cues:
    lexicons: tuple[Lexicon, ...]
    leads: tuple[tuple[re.Pattern[str], int], ...]  # for yes/no questions: (opening, sign), in order
    explicit: tuple[tuple[re.Pattern[str], int], ...]  # for any question
    negations: tuple[re.Pattern[str], ...]
    frees: tuple[re.Pattern[str], ...]
    no_cost: re.Pattern[str] | None
    paid: re.Pattern[str] | None
    modal: re.Pattern[str] | None


def _optional(fragments: list[str]) -> re.Pattern[str] | None:
    body = joined(fragments)
    return re.compile(body, re.I) if body else None


def _build(lexicons: tuple[Lexicon, ...]) -> _Cues:
    leads: list[tuple[re.Pattern[str], int]] = []
    explicit: list[tuple[re.Pattern[str], int]] = []
    for lex in lexicons:
        s = lex.stance
        for pattern, out, sign in ((s.no_lead, leads, -1), (s.yes_lead, leads, 1),
                                   (s.no_explicit or s.no_lead, explicit, -1), (s.yes_explicit or s.yes_lead, explicit, 1)):
            if pattern is not None:
                out.append((pattern, sign))
    cues = [lex.stance for lex in lexicons]
    return _Cues(
        lexicons=lexicons,
        leads=tuple(leads),
        explicit=tuple(explicit),
        negations=tuple(c.negation for c in cues if c.negation is not None),
        frees=tuple(c.free for c in cues if c.free is not None),
        no_cost=_optional([c.no_cost for c in cues]),
        paid=_optional([c.paid for c in cues]),
        modal=_optional([c.modal for c in cues]),
    )


_cues = compiled(_build)


def _any(patterns: Sequence[re.Pattern[str] | None], text: str) -> bool:
    return any(p is not None and p.search(text) for p in patterns)


def is_yes_no_question(question: str) -> bool:
    """Does ``question`` ask for a yes or a no (Do ...?, Is ...?, ...吗？, 是否 ...)?"""
    q = simplified(question.strip())
    return _any([lex.stance.yes_no_question for lex in _cues().lexicons], q)


def _lead_fits(lead: str, question: str) -> bool:
    """Does an opening verb answer this question (可以…吗 is answered 可以/不可以, not 不需要)?"""
    for lex in _cues().lexicons:
        s = lex.stance
        if lead in s.generic_leads or not in_script(lex, question):
            continue
        for leads, question_words in s.lead_families:
            if lead in leads:
                return any(w in question for w in question_words)
    return True


def _negation(text: str, cues: Sequence[re.Pattern[str]], q_neg: set[str]) -> re.Match[str] | None:
    """The first negation cue in ``text`` that the question does not itself contain."""
    for pattern in cues:
        for m in pattern.finditer(text):
            if m.group(0).lower() not in q_neg:
                return m
    return None


def stance(answer: str, question: str = "") -> Stance:
    """The answer's yes/no stance: ``(+1 | -1 | 0, the span that decided it)``.

    A leading yes/no marker decides. For a yes/no question without such a
    marker, the first sentence must be about the question (two shared
    content words or Chinese bigrams); then a negation cue in it makes it a
    "no" (cues the
    question itself contains are ignored: "Is it not allowed?" answered "It
    is not allowed" is not a "no"), and its absence a "yes". A first clause
    that says must/can with no negation is a "yes" whatever later clauses deny;
    "free" is a "no" to a question about paying, "you have to pay" a "no" to
    "is it free?", and "at no extra cost" no negation unless the question asks
    about paying. An opening sentence that restates the question is skipped.
    For other questions only explicit markers (yes/no, 是的/不是) count, else
    ``(0, "")``.
    """
    answer, question = simplified(answer), simplified(question)  # Traditional Chinese reads as Simplified
    text = answer_part(answer)
    if not text:
        return 0, ""
    c = _cues()
    yes_no = is_yes_no_question(question)
    # Explicit markers always count; the weaker Chinese leads (需要, 可以, 有 ...)
    # and negation cues only count when the question asks for a yes or a no.
    first = first_sentence(text)
    q_neg = {m.group(0).lower() for p in (*c.negations, *c.frees) for m in p.finditer(question)}
    for pattern, sign in c.leads if yes_no else c.explicit:
        m = pattern.match(text)
        if m and m.group(1).lower() not in q_neg:
            if not _lead_fits(m.group(1), question):
                return 0, ""  # the opening verb answers another question
            confirms = any(lex.stance.confirm is not None and lex.stance.confirm.match(m.group(1)) for lex in c.lexicons)
            if confirms and _any([lex.stance.negative_question for lex in c.lexicons], question):
                sign = -1  # "Aren't contractors eligible?" - "Correct, they can't enroll" is a "no"
            return sign, context(text, m.start(), m.end())
    if not yes_no:
        return 0, ""
    first = main_clause(first)
    if not on_topic(first, question):
        return 0, ""  # an answer about something else takes no side
    free_q = _any([lex.stance.free_question for lex in c.lexicons], question)
    cost_q = _any([lex.stance.cost_question for lex in c.lexicons], question) and not free_q
    if not cost_q:
        if c.no_cost is not None:
            first = masked(c.no_cost, first)
        if free_q and c.paid is not None and (m := c.paid.search(first)):
            return -1, context(first, m.start(), m.end())
    cues = (*c.negations, *c.frees) if cost_q else c.negations
    opening = opening_clause(first)
    modal = c.modal.search(opening) if c.modal is not None else None
    if modal and on_topic(opening, question) and _negation(opening, cues, q_neg) is None:
        return 1, context(opening, modal.start(), modal.end())
    m = _negation(first, cues, q_neg)
    if m:
        return -1, context(first, m.start(), m.end())
    return 1, context(first, 0, min(len(first), 40))


def lead_stance(answer: str, question: str = "") -> int:
    """+1 or -1 when the answer *opens* with a yes/no marker, else 0.

    Stricter than :func:`stance`: only explicit openings count, so an
    off-topic answer is never taken for a "yes".
    """
    answer, question = simplified(answer), simplified(question)
    text = answer_part(answer)
    c = _cues()
    leads = c.leads if is_yes_no_question(question) else c.explicit
    return stance(text, question)[0] if any(p.match(text) for p, _ in leads) else 0


def same_lead_pairs(texts: Sequence[str], question: str = "") -> list[tuple[int, int]]:
    """Pairs ``i < j`` of answers that open with the same yes/no marker."""
    leads = [lead_stance(t, question) for t in texts]
    return [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if leads[i] and leads[i] == leads[j]]


def clash(a: Stance, b: Stance) -> list[Finding]:
    """A ``polarity`` finding when two stances are opposite."""
    (sa, span_a), (sb, span_b) = a, b
    return [Finding(POLARITY, 1.0, span_a, span_b)] if sa * sb == -1 else []
