"""The quantity detector: numbers attached to the same unit.

Numbers are Arabic digits or the numerals of a registered language (three, 三, 五万); units are
days, weeks, months, years, hours, money, percent, weights, distances, data sizes, dates and
times of day (:class:`~ragguard.core.detectors.lexicon.QuantityCues`). Two answers that give
disjoint values for the same unit contradict, and so do two that give equally many values of
which one has no match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragguard.core.detectors.finding import Finding
from ragguard.core.detectors.languages import compiled
from ragguard.core.detectors.lexicon import DateRule, Lexicon, QuantityCues, TimeRule, ValueRule
from ragguard.core.types import QUANTITY

__all__ = ["Quantities", "quantities", "to_number", "clash"]

# {unit: {value: quoted span}}
Quantities = dict[str, dict[float, str]]

# Calendar durations compare in days, whatever unit they were written in (a fortnight = 14 days,
# a month = 30); values within 10 % count as the same ("4 weeks" and "one month").
_DAYS_PER = {"day": 1.0, "week": 7.0, "fortnight": 14.0, "month": 30.0, "year": 365.0}
# Weights, distances and data sizes compare in one unit each, whatever unit they were written in.
_MEASURES = {"kg": ("weight", 1.0), "g": ("weight", 0.001), "jin": ("weight", 0.5), "lb": ("weight", 0.4536),
             "km": ("distance", 1.0), "mile": ("distance", 1.609), "mb": ("data", 1 / 1024), "gb": ("data", 1.0),
             "tb": ("data", 1024.0), "hour": ("minutes", 60.0), "minute": ("minutes", 1.0),
             "cent": ("money", 0.01)}
# Units whose values within 10 % count as the same ("4 weeks" and "one month", 1 mile and 1.6 km).
_APPROXIMATE = frozenset({"duration", "weight", "distance", "data", "minutes"})
# Symbols are written the same in every language.
_SYMBOL_UNITS = {"%": "percent"}
_MONEY = ValueRule("money", re.compile(r"([£$€¥￥])\s?(?P<value>\d+(?:[.,]\d+)?)"))


@dataclass(frozen=True)
class _Cues:
    lexicons: tuple[QuantityCues, ...]
    units: dict[str, str]
    amount: re.Pattern[str]  # group 1 a number, group 2 a unit word
    multipliers: dict[str, float]
    date_units: frozenset[str]
    year_units: frozenset[str]
    relative_one: dict[str, frozenset[str]]
    month_names: dict[str, int]
    rates: tuple[re.Pattern[str], ...]


def _build(lexicons: tuple[Lexicon, ...]) -> _Cues:
    cues = tuple(lex.quantities for lex in lexicons)
    units = {**{w: u for c in cues for w, u in c.units.items()}, **_SYMBOL_UNITS}
    multipliers = {k: v for c in cues for k, v in c.digit_multipliers.items()}
    scale = rf"(?:\s*[{''.join(multipliers)}])?" if multipliers else ""
    number = "|".join([rf"\d+(?:[.,]\d+)?{scale}", *(c.number for c in cues if c.number)])
    not_ordinal = "".join(f"(?<!{re.escape(ch)})" for c in cues for ch in c.ordinal_prefixes)
    unit_words = "|".join(sorted((re.escape(u) for u in units), key=len, reverse=True))
    return _Cues(
        lexicons=cues,
        units=units,
        amount=re.compile(rf"{not_ordinal}({number})\s*({unit_words})(?![a-z])", re.I),
        multipliers=multipliers,
        date_units=frozenset().union(*(c.date_units for c in cues)),
        year_units=frozenset().union(*(c.year_units for c in cues)),
        relative_one={c.relative_one[0]: c.relative_one[1] for c in cues if c.relative_one},
        month_names={k: v for c in cues for k, v in c.month_names.items()},
        rates=tuple(c.rate for c in cues if c.rate is not None),
    )


_cues = compiled(_build)


def to_number(token: str) -> float | None:
    """The value of a number written in digits (with a multiplier: 5万) or in a language's words."""
    c = _cues()
    if token[0].isdigit():
        scale = c.multipliers.get(token[-1], 1.0)
        try:
            return float(token.rstrip("".join(c.multipliers) + " ").replace(",", "")) * scale
        except ValueError:
            return None
    for cues in c.lexicons:
        value = cues.parse_number(token) if cues.parse_number else None
        if value is not None:
            return value
    return None


def _clock(hour: float, minute: float, pm: bool | None) -> float:
    """Minutes since midnight; ``pm`` None when the text does not say (an ambiguous time, value + 0.5).

    Times of day are minutes on a 24-hour clock when the text says which half of the day ("8 p.m.",
    "20:00", "晚上8点"); a time that does not ("8:00", "8点") is ambiguous, marked by a value ending
    in .5, and equals both 8 a.m. and 8 p.m. (see :func:`_same`).
    """
    if pm is None and hour <= 12:
        return (hour % 12) * 60 + minute + 0.5
    if pm and hour < 12:
        hour += 12
    elif pm is False and hour == 12:
        hour = 0
    return (hour % 24) * 60 + minute


def _first(m: re.Match[str], prefix: str) -> str | None:
    """The first group named ``prefix...`` that took part in the match."""
    return next((v for k, v in m.groupdict().items() if k.startswith(prefix) and v is not None), None)


def _read_amounts(text: str, c: _Cues, found: Quantities) -> None:
    for m in c.amount.finditer(text):
        value = to_number(m.group(1))
        if value is None:
            continue
        word = m.group(2)
        unit = c.units[word.lower()] if word.lower() in c.units else c.units[word]
        if word in c.date_units:
            continue
        if word in c.year_units and m.group(1)[0].isdigit() and value >= 100:
            continue
        before = c.relative_one.get(m.group(1))
        if before and text[max(0, m.start() - 1):m.start()] in before:
            continue
        if unit in _DAYS_PER:
            unit, value = "duration", value * _DAYS_PER[unit]
        elif unit in _MEASURES:
            unit, value = _MEASURES[unit][0], round(value * _MEASURES[unit][1], 6)
        found.setdefault(unit, {}).setdefault(value, m.group(0).strip())


def _read_date(rule: DateRule, text: str, c: _Cues, found: Quantities) -> None:
    for m in rule.pattern.finditer(text):
        name = _first(m, "month")
        if name is None:
            continue
        month = c.month_names.get(name.lower()) or c.month_names.get(name.lower()[:3]) or to_number(name)
        if month is None or not 1 <= month <= 12:
            continue
        found.setdefault("month", {}).setdefault(float(month), m.group(0).strip())
        day_token = _first(m, "day")
        day = to_number(day_token) if day_token else None
        if day is not None and 1 <= day <= 31:
            found.setdefault("date", {}).setdefault(float(month * 100 + day), m.group(0).strip())


def _read_time(rule: TimeRule, text: str, found: Quantities) -> None:
    for m in rule.pattern.finditer(text):
        groups = m.groupdict()
        hour = to_number(groups["hour"])
        minute = 30.0 if groups.get("half") else (to_number(groups["minute"]) if groups.get("minute") else 0.0)
        if hour is None or minute is None or hour > 24:
            continue
        marker = groups.get("marker")
        if rule.needs_marker_or_minutes and not (marker or groups.get("minute")):
            continue
        if rule.minute_limit is not None and minute >= rule.minute_limit:
            continue
        said = (marker or "").lower().replace(".", "")
        pm = True if said in rule.pm else False if said in rule.am else None
        found.setdefault("time", {}).setdefault(_clock(hour, minute, pm), m.group(0).strip())


def _read_value(rule: ValueRule, text: str, found: Quantities) -> None:
    for m in rule.pattern.finditer(text):
        value = to_number(m.group("value"))
        if value is None or (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high):
            continue
        found.setdefault(rule.unit, {}).setdefault(value, m.group(0).strip())


def quantities(text: str) -> Quantities:
    """Numbers per unit found in ``text``: ``{unit: {value: quoted span}}``.

    Read in this order (the first span quoted for a value stays): amounts (a number and a unit
    word), dates, times of day, then values of a fixed unit (money, percent, day of the month).
    """
    c = _cues()
    found: Quantities = {}
    _read_amounts(text, c, found)
    for cues in c.lexicons:
        for date in cues.dates:
            _read_date(date, text, c, found)
    for cues in c.lexicons:
        for time in cues.times:
            _read_time(time, text, found)
    for rule in (_MONEY, *(v for cues in c.lexicons for v in cues.values)):
        _read_value(rule, text, found)
    return found


def _same(unit: str, x: float, y: float) -> bool:
    """Equal values; converted values within 10 % count as equal ("4 weeks" and "one month", 1 mile and 1.6 km);
    a time of day that does not say a.m. or p.m. equals both."""
    if unit == "time" and (x % 1 or y % 1):
        return int(x) % 720 == int(y) % 720
    return abs(x - y) <= 0.1 * max(x, y) if unit in _APPROXIMATE else x == y


def _any_same(unit: str, x: float, values: set[float]) -> bool:
    return any(_same(unit, x, v) for v in values)


def _is_rate(span: str, c: _Cues) -> bool:
    return any(p.match(span) for p in c.rates)


def clash(qa: Quantities, qb: Quantities, asked: Quantities) -> list[Finding]:
    """One ``quantity`` finding per unit whose values in ``qa`` and ``qb`` disagree.

    ``asked`` holds the question's own values: conditions ("a vacation longer than a week"), not
    answers, left out when both answers say something else too.
    """
    c = _cues()
    findings: list[Finding] = []
    for unit in sorted(set(qa) & set(qb)):
        va, vb = set(qa[unit]), set(qb[unit])
        given = set(asked.get(unit, ()))
        rest_a = {x for x in va if not _any_same(unit, x, given)}
        rest_b = {y for y in vb if not _any_same(unit, y, given)}
        if rest_a and rest_b:
            va, vb = rest_a, rest_b
        if not any(_same(unit, x, y) for x in va for y in vb):
            x, y = min(va), min(vb)
        else:
            # Both give the same number of values (opens at 8 am, closes at 8 pm / opens at 7 am,
            # closes at 8 pm) and one has no match on the other side. A rate ("£5 a month") is
            # no value here.
            va = {x for x in va if not _is_rate(qa[unit][x], c)}
            vb = {y for y in vb if not _is_rate(qb[unit][y], c)}
            if not (len(va) == len(vb) >= 2 and any(not _any_same(unit, x, vb) for x in va)):
                continue
            x = min(x for x in va if not _any_same(unit, x, vb))
            y = min(y for y in vb if not _any_same(unit, y, va))
        score = abs(x - y) / max(abs(x), abs(y), 1e-9)
        findings.append(Finding(QUANTITY, round(min(1.0, score), 6), qa[unit][x], qb[unit][y]))
    return findings
