"""Key facts an answer states (quantities, names, a yes/no), for telling short paraphrases apart from disagreement.

"You get 25 days." and "25 working days per year." embed below a 0.8 cosine
threshold, yet they state the same thing: 25 days. The detectors already read
what an answer commits to; two answers that commit to the same set of such
facts, at least one of them a quantity (or a name with a yes/no), and that
no detector separates, say the same thing.

The set is strict on purpose, since a merge hides a disagreement the detectors
missed: what the question already says (its quantities, its names) is no fact
of the answer; a number the quantity reader could not attach to a unit
("100 Mbps") still counts as a bare number; and whether the answer negates
anything is a fact too ("without HR approval" is not "requires approval from
HR"). On the labelled pairs of tests/data no contradiction or unrelated pair
is merged this way (bench/fact_agreement.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragguard.core.detectors.entity import entities
from ragguard.core.detectors.polarity import _cues, lead_stance
from ragguard.core.detectors.quantity import quantities
from ragguard.core.detectors.text import answer_part
from ragguard.core.script import simplified

__all__ = ["key_facts", "same_fact_pairs"]

Fact = tuple[str, str, float | str | int]
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def key_facts(answer: str, question: str = "") -> frozenset[Fact]:
    """The facts ``answer`` commits to beyond what ``question`` says.

    ``("quantity", unit, value)`` in the quantity reader's base units ("three
    months" and "3 months" are both 90 days), ``("number", digits, "")`` for a
    number outside every quantity, ``("name", name, "")`` in lower case,
    ``("stance", "", ±1)`` for an explicit yes/no opening
    (:func:`lead_stance`), and ``("negated", "", 0 | 1)``. Empty when the
    answer states no quantity or number, and no name with a yes/no opening:
    a stance alone is what :func:`~ragguard.core.detectors.same_lead_pairs`
    already covers, and a name alone commits to too little.
    """
    text = answer_part(answer)
    asked = quantities(question)
    facts: set[Fact] = set()
    spans: list[str] = []
    for unit, values in quantities(text).items():
        for value, span in values.items():
            spans.append(span)
            if value not in asked.get(unit, {}):
                facts.add(("quantity", unit, float(value)))
    rest = text
    for span in spans:
        rest = rest.replace(span, " ")
    facts.update(("number", n, "") for n in _NUMBER.findall(rest) if n not in question)
    facts.update(("name", name.lower(), "") for name in entities(text, question))
    sign = lead_stance(text, question)
    # A name alone is weak evidence: "without HR approval" and "requires approval from HR" name the
    # same thing and disagree (and "without" is no negation cue). Names count with a yes/no opening.
    if not any(kind in ("quantity", "number") for kind, _, _ in facts) and not (facts and sign):
        return frozenset()
    if sign:
        facts.add(("stance", "", sign))
    c = _cues()
    facts.add(("negated", "", int(any(p.search(text) for p in (*c.negations, *c.frees)))))
    return frozenset(facts)


def same_fact_pairs(texts: Sequence[str], question: str = "") -> list[tuple[int, int]]:
    """Pairs ``i < j`` of answers with a non-empty set of key facts, the same for both (:func:`key_facts`)."""
    facts = [key_facts(simplified(t), simplified(question)) for t in texts]
    return [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if facts[i] and facts[i] == facts[j]]
