"""The quantity detector (ragguard.core.detectors.quantity): numbers per unit in English and Chinese."""

from __future__ import annotations

import pytest

from ragguard.core.detectors import chinese_number, detect, quantities


def _quantity_flagged(a: str, b: str) -> bool:
    return any(f.kind == "quantity" for f in detect(a, b))


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
