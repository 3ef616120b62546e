"""Reference matching that reads short references (SQuAD-style normalisation, containment, token F1)."""

from __future__ import annotations

import pytest

from ragguard.core.reference import contains, is_short, match_long, match_short, normalize_tokens, token_f1


def test_normalisation_drops_case_articles_and_turns_punctuation_into_spaces() -> None:
    assert normalize_tokens("The /etc/apt/sources.list file!") == ["etc", "apt", "sources", "list", "file"]
    assert normalize_tokens("A golden Anniversary") == ["golden", "anniversary"]
    assert normalize_tokens("东桥银行 HR-07") == ["东", "桥", "银", "行", "hr", "07"]


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("They celebrated their golden anniversary last year.", "golden anniversary"),
        ("Run apt-cache rdepends to see them.", "apt-cache rdepends"),
        ("It lives in /etc/apt/sources.list on every system.", "sources.list"),
        ("The major number of /dev/sda is 8.", "8"),
        ("需要，请到东桥银行开户。", "东桥银行"),
    ],
)
def test_an_answer_that_contains_a_short_reference_matches(answer: str, reference: str) -> None:
    decided = match_short(answer, reference)
    assert (decided.label, decided.rule, decided.score) == ("match", "containment", 1.0)


def test_containment_is_by_whole_tokens_not_substrings() -> None:
    assert match_short("It happened in 2018.", "8").label == "mismatch"
    assert not contains(["aptitude"], ["apt"])


def test_token_f1_decides_near_misses_and_the_best_variant_is_kept() -> None:
    assert token_f1(["debian", "free", "software"], ["free", "software", "guidelines"]) == pytest.approx(2 / 3)
    decided = match_short("Debian free software", ["nothing alike", "free software guidelines"])
    assert (decided.label, decided.rule, decided.reference) == ("match", "token_f1", "free software guidelines")
    assert match_short("Something else entirely", "free software guidelines").label == "mismatch"


def test_an_empty_answer_never_matches() -> None:
    assert match_short("", "stable").rule == "empty"
    assert match_short("   ", ["stable"]).label == "mismatch"


def test_short_and_long_references() -> None:
    assert is_short("apt-cache rdepends")
    assert not is_short("Employees without the card must request a certificate from HR with form HR-07.")
    assert not is_short("")


def test_long_references_use_similarity_and_any_detector_kind() -> None:
    assert match_long(0.9, [], 0.6).label == "match"
    assert match_long(0.5, [], 0.6).label == "mismatch"
    decided = match_long(0.9, ["entity"], 0.6)
    assert (decided.label, decided.rule) == ("contradicts", "detector:entity")


YES_NO = "Has Debian officially released its non-Linux ports?"


def test_a_yes_no_reference_is_decided_by_the_answers_stance() -> None:
    # Containment alone took this "yes" answer for a "no": it mentions "no" later on.
    wrong = "Yes, Debian has released them. There is no waiting list."
    assert match_short(wrong, ["no", "no, not yet"]).label == "match"  # without the question: lexical only
    decided = match_short(wrong, ["no", "no, not yet"], YES_NO)
    assert (decided.label, decided.rule) == ("contradicts", "polarity")
    right = match_short("Debian has not officially released them yet.", ["no"], YES_NO)
    assert (right.label, right.rule) == ("match", "polarity")
    # No stance in the answer: the lexical rules decide.
    assert match_short("The correct answer is no.", ["no"], YES_NO).rule == "containment"
    # A question that is not yes/no, or references on both sides, never use the rule.
    assert match_short("Yes, freedom.", ["freedom"], "Does it mean price or freedom?").rule == "containment"
    assert match_short("Yes.", ["yes", "no"], YES_NO).rule != "polarity"
