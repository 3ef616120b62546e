"""The offline contradiction detectors (polarity, quantity) in English and Chinese."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import chinese_number, detect, detect_all, lead_stance, quantities, stance


def _quantity_flagged(a: str, b: str) -> bool:
    return any(f.kind == "quantity" for f in detect(a, b))


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


@pytest.mark.parametrize(
    ("a", "b", "spans"),
    [
        ("You get 25 days of annual leave.", "You get 30 days of annual leave.", ("25 days", "30 days")),
        ("试用期为三个月。", "试用期为六个月。", ("三个月", "六个月")),
        ("Per diem is £40 for domestic trips.", "Per diem is £70 for domestic trips.", ("£40", "£70")),
        ("Probation lasts three months.", "Probation lasts 6 months.", ("three months", "6 months")),
        ("请在10个工作日内提交。", "请在5个工作日内提交。", ("10个工作日", "5个工作日")),
    ],
)
def test_quantity_flags_different_values_and_quotes_them(a: str, b: str, spans: tuple[str, str]) -> None:
    found = [f for f in detect(a, b) if f.kind == "quantity"]
    assert len(found) == 1
    assert (found[0].span_a, found[0].span_b) == spans
    assert spans[0] in found[0].explanation() and spans[1] in found[0].explanation()
    assert 0 < found[0].score <= 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Probation lasts three months.", "Probation is 3 months long."),
        ("试用期为三个月。", "试用期3个月。"),
        ("You get 25 days.", "Annual leave: 25 working days, plus public holidays on 3 days in May."),
        ("Pay day is 3月25日.", "Salaries arrive on 3月25日."),
    ],
)
def test_quantity_leaves_equal_values_alone(a: str, b: str) -> None:
    assert [f for f in detect(a, b) if f.kind == "quantity"] == []


def test_quantities_parse_units_and_skip_dates() -> None:
    found = quantities("Submit within 10个工作日 or 3 months; due 3月5日; costs ¥200 and 15%.")
    # calendar durations in days; 3月5日 is a date (month 3, day 5), not a duration
    assert found["duration"] == {10.0: "10个工作日", 90.0: "3 months"}
    assert found["month"] == {3.0: "3月5日"} and found["date"] == {305.0: "3月5日"}
    assert found["money"] == {200.0: "¥200"}
    assert found["percent"] == {15.0: "15%"}


@pytest.mark.parametrize(("text", "value"), [("三", 3), ("十", 10), ("十二", 12), ("二十五", 25), ("一百零五", 105),
                                             ("两千", 2000), ("三万五千", 35000), ("abc", None), ("", None)])
def test_chinese_numbers(text: str, value: int | None) -> None:
    assert chinese_number(text) == value


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
    ("a", "b", "flagged"),
    [
        ("Give at least a fortnight's notice.", "Give at least one month's notice.", True),
        ("Refunds take two weeks.", "Refunds take 14 days.", False),
        ("Refunds take four weeks.", "Refunds take one month.", False),  # within 10 %
        ("费用发生后30天内提交。", "费用发生之日起两个月内提交。", True),
        ("使用满三年后可以更换。", "更换周期是5年。", True),
        ("Submit by January 15.", "The deadline is January 31.", True),
        ("Submit by 15 January.", "Submit by January 15th.", False),
        ("体检安排在每年的5月份。", "公司每年9月组织体检。", True),
        ("体检在5月。", "体检在5月20日。", False),  # a month and a date in that month agree
        ("The stipend is $500 per year.", "You get five hundred dollars each year.", False),
        ("The stipend is $500.", "You get two thousand five hundred dollars.", True),
        ("公司2025年起实行新规。", "新规从2025年开始。", False),
    ],
)
def test_quantity_across_units_dates_and_number_words(a: str, b: str, flagged: bool) -> None:
    assert _quantity_flagged(a, b) is flagged


@pytest.mark.parametrize(
    ("a", "b", "flagged"),
    [
        ("Visiting hours end at 8 p.m.", "Visitors must leave by 9:00 PM.", True),
        ("Visiting hours end at 8 p.m.", "Visitors must leave by 8:00 PM.", False),
        ("探视从下午3点开始。", "探视从两点半开始，到五点结束。", True),
        ("单笔限额为5万元。", "单笔最多可以转五万块。", False),
        ("单笔限额为5万元。", "单笔最多可以转三万块。", True),
        ("值机在起飞前45分钟截止。", "起飞前30分钟停止值机。", True),
        ("研究生最多可借20本。", "借阅上限为十五册。", True),
    ],
)
def test_quantity_times_of_day_chinese_multipliers_and_counts(a: str, b: str, flagged: bool) -> None:
    assert _quantity_flagged(a, b) is flagged


def test_question_values_are_conditions_not_answers() -> None:
    q = "How much notice do I need for a vacation longer than a week?"
    a = "For a vacation longer than a week, give a fortnight's notice."
    b = "Vacations exceeding one week need one month's notice."
    assert [f.kind for f in detect(a, b, q)] == ["quantity"]
    assert detect(a, "For a vacation longer than a week, give two weeks' notice.", q) == []


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


@pytest.mark.parametrize(
    ("a", "b", "flagged"),
    [
        ("Each checked bag can weigh up to 23 kg.", "Checked bags may weigh up to 20 kg each.", True),
        ("随身行李不得超过5公斤。", "随身行李重量不超过5 kg。", False),
        ("Staff get 50 GB of storage.", "Staff accounts include 1 TB of storage.", True),
        ("Staff get 1 TB of storage.", "Staff get 1024 GB of storage.", False),
        ("Rentals include 200 km per day.", "Rentals come with 300 km per day included.", True),
        ("The route is 10 miles long.", "The route is 16 km long.", False),  # within 10 %
        ("The 4G network covers the campus.", "The 5G network covers the campus.", False),  # not grams
        # Two values each, one differs: opening and closing times.
        ("We open at 8 am and close at 8 pm.", "Weekend hours start at 7 am; we close at 8 pm.", True),
        ("首班车早上六点发车，末班车为晚上11点。", "首班车发车时间为早上5:30，末班车时间为23:00。", True),
        ("We open at 8:00.", "We open at 8 am.", False),  # a time without a.m./p.m. matches either
        ("We open at 8:00.", "We open at 8 pm.", False),
        ("We open at 8 am.", "We open at 8 pm.", True),
        # "A month" in "£5 a month" is a rate, not a second value.
        ("You can pause for up to three months per year for a fee of £5 a month.",
         "You can pause for a maximum of 90 days a year; a £5 monthly fee applies.", False),
    ],
)
def test_quantity_weights_sizes_distances_and_value_pairs(a: str, b: str, flagged: bool) -> None:
    assert _quantity_flagged(a, b) is flagged


def test_the_day_before_is_not_a_duration() -> None:
    assert quantities("体检前一天晚上十点以后请不要进食。").get("duration") is None
    assert quantities("第三天起收费。").get("duration") is None
    assert quantities("前三天免费。")["duration"] == {3.0: "三天"}


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
