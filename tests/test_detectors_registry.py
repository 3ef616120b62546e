"""The check table (ragguard.core.detectors.registry): order, gating, detect and detect_all."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import CHECKS, detect, detect_all

Q_EN = "Do employees without the payroll bank's debit card need an employment certificate?"


def test_detect_all_reports_pairs_and_skips_identical_answers() -> None:
    texts = ["Yes, ask HR.", "Yes, ask HR.", "No, you don't need it.", "You get 25 days."]
    found = detect_all(texts, Q_EN)
    assert (0, 1) not in found
    assert {k for k in found if any(f.kind == "polarity" for f in found[k])} == {(0, 2), (1, 2)}


@pytest.mark.parametrize(
    ("a", "b", "question", "kind"),
    [
        ("Personal USB drives cannot be used.", "Using personal USB drives is prohibited.", "Are USB drives allowed?", None),
        ("不可以使用个人U盘。", "公司电脑禁止插入个人U盘。", "公司电脑可以用个人U盘吗？", None),
        ("Yes, up to two days a week.", "No receipts are needed for per diem claims.", "Can I work from home?", None),
        ("可以，每周最多两天。", "不需要，出差补贴无需提供发票。", "可以居家办公吗？", None),
        ("没有工资卡的员工需要提交表格。", "没有工资卡的员工不用提交表格。", "没有工资卡的员工需要提交表格吗？", "polarity"),
        ("病假期间按基本工资的80%发放。", "病假期间按基本工资的百分之六十发放。", "病假工资按多少比例发放？", "quantity"),
        ("工资在每月15日发放。", "工资每月10号发放。", "工资每月几号发放？", "quantity"),
    ],
)
def test_cases_from_the_labelled_set(a: str, b: str, question: str, kind: str | None) -> None:
    kinds = [f.kind for f in detect(a, b, question)]
    assert kinds == ([kind] if kind else [])


@pytest.mark.parametrize(
    ("question", "a", "b", "kind"),
    [
        ("How does VPN access work for contractors?", "Contractors are permitted to use the company VPN after approval.",
         "VPN access is for permanent employees. Contractors are not allowed to connect to the company VPN.", "polarity"),
        ("What is the rule for pets at the hotel?", "Pets are welcome at the hotel.", "Pets are banned throughout the hotel.",
         "polarity"),
        ("周末加班的规定是怎样的？", "周末加班可以领取加班费。", "周末加班不发放加班费，只能安排调休。", "polarity"),
        ("What is the late fee for overdue books?", "The late fee is 20 cents per book per day.",
         "Overdue books are charged at 50 cents per item per day.", "quantity"),
        ("How long is a single ticket valid?", "A single ticket is valid for 90 minutes.", "A single ticket is valid for one hour.",
         "quantity"),
        ("Where can I renew my parking permit online?", "Renew online at permits.marlowcouncil.gov.",
         "Renew online at parking.marlow.gov.", "entity"),
        ("In which city is the staff conference held?", "The staff conference takes place in Lyon.",
         "The staff conference will be held in Rotterdam.", "entity"),
        ("新员工在哪里领取工牌？", "新员工请到A座一楼的安保室领取工牌。", "工牌统一在B座三楼行政部领取。", "entity"),
        ("Who approves annual leave requests?", "Annual leave is approved by your direct manager.",
         "Annual leave is approved by your HR business partner.", "entity"),
        ("出差申请需要谁审批？", "出差申请由部门经理审批。", "出差申请需要报分管副总裁审批。", "entity"),
    ],
)
def test_open_predicates_rates_durations_urls_and_roles(question: str, a: str, b: str, kind: str) -> None:
    assert [f.kind for f in detect(a, b, question)] == [kind]
    assert [f.kind for f in detect(b, a, question)] == [kind]


@pytest.mark.parametrize(
    ("question", "a", "b"),
    [
        ("Who approves annual leave?", "Your line manager approves it.", "Leave needs sign-off from your supervisor."),
        ("How long is a ticket valid?", "A ticket is valid for 60 minutes.", "A ticket is valid for one hour."),
        ("When do I return my laptop?", "There's no need to return the laptop before your last day.",
         "If you need to return a device early, contact IT."),  # a leading condition asserts nothing
    ],
)
def test_same_role_kind_equal_durations_and_conditions_are_not_flagged(question: str, a: str, b: str) -> None:
    assert detect(a, b, question) == []


def test_the_check_table_runs_polarity_then_quantity_then_entity() -> None:
    assert [c.kind for c in CHECKS] == ["polarity", "polarity", "quantity", "entity", "entity"]


def test_names_are_compared_only_when_nothing_else_was_found() -> None:
    q = "Where is the meeting held?"
    assert [f.kind for f in detect("The meeting is in Lyon.", "The meeting is in Rotterdam.", q)] == ["entity"]
    found = detect("The meeting is in Lyon at 9 am.", "The meeting is in Rotterdam at 11 am.", q)
    assert [(f.kind, f.span_a, f.span_b) for f in found] == [("quantity", "9 am.", "11 am.")]


def test_predicates_are_read_only_for_open_questions() -> None:
    a, b = "Yes, dogs are welcome in the office.", "Yes, but dogs are banned from the office kitchen."
    assert detect(a, b, "Can I bring my dog to the office?") == []  # a yes/no question: both say yes
    assert [f.kind for f in detect(a, b, "What is the rule for dogs in the office?")] == ["polarity"]
