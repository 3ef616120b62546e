"""Languages are data: the EN and ZH lexicons, and a new language added by registering one."""

from __future__ import annotations

import re

import pytest

from ragguard.core.detectors import LEXICONS, Lexicon, detect, languages, quantities, register_lexicon, stance
from ragguard.core.detectors.lexicon import QuantityCues, StanceCues, TextCues
from ragguard.errors import ConfigError

_EO_NUMBERS = {"unu": 1, "du": 2, "tri": 3, "kvar": 4, "kvin": 5}

# Esperanto, as a language the detectors have never seen: yes/no questions open with "Ĉu",
# answers with "Jes" or "Ne", "ne" negates, and durations are counted in "tagoj" (days).
ESPERANTO = Lexicon(
    name="eo",
    text=TextCues(sentence_ends=".!?", question_marks="?", commas=",", semicolons=";", colons=":",
                  topic_words=re.compile(r"[a-zĉĝĥĵŝŭ]{3,}"), stop_words=frozenset({"vin", "kaj", "estas"})),
    stance=StanceCues(
        yes_no_question=re.compile(r"^\s*ĉu\b", re.I),
        yes_lead=re.compile(r"^\s*(jes)\b", re.I),
        no_lead=re.compile(r"^\s*(ne)\b", re.I),
        negation=re.compile(r"\bne\b", re.I),
    ),
    quantities=QuantityCues(
        units={"tagoj": "day", "semajnoj": "week"},
        number=r"\b(?:unu|du|tri|kvar|kvin)\b",
        parse_number=lambda token: float(_EO_NUMBERS[token.lower()]) if token.lower() in _EO_NUMBERS else None,
    ),
)

Q = "Ĉu mi bezonas atestilon de dungado?"  # Do I need an employment certificate?


@pytest.fixture
def esperanto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(languages, "LEXICONS", list(languages.LEXICONS))  # restored after the test
    register_lexicon(ESPERANTO)


def test_english_and_chinese_are_registered_in_that_order() -> None:
    assert [lex.name for lex in LEXICONS] == ["en", "zh"]


def test_an_unknown_language_takes_no_side() -> None:
    assert stance("Jes, vi bezonas ĝin.", Q) == (0, "")
    assert detect("Jes, vi bezonas ĝin.", "Ne, vi ne bezonas ĝin.", Q) == []
    assert quantities("La limdato estas post tri tagoj.") == {}


@pytest.mark.usefixtures("esperanto")
def test_registering_a_lexicon_teaches_every_detector_the_language() -> None:
    assert stance("Jes, vi bezonas ĝin.", Q)[0] == 1
    assert [f.kind for f in detect("Jes, vi bezonas ĝin.", "Ne, vi ne bezonas ĝin.", Q)] == ["polarity"]
    # Without an opening marker: a negation cue in an on-topic first sentence is a no.
    assert stance("Vi bezonas atestilon de dungado.", Q)[0] == 1
    assert stance("Vi ne bezonas atestilon de dungado.", Q)[0] == -1
    # Its number words and units: 3 days against 2 weeks, compared in days.
    assert quantities("La limdato estas post tri tagoj.") == {"duration": {3.0: "tri tagoj"}}
    found = detect("Respondu post tri tagoj.", "Respondu post du semajnoj.")
    assert [(f.kind, f.span_a, f.span_b) for f in found] == [("quantity", "tri tagoj", "du semajnoj")]
    # English and Chinese still work alongside it.
    assert [f.kind for f in detect("Yes, you do.", "No, you don't.", "Do I need it?")] == ["polarity"]
    assert [f.kind for f in detect("试用期为三个月。", "试用期为六个月。")] == ["quantity"]


def test_a_language_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(languages, "LEXICONS", list(languages.LEXICONS))
    with pytest.raises(ConfigError, match="'en' is registered already"):
        register_lexicon(Lexicon(name="en"))
