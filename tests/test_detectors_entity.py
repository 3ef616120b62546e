"""The entity detector (ragguard.core.detectors.entity): names and roles for which/where/who questions."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import detect, entities, roles


@pytest.mark.parametrize(
    ("a", "b", "question", "flagged"),
    [
        ("The payroll card is issued by Harbor Bank.", "Payroll cards are issued by Crestline Savings Bank.",
         "Which bank issues the payroll card?", True),
        ("Use form HR-07.", "Use form FIN-02.", "Which form do I use?", True),
        ("The Asia IT help desk is based in Singapore.", "The Asia IT help desk is located in Shanghai.",
         "Where is the IT help desk for the Asia region located?", True),
        ("工资卡请到海港银行高新区支行领取。", "工资卡统一在海港银行人民广场支行领取。", "工资卡到哪个网点领取？", True),
        ("在职证明由人力资源部开具。", "在职证明需要到行政部开具。", "在职证明去哪个部门开？", True),
        # Same entity, different wording; or not a question that asks for a name.
        ("Go to the Riverside branch.", "The Riverside branch, 12 Quay Street.", "Which branch do I visit?", False),
        ("Harbor Bank issues it.", "Crestline Bank issues it.", "Tell me about the card.", False),
        ("The payroll card is issued by Harbor Bank.", "Harbor Bank issues payroll cards.", "Which bank?", False),
    ],
)
def test_entity_detector(a: str, b: str, question: str, flagged: bool) -> None:
    found = [f for f in detect(a, b, question) if f.kind == "entity"]
    assert bool(found) is flagged
    if flagged:
        assert found[0].span_a and found[0].span_b and "different names" in found[0].explanation()


@pytest.mark.parametrize(
    ("question", "a", "b"),
    [
        ("Which form do I use?", "Complete form BG-7.", "Claims are filed using form BG-12."),
        ("Where is orientation held?", "At the Denver headquarters on Monday.", "At the Austin office on Monday."),
        ("工资通过哪家银行发放？", "工资统一通过招商银行代发。", "工资由中国工商银行代发。"),
        ("加班应该用哪个系统申请？", "加班申请需要在钉钉上提交审批。", "请通过公司的飞书审批流程提交。"),
        ("报销在哪个系统里提交？", "报销统一在钉钉的审批流程里提交。", "请登录SAP费控系统提交报销申请。"),
    ],
)
def test_entity_codes_places_banks_and_systems(question: str, a: str, b: str) -> None:
    assert [f.kind for f in detect(a, b, question)] == ["entity"]


@pytest.mark.parametrize(
    ("question", "a", "b"),
    [
        ("公司差旅费报销应该填写哪张表？", "请填写表单F-03提交。", "请使用表单F-07提交。"),
        ("今年的公司年会在哪个城市举办？", "今年的年会定在杭州举办。", "今年的年会将在苏州举行。"),
    ],
)
def test_entity_single_letter_codes_and_cities(question: str, a: str, b: str) -> None:
    assert [f.kind for f in detect(a, b, question)] == ["entity"]
    assert detect(a, a.replace("。", "，请按时提交。"), question) == []


def test_entities_names_codes_and_addresses_minus_the_question() -> None:
    found = entities("The payroll card is issued by Harbor Bank, see form HR-07 at payroll.example.com.",
                     "Which bank issues the payroll card?")
    assert found == {"Harbor Bank", "HR-07", "payroll.example.com"}
    assert entities("工资卡请到海港银行高新区支行领取。", "工资卡到哪个网点领取？") == {"海港银行高新区支行"}


def test_roles_are_grouped_by_kind_across_languages() -> None:
    found = roles("Annual leave is approved by your direct manager or the HR business partner.", "Who approves leave?")
    assert found == {"manager": "your direct manager", "partner": "HR business partner"}
    assert roles("出差申请由部门经理审批。", "出差申请需要谁审批？") == {"manager": "部门经理"}
    assert roles("Your manager approves it.", "Which manager approves leave?") == {}  # the question names the kind


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # a word opening a line, a heading, a list item or a quote is a sentence start, not a name
        ("The command is apt-cache depends.\n\nHowever, rdepends lists the reverse.", set()),
        ("Based on the document:\n\nQuestion: which file fails?", set()),
        ("# Section 4.2. Management accounts\nUsage: /etc/pam.d/su", set()),
        ("1. Remove the package.\n2. Purge its files.", set()),
        ("> Install it with apt.", set()),
        # the first person and question words opening a run of capitals are no names
        ("When I run it, it works.", set()),
        ("I've seen it work.", set()),
        # names stay names: mid-sentence, after a label, after a bullet, and several capitalised words
        ("It runs Linux.\n- Debian FAQ says so.", {"Linux", "Debian FAQ"}),
        ("Answer: Synaptic", {"Synaptic"}),
        ("When I asked, Harbor Bank said no.", {"Harbor Bank"}),
        ("1. Fill in form HR-07.", {"HR-07"}),
    ],
)
def test_names_are_not_sentence_starts_of_lines_and_lists(text: str, names: set[str]) -> None:
    assert entities(text) == names
