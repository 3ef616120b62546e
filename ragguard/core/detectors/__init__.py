"""Offline contradiction detectors for answers in the registered languages (pure Python).

Embeddings place "Yes, you need the certificate" next to "No, you do not need it" (cosine 0.81
with all-MiniLM-L6-v2) and "25 days" next to "30 days" (0.94), so agreement cannot be decided by
embeddings alone. These detectors look at what the answers commit to:

* ``polarity`` (:mod:`.polarity`): the answers' stances on a yes/no question are opposite; or, for
  other questions (:mod:`.predicates`), one answer asserts a policy predicate (charge, allow,
  require, entitle, cover) that the other denies about the same thing.
* ``quantity`` (:mod:`.quantity`): numbers attached to the same unit disagree.
* ``entity`` (:mod:`.entity`): a which/where/who question answered with different names, or
  for a who question with roles of different kinds only.

Each finding quotes the spans that conflict, so a reader sees why.

The layout is a rule system. The detectors hold the logic and share the text helpers of
:mod:`.text`; every language's cue words and patterns are data, one
:class:`~.lexicon.Lexicon` per language (:mod:`.lexicon_en`, :mod:`.lexicon_zh`), registered in
:mod:`.languages` (:func:`register_lexicon` adds one); the order and gating of the checks is
the one table :data:`~.registry.CHECKS`.
"""

from __future__ import annotations

from ragguard.core.detectors.entity import entities, roles
from ragguard.core.detectors.facts import key_facts, same_fact_pairs
from ragguard.core.detectors.finding import Finding
from ragguard.core.detectors.languages import LEXICONS, register_lexicon
from ragguard.core.detectors.lexicon import Lexicon
from ragguard.core.detectors.lexicon_zh import chinese_number
from ragguard.core.detectors.polarity import lead_stance, same_lead_pairs, stance
from ragguard.core.detectors.predicates import predicate_clash
from ragguard.core.detectors.quantity import quantities
from ragguard.core.detectors.registry import CHECKS, detect, detect_all
from ragguard.core.detectors.text import first_sentence

__all__ = [
    "Finding", "detect", "detect_all", "CHECKS", "stance", "lead_stance", "same_lead_pairs", "predicate_clash",
    "quantities", "chinese_number", "entities", "roles", "first_sentence", "Lexicon", "LEXICONS",
    "register_lexicon", "key_facts", "same_fact_pairs",
]
