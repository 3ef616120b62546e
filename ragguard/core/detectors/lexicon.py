"""The schema of a language's lexicon: the cue words and patterns each detector reads.

A lexicon is data. The detectors hold the logic and read every registered lexicon (see
:mod:`ragguard.core.detectors.languages`); adding a language is writing one :class:`Lexicon`
and registering it, with no change to a detector.

Two sorts of field:

* ``re.Pattern`` fields are used on their own: the detector runs each lexicon's pattern (the
  lexicon picks its flags) and combines the answers (first hit wins, in registration order).
* ``str`` fields are regex fragments that a detector joins across lexicons, in registration
  order, into one pattern compiled case-insensitively. They are the cues whose *position* in
  the text matters (a quoted span, a split point, a masked region): one joined pattern finds the
  leftmost cue whatever language it is in.

Every field has an empty default, so a lexicon fills only the detectors it serves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Lexicon", "TextCues", "StanceCues", "PredicateCues", "QuantityCues", "DateRule", "TimeRule",
    "ValueRule", "EntityCues", "NameRule", "MarkedName",
]


@dataclass(frozen=True)
class TextCues:
    """Punctuation and topic words, read by the shared text helpers.

    Attributes:
        sentence_ends: Characters that end a sentence (besides semicolons).
        question_marks: Characters that end a question.
        commas, semicolons, colons: Clause punctuation.
        script: Matches one character of the language's script (is a question in this language?).
        topic_words: Words that say what a sentence is about, run on the lowercased text.
        stop_words: Words ``topic_words`` finds that say nothing about the topic.
        stem_suffixes: Suffixes a crude stemmer strips ("items" -> "item"), tried in order.
        stem_keep: Endings that are not suffixes ("ss" in "pass").
        topic_chars: For a language written without spaces: characters whose adjacent pairs
            (bigrams) stand in for words.
        clause_words: (fragment) Words that split a sentence into clauses ("but"); matched
            case-sensitively.
        condition_openers: (fragment) Openers of a leading conditional clause ("if", "unless").
        caveat_words: (fragment) Words after a comma that start a caveat ("but", "however").
    """

    sentence_ends: str = ""
    question_marks: str = ""
    commas: str = ""
    semicolons: str = ""
    colons: str = ""
    script: re.Pattern[str] | None = None
    topic_words: re.Pattern[str] | None = None
    stop_words: frozenset[str] = frozenset()
    stem_suffixes: tuple[str, ...] = ()
    stem_keep: tuple[str, ...] = ()
    topic_chars: re.Pattern[str] | None = None
    clause_words: str = ""
    condition_openers: str = ""
    caveat_words: str = ""


@dataclass(frozen=True)
class StanceCues:
    """What says yes or no (:mod:`ragguard.core.detectors.polarity`).

    Attributes:
        yes_no_question: Matches a question that asks for a yes or a no.
        negative_question: Matches a question asked in the negative ("Aren't ...?").
        yes_lead, no_lead: An answer's opening yes/no (group 1 is the marker), for yes/no questions.
        yes_explicit, no_explicit: The openings that count for any question; default to the leads.
        confirm: A marker that confirms the question ("Correct"): a no to a negative question.
        generic_leads: Openings that answer any question (是, 不是); other leads must echo the
            question's verb.
        lead_families: ``(leads, question words)``: a lead in ``leads`` answers only a question
            that contains one of ``question words`` (可以 answers 可以…吗, not 需要…吗).
        negation: Negation cues; one in an answer's first sentence (and not in the question) is a no.
        free: "Free", a no to a question about paying (and a negation cue then).
        cost_question, free_question: Questions about paying, and about being free.
        no_cost: (fragment) "At no extra cost": part of a yes unless the question is about paying.
        paid: (fragment) "You have to pay": a no to "is it free?".
        modal: (fragment) must / can: a first clause saying it (and no negation) is a yes.
    """

    yes_no_question: re.Pattern[str] | None = None
    negative_question: re.Pattern[str] | None = None
    yes_lead: re.Pattern[str] | None = None
    no_lead: re.Pattern[str] | None = None
    yes_explicit: re.Pattern[str] | None = None
    no_explicit: re.Pattern[str] | None = None
    confirm: re.Pattern[str] | None = None
    generic_leads: frozenset[str] = frozenset()
    lead_families: tuple[tuple[frozenset[str], tuple[str, ...]], ...] = ()
    negation: re.Pattern[str] | None = None
    free: re.Pattern[str] | None = None
    cost_question: re.Pattern[str] | None = None
    free_question: re.Pattern[str] | None = None
    no_cost: str = ""
    paid: str = ""
    modal: str = ""


@dataclass(frozen=True)
class PredicateCues:
    """Policy predicates asserted or denied (:mod:`ragguard.core.detectors.predicates`).

    Attributes:
        predicates: ``{family: (asserting fragment, denying fragment)}``; families are shared
            names across languages (charge, allow, require, entitle, cover).
        restricted: A clause with it is restricted ("only", "unless") and asserts nothing plainly.
        leading_condition: A clause that opens with it ("if") asserts nothing plainly.
    """

    predicates: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    restricted: re.Pattern[str] | None = None
    leading_condition: re.Pattern[str] | None = None


@dataclass(frozen=True)
class DateRule:
    """A calendar date or month: groups named ``month…`` (name or number) and ``day…`` (number)."""

    pattern: re.Pattern[str]


@dataclass(frozen=True)
class TimeRule:
    """A time of day: groups ``hour``, and optionally ``minute``, ``half`` (half past) and ``marker``.

    Attributes:
        pattern: The pattern.
        pm, am: Markers (lowercased, dots removed) that put the time after or before noon; another
            marker, or none, leaves it ambiguous.
        needs_marker_or_minutes: A bare hour ("8") is no time.
        minute_limit: Minutes at or above it make no time.
    """

    pattern: re.Pattern[str]
    pm: frozenset[str] = frozenset()
    am: frozenset[str] = frozenset()
    needs_marker_or_minutes: bool = False
    minute_limit: float | None = None


@dataclass(frozen=True)
class ValueRule:
    """A value of a fixed unit written by a pattern whose group ``value`` is a number (百分之十五)."""

    unit: str
    pattern: re.Pattern[str]
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class QuantityCues:
    """Numbers and units (:mod:`ragguard.core.detectors.quantity`).

    Attributes:
        units: ``{unit word: unit}``; units are shared names across languages (day, week, kg ...).
        number: (fragment) A number written in words or numerals of the language.
        parse_number: Its value, or None when the token is not one of the language's numbers.
        digit_multipliers: Characters after digits that multiply them (5万 = 50000).
        ordinal_prefixes: Characters before a number that make it an ordinal (第三天), no quantity.
        date_units: Unit words that after a bare number name a date, not a duration (3月, 5日).
        year_units: Unit words that after digits worth 100 or more name a year (2025年).
        relative_one: ``(the numeral one, preceding characters)``: 前一天 is the day before.
        month_names: ``{name or its first three letters: month number}`` for ``dates``.
        rate: Matches the start of an amount that is a rate, not a value ("a month" in "£5 a month").
        dates, times, values: Rules for dates, times of day and fixed-unit values.
    """

    units: Mapping[str, str] = field(default_factory=dict)
    number: str = ""
    parse_number: Callable[[str], float | None] | None = None
    digit_multipliers: Mapping[str, float] = field(default_factory=dict)
    ordinal_prefixes: str = ""
    date_units: frozenset[str] = frozenset()
    year_units: frozenset[str] = frozenset()
    relative_one: tuple[str, frozenset[str]] | None = None
    month_names: Mapping[str, int] = field(default_factory=dict)
    rate: re.Pattern[str] | None = None
    dates: tuple[DateRule, ...] = ()
    times: tuple[TimeRule, ...] = ()
    values: tuple[ValueRule, ...] = ()


@dataclass(frozen=True)
class NameRule:
    """Capitalised names (Harbor Bank, form HR-07) in a language that capitalises them.

    Attributes:
        name: Runs of capitalised words and codes.
        code: A form or product code (HR-07, BG12); a name even at a sentence start.
        sentence_split: Splits a text into sentences (a capital after it is a sentence start).
        opening: What may stand before a sentence's first word (spaces, a heading's #, a list's
            bullet or number, a quote mark): a capital right after it is still a sentence start.
        question_word: The question's words (a name made only of them is no new name).
        stop_words: Capitalised words that are no names (lowercased: the, you, Monday ...).
        joiners: Words allowed inside a name but not at its ends (of, and).
    """

    name: re.Pattern[str]
    code: re.Pattern[str]
    sentence_split: re.Pattern[str]
    question_word: re.Pattern[str]
    opening: re.Pattern[str] = re.compile(r"\s*")
    stop_words: frozenset[str] = frozenset()
    joiners: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MarkedName:
    """A name marked by the words around it (在…银行, 《…》): group 1 is the name.

    Attributes:
        pattern: The pattern.
        drop: Leading words to cut off the name (通过, 公司的).
    """

    pattern: re.Pattern[str]
    drop: re.Pattern[str] | None = None


@dataclass(frozen=True)
class EntityCues:
    """Names and roles (:mod:`ragguard.core.detectors.entity`).

    Attributes:
        name_question: Matches a question that asks for a name (which, where, who, 哪, 谁).
        who_question: Matches a question that asks who.
        names: Capitalised names, for a language that has them.
        marked_names: Names marked by the words around them.
        marked_lstrip: Characters stripped from the left of a marked name.
        generic_names: Marked "names" that name nothing in particular (公司, 系统).
        roles: ``{role word: role kind}``; kinds are shared names across languages (manager ...).
        role_pattern: (fragment) A role phrase, with ``{roles}`` where the role words go; its
            last group must be the role word.
    """

    name_question: re.Pattern[str] | None = None
    who_question: re.Pattern[str] | None = None
    names: NameRule | None = None
    marked_names: tuple[MarkedName, ...] = ()
    marked_lstrip: str = ""
    generic_names: frozenset[str] = frozenset()
    roles: Mapping[str, str] = field(default_factory=dict)
    role_pattern: str = ""


# eq=False: a lexicon is hashed by identity, so the detectors can cache what they compile from
# the registered lexicons (their mappings would make a value hash fail).
@dataclass(frozen=True, eq=False)
class Lexicon:
    """One language's cues for every detector.

    Attributes:
        name: A short language code ("en", "zh").
        text, stance, predicates, quantities, entities: The cues of each detector.
    """

    name: str
    text: TextCues = field(default_factory=TextCues)
    stance: StanceCues = field(default_factory=StanceCues)
    predicates: PredicateCues = field(default_factory=PredicateCues)
    quantities: QuantityCues = field(default_factory=QuantityCues)
    entities: EntityCues = field(default_factory=EntityCues)
