"""The policy-predicate detector: one answer asserts what the other denies, for open questions.

Answers to a question that is not a yes/no question can still take opposite sides: "What happens
if my balance falls below the minimum?" - "we charge a monthly fee" / "we do not charge any fee".
Each family is a policy predicate (charge, allow, require, entitle, cover) with the words that
assert it and those that deny it (:class:`~ragguard.core.detectors.lexicon.PredicateCues`); a
pair is flagged when one answer asserts and the other denies the same family in a clause about
the same thing (two shared content words), and neither clause is restricted or conditional
("only members may ..." / "non-members cannot ..." say the same thing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragguard.core.detectors.finding import Finding
from ragguard.core.detectors.languages import compiled, joined
from ragguard.core.detectors.lexicon import Lexicon
from ragguard.core.detectors.text import (
    answer_part,
    clause_punctuation,
    context,
    is_question,
    masked,
    sentences,
    topic_terms,
)
from ragguard.core.types import POLARITY

__all__ = ["Clauses", "predicate_clauses", "predicate_clash", "clash"]

# The signed predicates of each plain clause: ({family: (+1 | -1, span)}, the words of its sentence).
Clauses = list[tuple[dict[str, tuple[int, str]], set[str]]]


@dataclass(frozen=True)
class _Cues:
    families: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...]  # (family, asserting, denying)
    words: re.Pattern[str] | None  # every predicate form, to leave them out of a clause's topic
    clause: re.Pattern[str]
    restricted: tuple[re.Pattern[str], ...]
    conditions: tuple[re.Pattern[str], ...]


def _build(lexicons: tuple[Lexicon, ...]) -> _Cues:
    cues = [lex.predicates for lex in lexicons]
    names = list(dict.fromkeys(family for c in cues for family in c.predicates))
    forms = [(family, joined([c.predicates[family][0] for c in cues if family in c.predicates]),
              joined([c.predicates[family][1] for c in cues if family in c.predicates])) for family in names]
    commas, colons = clause_punctuation()
    punct = "".join(re.escape(ch) for ch in commas + colons)
    # Case-sensitive on purpose: the words that split clauses are lowercase ("but", 但).
    clause = "|".join(p for p in (f"[{punct}]" if punct else "", r"\s[\u2014\u2013-]\s",
                                  joined([lex.text.clause_words for lex in lexicons])) if p)
    every = joined([form for _, pos, neg in forms for form in (pos, neg)])
    return _Cues(
        families=tuple((family, re.compile(pos, re.I), re.compile(neg, re.I)) for family, pos, neg in forms),
        words=re.compile(every, re.I) if every else None,
        clause=re.compile(clause),
        restricted=tuple(c.restricted for c in cues if c.restricted is not None),
        conditions=tuple(c.leading_condition for c in cues if c.leading_condition is not None),
    )


_cues = compiled(_build)


def _clause_signs(clause: str) -> dict[str, tuple[int, str]]:
    """``{family: (+1 | -1, span)}`` for the predicates a clause plainly asserts or denies."""
    signs: dict[str, tuple[int, str]] = {}
    for family, pos, neg in _cues().families:
        denied = list(neg.finditer(clause))
        asserted = list(pos.finditer(masked(neg, clause)))
        if denied and not asserted:
            signs[family] = (-1, context(clause, denied[0].start(), denied[0].end()))
        elif asserted and not denied:
            signs[family] = (1, context(clause, asserted[0].start(), asserted[0].end()))
    return signs


def predicate_clauses(answer: str) -> Clauses:
    """The signed predicates of each plain clause of the answer, with the words of its sentence."""
    c = _cues()
    out: Clauses = []
    for sentence in sentences(answer_part(answer)):
        if is_question(sentence):
            continue  # a question asserts nothing
        words = None
        for clause in c.clause.split(sentence):
            clause = clause.strip()
            plain = (clause and not any(p.search(clause) for p in c.restricted)
                     and not any(p.search(clause) for p in c.conditions))
            signs = _clause_signs(clause) if plain else {}
            if signs:
                if words is None:
                    rest = c.words.sub(" ", sentence) if c.words is not None else sentence
                    words = topic_terms(rest, prefix=5)
                out.append((signs, words))
    return out


def _spans(clauses_a: Clauses, clauses_b: Clauses) -> tuple[str, str] | None:
    for signs_a, words_a in clauses_a:
        for signs_b, words_b in clauses_b:
            for family, (sign, span_a) in signs_a.items():
                other = signs_b.get(family)
                if other and other[0] == -sign and len(words_a & words_b) >= 2:
                    return span_a, other[1]
    return None


def predicate_clash(a: str, b: str) -> tuple[str, str] | None:
    """The spans where one answer asserts a policy predicate that the other denies, about the same
    thing (two shared content words or Chinese bigrams besides the predicate), or None."""
    return _spans(predicate_clauses(a), predicate_clauses(b))


def clash(a: Clauses, b: Clauses) -> list[Finding]:
    """A ``polarity`` finding when one answer asserts a predicate the other denies."""
    spans = _spans(a, b)
    return [Finding(POLARITY, 1.0, *spans)] if spans else []
