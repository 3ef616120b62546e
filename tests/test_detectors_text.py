"""The text helpers shared by the detectors (ragguard.core.detectors.text)."""

from __future__ import annotations

import re

import pytest

from ragguard.core.detectors import first_sentence
from ragguard.core.detectors.text import answer_part, context, main_clause, masked, on_topic


@pytest.mark.parametrize(
    ("text", "first"),
    [("  Yes. Ask HR.", "Yes."), ("需要。请联系人事部", "需要。"), ("No; it is free", "No;"), ("One line\nand more", "One line"),
     ("", "")],
)
def test_first_sentence_ends_at_english_and_chinese_punctuation(text: str, first: str) -> None:
    assert first_sentence(text) == first


def test_an_opening_sentence_that_restates_the_question_is_not_the_answer() -> None:
    assert answer_part("地铁换乘需要重新买票吗？不需要，站内换乘无需另行购票。") == "不需要，站内换乘无需另行购票。"
    assert answer_part("Is it free?") == "Is it free?"  # nothing after it: keep it


def test_main_clause_drops_a_leading_condition_and_a_caveat() -> None:
    assert main_clause("If you lose the card, you must tell HR, but not IT.") == "you must tell HR"
    assert main_clause("如果没有工资卡，需要申请证明，但是可以先入职。") == "需要申请证明"


def test_masking_keeps_positions_and_context_cuts_at_words() -> None:
    text = "Parking is free of charge for visitors."
    assert masked(re.compile("free of charge"), text) == "Parking is " + " " * 14 + " for visitors."
    assert context(text, 11, 25, width=5) == "Parking is free of charge for"


def test_on_topic_needs_two_shared_words_or_bigrams() -> None:
    assert on_topic("Refunds are paid within days.", "When is my refund paid?")
    assert not on_topic("The canteen opens at noon.", "When is my refund paid?")
    assert on_topic("报销需要发票原件。", "报销要提供发票吗？")
