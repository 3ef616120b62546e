"""Traditional Chinese read as Simplified (ragguard.core.script) by the reference rules and the grounding."""

from __future__ import annotations

import pytest

from ragguard.core import script
from ragguard.core.grounding import content_terms
from ragguard.core.reference import match_short


def test_simplified_maps_one_character_for_one() -> None:
    text = "沒有工資卡的員工需要提交在職證明嗎？ HR-07 form"
    folded = script.simplified(text)
    assert folded == "没有工资卡的员工需要提交在职证明吗？ HR-07 form"
    assert len(folded) == len(text)
    assert script.simplified("Only English here.") == "Only English here."


def test_a_traditional_answer_matches_a_simplified_reference() -> None:
    assert match_short("試用期為三個月。", "三个月").label == "match"
    assert match_short("試用期為六個月。", "三个月").label == "mismatch"


def test_traditional_and_simplified_share_grounding_terms() -> None:
    assert content_terms("招商銀行代發工資") == content_terms("招商银行代发工资")


def test_without_the_table_text_is_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "_table", lambda: {})
    assert script.simplified("三個月") == "三個月"
    assert not script.has_traditional_table()
