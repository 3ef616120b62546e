"""The entity detector: which/where/who questions answered with different names or roles.

The named things each answer commits to (capitalised names and form codes; names marked by the
words around them, such as banks, branches, departments, forms, 《titles》, cities and places;
web addresses), minus those the question names. Two answers with disjoint names contradict; for
a who question, so do two that name roles of different kinds only (line manager vs HR business
partner). Cues come from :class:`~ragguard.core.detectors.lexicon.EntityCues`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragguard.core.detectors.finding import Finding
from ragguard.core.detectors.languages import compiled
from ragguard.core.detectors.lexicon import EntityCues, Lexicon, NameRule
from ragguard.core.types import ENTITY

__all__ = ["entities", "roles", "asks_for_a_name", "asks_who", "name_clash", "role_clash"]

# Web addresses name a place as much as a capitalised name does: permits.marlowcouncil.gov
_URL = re.compile(r"\b(?:https?://)?(?:[a-z0-9-]+\.)+(?:com|gov|org|net|edu|io|co|uk|cn|de|fr|eu|info)(?:/[\w/-]*)?\b", re.I)


@dataclass(frozen=True)
class _Cues:
    lexicons: tuple[EntityCues, ...]
    role_kind: dict[str, str]  # role word (lowercase) -> role kind
    role: re.Pattern[str] | None  # a role phrase; its last matched group is the role word


def _build(lexicons: tuple[Lexicon, ...]) -> _Cues:
    cues = tuple(lex.entities for lex in lexicons)
    templates = [c.role_pattern.replace("{roles}", "|".join(sorted(c.roles, key=len, reverse=True)))
                 for c in cues if c.roles and c.role_pattern]
    return _Cues(
        lexicons=cues,
        role_kind={word.lower(): kind for c in cues for word, kind in c.roles.items()},
        role=re.compile("|".join(templates), re.I) if templates else None,
    )


_cues = compiled(_build)


def asks_for_a_name(question: str) -> bool:
    """Does ``question`` ask which, where or who (哪, 谁, 什么)?"""
    return any(c.name_question is not None and c.name_question.search(question) for c in _cues().lexicons)


def asks_who(question: str) -> bool:
    """Does ``question`` ask who?"""
    return any(c.who_question is not None and c.who_question.search(question) for c in _cues().lexicons)


def _capitalised(rule: NameRule, text: str, question: str) -> set[str]:
    found: set[str] = set()
    q_words = set(rule.question_word.findall(question.lower()))
    for sentence in rule.sentence_split.split(text):
        opening = rule.opening.match(sentence)
        start = opening.end() if opening else 0
        for m in rule.name.finditer(sentence):
            words = m.group(0).split()
            if m.start() == start and len(words) == 1 and not rule.code.match(words[0]):
                continue  # one capitalised word opening a sentence is just a sentence start
            while words and (words[0].lower() in rule.stop_words or words[0].lower() in rule.joiners):
                words = words[1:]
            while words and words[-1].lower() in rule.joiners:
                words = words[:-1]
            name = " ".join(words)
            if name and not all(w.lower() in q_words for w in words):
                found.add(name)
    return found | set(rule.code.findall(text))


def entities(text: str, question: str = "") -> set[str]:
    """Named things an answer commits to, minus those the question already names."""
    found: set[str] = set()
    for c in _cues().lexicons:
        if c.names is not None:
            found |= _capitalised(c.names, text, question)
        for marked in c.marked_names:
            for m in marked.pattern.finditer(text):
                name = m.group(1).lstrip(c.marked_lstrip)
                name = marked.drop.sub("", name) if marked.drop is not None else name
                if name and name not in question and name not in c.generic_names and len(name) >= 2:
                    found.add(name)
    found |= {m.group(0).lower() for m in _URL.finditer(text)}
    q = question.lower()
    return {e for e in found if e.lower() not in q and len(e) > 1}  # "B" of B座 is no name


def roles(text: str, question: str = "") -> dict[str, str]:
    """``{role kind: quoted phrase}`` for the roles an answer names, minus kinds the question names."""
    c = _cues()
    if c.role is None:
        return {}
    asked = {c.role_kind[m.group(m.lastindex or 0).lower()] for m in c.role.finditer(question)}
    found: dict[str, str] = {}
    for m in c.role.finditer(text):
        kind = c.role_kind[m.group(m.lastindex or 0).lower()]
        if kind not in asked:
            found.setdefault(kind, " ".join(m.group(0).split()))
    return found


def _overlaps(a: set[str], b: set[str]) -> bool:
    """Do two entity sets share a name (one may be a longer form of the other)?"""
    return any(x == y or x in y or y in x for x in a for y in b)


def name_clash(ea: set[str], eb: set[str]) -> list[Finding]:
    """An ``entity`` finding when both answers name things and share none."""
    if ea and eb and not _overlaps(ea, eb):
        return [Finding(ENTITY, 1.0, ", ".join(sorted(ea)), ", ".join(sorted(eb)))]
    return []


def role_clash(ra: dict[str, str], rb: dict[str, str]) -> list[Finding]:
    """An ``entity`` finding when both answers name roles, of different kinds only."""
    if ra and rb and not set(ra) & set(rb):
        return [Finding(ENTITY, 1.0, ", ".join(ra.values()), ", ".join(rb.values()))]
    return []
