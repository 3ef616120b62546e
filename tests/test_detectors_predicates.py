"""The policy-predicate detector (ragguard.core.detectors.predicates): asserted vs denied, for open questions."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import detect, predicate_clash


@pytest.mark.parametrize(
    ("question", "a", "b", "flagged"),
    [
        # A question that is not a yes/no question: one answer asserts a policy predicate, the other denies it.
        ("What happens if my savings balance falls below the minimum?",
         "The bank will charge a monthly maintenance fee when your balance drops below the minimum.",
         "Nothing happens: the bank does not charge any fee when your balance falls below the minimum.", True),
        ("What is the policy on installing personal software on company laptops?",
         "Installing personal software on company laptops is prohibited.",
         "Employees may install personal software on their company laptops.", True),
        ("员工参加外部培训的费用怎么处理？", "外部培训的费用可以全额报销。", "外部培训的费用公司一律不予报销。", True),
        ("商品拆封后申请退货会怎么处理？", "拆封后仍然可以享受七天无理由退货。", "商品一经拆封即不再支持七天无理由退货。", True),
        # Both deny, or the denial is about something else, or a clause is restricted ("only", "unless").
        ("What do contractors have to do about the security course?",
         "Contractors do not need to attend the security course.", "The security course isn't required for contractors.",
         False),
        ("What is the policy on guests?", "Guests are not allowed in the lab unless they sign in.",
         "Guests may enter the lab once they sign in at reception.", False),
        ("What is the policy on parking?", "Staff may park in lot B.", "Smoking is prohibited in all buildings.", False),
        # An opening that restates the question asserts nothing.
        ("When do I have to return my laptop?", "There's no need to return your laptop before your last day.",
         "When do I need to return my laptop when I leave?", False),
    ],
)
def test_predicates_asserted_and_denied_for_open_questions(question: str, a: str, b: str, flagged: bool) -> None:
    kinds = [f.kind for f in detect(a, b, question)]
    assert (kinds == ["polarity"]) is flagged, kinds
    assert [f.kind for f in detect(b, a, question)] == kinds


def test_predicate_clash_quotes_the_asserting_and_the_denying_clause() -> None:
    a = "Installing personal software on company laptops is prohibited."
    b = "Employees may install personal software on their company laptops."
    assert predicate_clash(a, b) == ("laptops is prohibited.", "Employees may install personal software on")
    assert predicate_clash(a, a) is None
