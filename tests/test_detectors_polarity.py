"""The polarity detector (ragguard.core.detectors.polarity): yes/no stances in English and Chinese."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import detect, lead_stance, polarity, same_lead_pairs, stance

Q_EN = "Do employees without the payroll bank's debit card need an employment certificate?"
Q_ZH = "没有东桥银行借记卡的员工需要开在职证明吗？"


@pytest.mark.parametrize(
    ("a", "b", "question"),
    [
        ("Yes, you need an employment certificate from HR.", "No, you do not need an employment certificate.", Q_EN),
        ("Employees without the card must request a certificate.", "Employees without the card do not need one.", Q_EN),
        ("是的，需要向人事部申请在职证明。", "不是的，不需要开在职证明。", Q_ZH),
        ("需要，请通过HR-07表申请。", "不需要，直接去银行开户即可。", Q_ZH),
        ("可以。", "不可以，必须先申请。", "我可以在家办公吗？"),
        # "No" without a comma, and a question with one content word ("need" is not one).
        ("Yes you need the certificate", "No you don't need the certificate", "Do I need the certificate?"),
        ("You need the certificate.", "You do not need the certificate.", "Do I need the certificate?"),
        ("You need the certificate.", "You don't need the certificate.", "Do I need the certificate?"),
    ],
)
def test_polarity_flags_opposite_answers(a: str, b: str, question: str) -> None:
    kinds = [f.kind for f in detect(a, b, question)]
    assert kinds == ["polarity"]
    # Symmetric: the order of the two answers does not matter.
    assert [f.kind for f in detect(b, a, question)] == ["polarity"]


@pytest.mark.parametrize(
    ("a", "b", "question"),
    [
        ("Yes, employees without the card must request a certificate from HR.",
         "A valid employment certificate is required for employees without an Eastbridge Bank debit card.", Q_EN),
        ("No, you don't need one.", "You do not need a certificate.", Q_EN),
        ("是的，需要。", "需要向人事部申请。", Q_ZH),
        # Not a yes/no question: negation inside an answer is not a stance.
        ("Send it to Finance.", "Do not send it to HR; send it to Finance.", "Where do I send the card number?"),
    ],
)
def test_polarity_leaves_agreeing_answers_alone(a: str, b: str, question: str) -> None:
    assert [f for f in detect(a, b, question) if f.kind == "polarity"] == []


def test_negation_in_the_question_is_not_a_no() -> None:
    question = "Is it not allowed to share passwords?"
    assert stance("It is not allowed to share passwords.", question)[0] == 1
    assert stance("No, it is allowed.", question)[0] == -1


def test_lead_stance_needs_an_explicit_opening() -> None:
    assert lead_stance("Yes. Ask HR.", Q_EN) == 1
    assert lead_stance("No need, just give Finance the card number.", Q_EN) == -1
    assert lead_stance("A deck of cards contains all possibilities.", Q_EN) == 0
    assert lead_stance("不是的，不需要。", "") == -1


def test_confirming_a_negative_question_is_a_no() -> None:
    q = "Aren't contractors eligible for the health plan?"
    assert stance("Correct, the plan covers only full-time staff.", q)[0] == -1
    assert detect("No, contractors are not eligible.", "Correct — contractors can't enroll.", q) == []


@pytest.mark.parametrize(
    ("question", "yes", "no"),
    [
        ("Is the compliance training mandatory for part-time staff?", "Part-time staff must complete it.",
         "The training is optional for part-time staff."),
        ("Do I need manager approval for business class?", "Yes, your manager must approve it.",
         "No approval from your manager is needed for business class."),
        ("医院内可以吸烟吗？", "可以，在指定区域吸烟。", "医院全院区严禁吸烟。"),
        ("跨行转账收手续费吗？", "跨行转账需要收取手续费。", "跨行转账目前免收手续费。"),
    ],
)
def test_polarity_cues_optional_exempt_no_and_chinese_bans(question: str, yes: str, no: str) -> None:
    assert stance(yes, question)[0] == 1 and stance(no, question)[0] == -1


@pytest.mark.parametrize(
    ("question", "answer", "sign"),
    [
        # A negation inside the leading condition restates the question's case; the main clause decides.
        (Q_EN, "If you do not have the payroll debit card, you need an employment certificate.", 1),
        (Q_EN, "If you do not have the payroll debit card, you do not need an employment certificate.", -1),
        (Q_EN, "Unless you have the payroll debit card, an employment certificate is required.", 1),
        # The main clause about something else takes no side (it used to read as a "no").
        (Q_EN, "If you do not have an Eastbridge Bank debit card, you must provide a valid ID document to "
                 "access the Financial Services Branch.", 0),
        ("没有工资卡的员工需要开在职证明吗？", "如果没有工资卡，需要向人事部申请在职证明。", 1),
        ("没有工资卡的员工需要开在职证明吗？", "如果没有工资卡，不需要在职证明。", -1),
    ],
)
def test_a_leading_condition_is_not_the_stance(question: str, answer: str, sign: int) -> None:
    assert stance(answer, question)[0] == sign


def test_a_conditional_answer_does_not_contradict_a_yes() -> None:
    yes = "Yes, employees without the payroll bank's debit card must provide a valid employment certificate."
    other = ("If you do not have an Eastbridge Bank debit card, you must provide a valid ID document to access "
             "the Financial Services Branch.")
    assert not [f for f in detect(yes, other, Q_EN) if f.kind == "polarity"]


@pytest.mark.parametrize(
    ("question", "answer", "sign"),
    [
        ("Does the company charge extra for roaming in the EU?", "Roaming comes free with every company plan.", -1),
        ("Can I bring a guest to the gym?", "Feel free to bring a guest on weekdays.", 1),
        ("Can I use the free-weights area without an induction?", "Members use the free-weights area after an induction.",
         1),
        # What follows "but" is a caveat: this answer says yes.
        ("在图书馆阅览区可以吃东西吗？", "阅览区允许食用少量零食，但请不要携带气味较大的食物。", 1),
        ("Will I get my money back if I return a sale item?", "Sale items are final and are never refunded.", -1),
    ],
)
def test_stance_reads_free_caveats_and_plural_words(question: str, answer: str, sign: int) -> None:
    assert stance(answer, question)[0] == sign


def test_free_is_a_no_only_to_questions_about_paying() -> None:
    assert stance("Staff can use the gym free of charge.", "Can staff use the company gym?")[0] == 1
    assert stance("Staff can use the gym free of charge.", "Do staff pay to use the company gym?")[0] == -1
    assert stance("The second bag is free on economy fares.", "Is the second bag free, or do I pay extra?")[0] == 1


@pytest.mark.parametrize(
    ("question", "answer", "sign"),
    [
        # To "is it free?", an answer that says you pay is a no; "free of charge" a yes.
        ("Is visitor parking free?", "Visitors have to pay for parking; the fee is charged at the exit.", -1),
        ("Is visitor parking free?", "Visitor parking is free of charge.", 1),
        ("访客停车是免费的吗？", "访客停车需要收费，出口处缴费。", -1),
        # "At no extra cost" is part of a yes unless the question asks about paying.
        ("Are routine check-ups covered by the Basic plan?", "Routine check-ups are covered by the Basic plan at no extra cost.",
         1),
        ("Is there a fee for routine check-ups?", "Routine check-ups come at no extra cost.", -1),
        # A first clause that says must / can decides, whatever a later clause denies.
        ("报销需要提供发票原件吗？", "报销必须附上发票原件，复印件不予受理。", 1),
        # An answer that opens by restating the question is read from its answer.
        ("地铁换乘需要重新买票吗？", "地铁换乘需要重新买票吗？不需要，站内换乘无需另行购票。", -1),
    ],
)
def test_stance_paid_free_no_extra_cost_first_clause_and_restated_question(question: str, answer: str, sign: int) -> None:
    assert stance(answer, question)[0] == sign


def test_same_lead_pairs_are_answers_opening_with_the_same_marker() -> None:
    texts = ["Yes, ask HR.", "No, you don't.", "Yes. HR issues it.", "A certificate is needed."]
    # The last one says yes too, but not with an opening marker: it is left to the clustering.
    assert same_lead_pairs(texts, Q_EN) == [(0, 2)]


def test_no_opens_a_no_before_a_pronoun_not_before_a_noun() -> None:
    question = "Do I need the certificate?"
    assert stance("No you don't need it.", question)[0] == -1
    assert stance("No it is not required for the certificate.", question)[0] == -1
    assert lead_stance("No you don't need it.", question) == -1
    assert lead_stance("No receipts are needed.", question) == 0  # "no" as a determiner opens no "no"


@pytest.mark.parametrize(
    ("question", "yes_no"),
    [
        ("没有工资卡的员工是否需要提交在职证明？", True),
        ("能不能结转年假？", True),
        ("年假能不能结转到明年", True),
        ("员工有没有带薪病假？", True),
        ("需不需要提前申请？", True),
        ("在职证明需要提交吗？", True),
        ("年假的规定是什么？", False),
        ("为什么？", False),
        ("工资卡丢了怎么办？", False),
    ],
)
def test_chinese_yes_no_questions_by_shihou_and_a_not_a(question: str, yes_no: bool) -> None:
    assert polarity.is_yes_no_question(question) is yes_no


@pytest.mark.parametrize(
    ("question", "yes", "no"),
    [
        ("没有工资卡的员工是否需要提交在职证明？", "需要。", "不需要。"),
        ("能不能结转年假？", "可以。", "不可以。"),
    ],
)
def test_shihou_and_a_not_a_questions_get_the_polarity_check(question: str, yes: str, no: str) -> None:
    assert polarity.stance(yes, question)[0] == 1
    assert polarity.stance(no, question)[0] == -1
    assert [f.kind for f in detect(yes, no, question)] == ["polarity"]
