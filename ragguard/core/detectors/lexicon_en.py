"""English cues for the contradiction detectors (data only; see :mod:`.lexicon` for the fields)."""

from __future__ import annotations

import re

from ragguard.core.detectors.lexicon import (
    DateRule,
    EntityCues,
    Lexicon,
    NameRule,
    PredicateCues,
    QuantityCues,
    StanceCues,
    TextCues,
    TimeRule,
)

__all__ = ["EN", "english_number"]

_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a": 1, "an": 1,
    "thirteen": 13, "fourteen": 14, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "thousand": 1000,
}
_NUMBER_WORD = "|".join(sorted(_NUMBERS, key=len, reverse=True))


def english_number(token: str) -> float | None:
    """The value of a number written in English words ("five hundred" = 500, "twenty-five" = 25)."""
    words = re.split(r"[\s-]+", token.lower().strip())
    if not all(w in _NUMBERS for w in words):
        return None
    total, part = 0, 0
    for w in words:
        value = _NUMBERS[w]
        if value in (100, 1000):
            part = max(part, 1) * value
            if value == 1000:
                total, part = total + part, 0
        else:
            part += value
    return float(total + part)


_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}

_STOP = frozenset(
    "the a an and or of to in on for with from at by is are was were be been do does did can could should must "
    "will would may might have has had need needs i you we they he she it my your our their this that these those "
    "what which who when where how why if not no yes there any some".split()
)

_COMMON_CAPS = frozenset(
    "the a an you your we our it this that these those employees employee yes no please all each every "
    "if for in on at to from by use using salaries salary payroll annual".split()
    + "i i'm i've i'd i'll".split()  # the first person, as in "When I ...", is no name
    + "when what where which who why how however there here then so but or not note".split()
    # days and months say when, not who or where
    + "monday tuesday wednesday thursday friday saturday sunday".split()
    + list(_MONTHS)
)

_UNITS = {
    "working day": "day", "working days": "day", "business day": "day", "business days": "day",
    "day": "day", "days": "day", "fortnight": "fortnight", "fortnights": "fortnight",
    "week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
    "hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute", "mins": "minute",
    "cent": "cent", "cents": "cent", "pence": "cent", "books": "book", "times": "times", "attempts": "times",
    "percent": "percent", "per cent": "percent",
    "pounds": "money", "pound": "money", "dollars": "money", "euros": "money",
    "kg": "kg", "kgs": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg",
    "gram": "g", "grams": "g", "lb": "lb", "lbs": "lb",
    "km": "km", "kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km",
    "mile": "mile", "miles": "mile", "mb": "mb", "gb": "gb", "tb": "tb",
}

# Who approves / who do I tell: answers often name a role, not a person ("your line manager" vs
# "your HR business partner"). Words of one kind name the same kind of role (a supervisor and a
# line manager are often the same person).
_ROLE_GROUPS = (
    ("manager", "supervisor", "boss", "lead", "leader", "head"), ("director",), ("partner",), ("officer",),
    ("nurse",), ("physician", "doctor", "gp"), ("administrator", "admin"), ("coordinator",),
    ("committee", "board"), ("receptionist",), ("secretary",), ("engineer",),
    ("ceo", "cfo", "coo", "cto", "president", "vice president"), ("landlord",),
    ("agent", "representative", "advisor", "adviser"),
)

_PREDICATES = {
    # family: (asserting forms, denying forms); denials are matched first and masked
    "charge": (
        r"\b(?:charges?|charged|charging)\b|\bfees? (?:is|are) (?:charged|payable)",
        r"\b(?:does not|doesn't|do not|don't|will not|won't|never|not|no)\s+(?:be\s+)?(?:charge|charged|charges)\b"
        r"|(?:\bnot|n't)\s+(?:be\s+)?charged\b|\bfree of charge\b|\bno (?:extra |additional )?(?:fee|charge)s?\b"
        r"|\bat no (?:extra |additional )?cost\b",
    ),
    "allow": (
        r"\b(?:may|allowed|permitted|welcome)\b",
        r"\b(?:prohibited|forbidden|banned|not (?:allowed|permitted)|may not|must not|mustn't)\b"
        r"|(?:\bnot|n't)\s+(?:be\s+)?(?:allowed|permitted)\b",
    ),
    "require": (
        r"\b(?:must|required|requires|require|mandatory|compulsory|need to|needs to|have to|has to)\b",
        r"\b(?:not required|no need|needn't|don't need|do not need|doesn't need|does not need|don't have to|"
        r"do not have to|doesn't have to|does not have to|optional|exempt|exempted|not (?:necessary|mandatory)|voluntary)\b"
        r"|(?:\bnot|n't|\bnever)\s+(?:be\s+|been\s+)?(?:required|necessary|mandatory|needed)\b",
    ),
    "entitle": (
        r"\b(?:entitled|eligible|qualify|qualifies)\b",
        r"\b(?:not entitled|not eligible|ineligible|no longer eligible|(?:does not|doesn't|do not|don't) qualify)\b"
        r"|(?:\bnot|n't)\s+(?:be\s+)?(?:entitled|eligible)\b",
    ),
    "cover": (
        r"\b(?:covered|covers|included|includes|reimbursed|reimburses|reimbursable|refunded|refundable)\b",
        r"\b(?:not covered|doesn't cover|does not cover|excluded|excludes|not included|not reimbursed|not reimbursable|"
        r"non-refundable|not refundable|no refunds?)\b|(?:\bnot|n't)\s+(?:be\s+)?(?:covered|included|reimbursed|refunded)\b",
    ),
}

EN = Lexicon(
    name="en",
    text=TextCues(
        sentence_ends=".!?", question_marks="?", commas=",", semicolons=";", colons=":",
        script=re.compile(r"[A-Za-z]"),
        topic_words=re.compile(r"[a-z][a-z'-]{2,}"), stop_words=_STOP,
        stem_suffixes=("ing", "ed", "es", "s"), stem_keep=("ss",),
        clause_words=r"\bbut\b",
        condition_openers="if|unless|when|whenever|in case|as long as|provided that",
        caveat_words="but|however|although",
    ),
    stance=StanceCues(
        yes_no_question=re.compile(
            r"^\s*(do|does|did|is|are|was|were|can|could|should|must|will|would|may|have|has|need)\b", re.I),
        negative_question=re.compile(
            r"^\s*(?:aren't|isn't|don't|doesn't|didn't|can't|won't|wasn't|weren't|shouldn't|haven't|hasn't|mustn't)\b",
            re.I),
        yes_lead=re.compile(r"^\s*(yes|yeah|yep|correct|that's right|that is right|absolutely|sure)\b", re.I),
        # "No" answers only when punctuation or a pronoun follows it ("No receipts are needed" is not a
        # "no"; "No you don't" is).
        no_lead=re.compile(r"^\s*(no need|(?:no|nope|not at all|incorrect)(?=\s*(?:[,.!;:\u2014-]|$)"
                           r"|\s+(?:you|it|they|we|i|he|she|there|this is|that is|that's)\b))", re.I),
        # "Aren't contractors eligible?" - "Correct, they can't enroll" is a "no".
        confirm=re.compile(r"(correct|that's right|that is right)$", re.I),
        negation=re.compile(
            r"\b(not|never|cannot|can't|don't|doesn't|didn't|isn't|aren't|won't|wouldn't|shouldn't|needn't|"
            r"no need|not required|not necessary|unnecessary|no longer|neither|nor|prohibited|forbidden|not allowed|"
            r"not permitted|banned|unable|optional|voluntary|exempt|exempted|waived|excluded|excludes|exclude|"
            r"no(?!\s*[,.!;:\u2014-]))\b|n't\b",
            re.I,
        ),
        # "Free" says no to a question about paying ("Does it cost extra?" - "It comes free"), not to
        # others ("Can staff use the gym?" - "Staff can use it free of charge" is a yes).
        free=re.compile(r"(?<!feel )(?<![\w-])free(?![\w-])", re.I),
        cost_question=re.compile(r"\b(?:charges?|charged|pay|paid|costs?|fees?|price|extra)\b", re.I),
        free_question=re.compile(r"(?<![\w-])free(?![\w-])", re.I),
        no_cost=r"\b(?:at\s+)?no\s+(?:extra\s+|additional\s+|further\s+)?(?:cost|charge|fee)s?\b|\bfree of charge\b"
                r"|\bwithout (?:any )?(?:extra )?charge\b",
        paid=r"\b(?:(?:have|has|need|needs|must) to pay|pay for|is charged|are charged|will be charged|"
             r"charges? (?:a|an)\b|(?:a|an) [a-z-]+ fee|a fee)\b",
        modal=r"\b(?:must|need to|needs to|have to|has to|required|can|may|allowed|permitted)\b",
    ),
    predicates=PredicateCues(
        predicates=_PREDICATES,
        restricted=re.compile(r"\b(?:only|just|except|unless|non-|provided|as long as|without)\b", re.I),
        leading_condition=re.compile(r"^(?:if|when|whenever|in case)", re.I),
    ),
    quantities=QuantityCues(
        units=_UNITS,
        number=rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*\b",
        parse_number=english_number,
        month_names={**_MONTHS, **{m[:3]: i for m, i in _MONTHS.items()}},
        rate=re.compile(r"an?\s", re.I),
        dates=(DateRule(re.compile(
            r"\b(?:(?P<month1>January|February|March|April|May|June|July|August|September|October|November|December|"
            r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?\s+(?P<day1>\d{1,2})(?:st|nd|rd|th)?\b"
            r"|(?P<day2>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month2>January|February|March|April|May|June|July|August|"
            r"September|October|November|December)\b"
            r"|(?<![A-Z.!?]\s)(?<!^)(?P<month3>January|February|March|April|June|July|August|September|October|November|"
            r"December)\b)"
        )),),
        times=(TimeRule(
            re.compile(r"(?<![\d:])(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<marker>a\.?m\.?|p\.?m\.?|AM|PM|o'clock)?"
                       r"(?![\d:])", re.I),
            pm=frozenset({"pm"}), am=frozenset({"am"}), needs_marker_or_minutes=True, minute_limit=60,
        ),),
    ),
    entities=EntityCues(
        name_question=re.compile(
            r"^\s*(?:(?:in|at|from|to|with|by|for|on|through)\s+)?(which|where|who|whom|whose|what\s+(?:bank|form|"
            r"department|team|branch|city|office|system|tool|person|address|app|portal))\b", re.I),
        who_question=re.compile(r"^\s*(?:who|whom)\b", re.I),
        names=NameRule(
            name=re.compile(
                r"(?<![A-Za-z0-9'-])(?:[A-Z]+-\d+|[A-Z]{2,}\d+|[A-Z][A-Za-z&']*(?:-[A-Za-z]+)*)"
                r"(?:\s+(?:[A-Z]+-\d+|[A-Z]{2,}\d+|[A-Z][A-Za-z&']*(?:-[A-Za-z]+)*|of|and|&))*"
            ),
            code=re.compile(r"\b(?:[A-Z]+-\d+|[A-Z]{2,}\d+)\b"),
            sentence_split=re.compile(r"(?<=[.!?])\s+|\s*\n\s*"),  # a line (a heading, a list item) opens one too
            opening=re.compile(r"(?:[\s#>*•\-\"'`(\[]|\d+[.)]\s)*"),  # "# Usage", "- Run", "1. Open"
            question_word=re.compile(r"[a-z0-9'-]+"),
            stop_words=_COMMON_CAPS,
            joiners=frozenset({"of", "and", "&"}),
        ),
        roles={word: group[0] for group in _ROLE_GROUPS for word in group},
        role_pattern=r"((?:[A-Za-z'-]+\s+){0,2})\b({roles})s?\b",
    ),
)
