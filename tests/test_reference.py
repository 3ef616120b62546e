"""Reference matching that reads short references (SQuAD-style normalisation, containment, token F1)."""

from __future__ import annotations

import pytest

from ragguard.core.reference import compounds, contains, is_short, match_long, match_short, normalize_tokens, token_f1


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


@pytest.mark.parametrize(
    ("answer", "reference", "label"),
    [
        # Part of a longer name joined by - or _ is another name, by containment and by token F1 alike.
        ("Install xdg-desktop-portal-qtv for that.", "xdg-desktop-portal", "mismatch"),
        ("xdg-desktop-portal-qtv", "xdg-desktop-portal", "mismatch"),
        ("ibus-mozc", "ibus", "mismatch"),
        ("Pass --force-overwrite-dir to dpkg.", "--force-overwrite", "mismatch"),
        ("Pass --force-overwrite to dpkg.", "--force-overwrite", "match"),
        ("Set MY_VAR_NAME first.", "VAR", "mismatch"),
        # A reference open at one end is a prefix or a suffix, and a compound may continue it there.
        ("Install foo-dbgsym.", "-dbgsym", "match"),
        ("Only for linux-image-6.1.0-13-amd64.", "linux-image-", "match"),
        ("Only for linux-image-6.1.0-13-amd64.", "linux-image", "mismatch"),
        # Not compounds: paths, sigils, options and words split by spaces still match.
        ("Edit /etc/apt/sources.list.", "sources.list", "match"),
        ("It reads $QUERY_STRING.", "QUERY_STRING", "match"),
        ("Use extend-diff-ignore.", "--extend-diff-ignore", "match"),
        ("The disk is mounted read only.", "read-only", "match"),
        ("The disk is mounted read-only.", "read only", "match"),
        # A compound that is the reference's own counts by its parts in the F1 ("excluded" ~ "exclude").
        ('The correct answer is: "excluded port 0x800-0x8ff"', "exclude port 0x800-0x8ff", "match"),
        # Inside a web address only an address-like reference is stated.
        ("See https://github.com/x/y/blob/master/config/utils for it.", "config", "mismatch"),
        ("See [https://wiki.example.com/Debian_bug_tracking_System].", "the bug tracking system", "mismatch"),
        ("Browse https://www.debian.org/ for it.", "debian.org", "match"),
        ("It is the config script.", "config", "match"),
    ],
)
def test_a_reference_is_not_found_inside_a_longer_name_or_a_web_address(answer: str, reference: str, label: str) -> None:
    assert match_short(answer, reference).label == label


def test_compounds_are_single_units_unless_they_are_the_references_own() -> None:
    tokens, glued = ["xdg", "desktop", "portal", "qtv", "is", "0x800", "0x8ff"], [False, True, True, True, False, False, True]
    assert compounds(tokens, glued) == ["xdg-desktop-portal-qtv", "is", "0x800-0x8ff"]
    assert compounds(tokens, glued, parts_of=frozenset({"0x800-0x8ff"})) == ["xdg-desktop-portal-qtv", "is", "0x800", "0x8ff"]
    assert compounds(tokens, glued, skip=[True] * 4 + [False] * 3) == ["is", "0x800-0x8ff"]
    assert compounds(tokens, glued, skip=[True, False] + [True] * 5) == ["xdg-desktop-portal-qtv"]


def test_token_f1_decides_near_misses_and_the_best_variant_is_kept() -> None:
    assert token_f1(["debian", "free", "software"], ["free", "software", "guidelines"]) == pytest.approx(2 / 3)
    decided = match_short("Debian free software", ["nothing alike", "free software guidelines"])
    assert (decided.label, decided.rule, decided.reference) == ("match", "token_f1", "free software guidelines")
    assert match_short("Something else entirely", "free software guidelines").label == "mismatch"


@pytest.mark.parametrize(
    ("answer", "reference", "label"),
    [
        ("Chain them with cd build && make so a failure stops it.", "&&", "match"),
        ("&&", "&&", "match"),
        ("Use the `>>` relation.", ">>", "match"),
        ("Use >>> here.", ">>", "mismatch"),  # a longer run of its own symbol
        ("The version sorts before with a `~`.", "~", "match"),
        ("Name it foo~bar.", "~", "mismatch"),  # inside a word
        ("Set x=1 in the file.", "=", "mismatch"),
        ("Pass -a to apt-get.", "-a", "match"),  # "a" is an article: nothing survives normalisation
        ("Steps:\n- install it\n- run it", "-", "mismatch"),  # list markers are not the reference
        ("Separate them with - and nothing else.", "-", "match"),
        ("Use a semicolon.", "&&", "mismatch"),
    ],
)
def test_a_reference_of_symbols_is_read_as_written_standing_alone(answer: str, reference: str, label: str) -> None:
    assert normalize_tokens(reference) == []  # what made such references unmatchable before
    decided = match_short(answer, ["no such words", reference])
    assert decided.label == label
    if label == "match":
        assert (decided.rule, decided.score, decided.reference) == ("verbatim", 1.0, reference)


def test_an_empty_answer_never_matches() -> None:
    assert match_short("", "stable").rule == "empty"
    assert match_short("   ", ["stable"]).label == "mismatch"


def test_short_and_long_references() -> None:
    assert is_short("apt-cache rdepends")
    assert not is_short("Employees without the card must request a certificate from HR with form HR-07.")
    assert not is_short("")
    # Code is short by its words though its punctuation splits it into more tokens than SHORT_TOKENS.
    for code in ("https://kernel-team.pages.debian.net/kernel-handbook/", "apt-get install linux-headers-$(uname -r)",
                 "dh_make -f ../gentoo-0.9.12.tar.gz"):
        assert len(normalize_tokens(code)) > 6 and is_short(code)
    assert not is_short("one two three four five six seven")
    assert is_short("工资卡在职证") and not is_short("工资卡在职证明")  # each CJK character is a word
    assert not is_short("— ... --")  # no word at all


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


def test_restating_the_question_is_not_giving_the_reference() -> None:
    # The question holds the reference's tokens; an answer that copies a longer run of the
    # question around them has only repeated the question.
    question = "Which package provides the lsb_release program?"
    echo = match_short("The package that provides the lsb_release program is coreutils.", ["lsb-release"], question)
    assert echo.label == "mismatch"
    assert match_short("It is lsb-release.", ["lsb-release"], question).label == "match"
    # Said once in its own words and once inside the echo: the first occurrence counts.
    handbook = "Which Debian package contains the Debian Kernel Handbook?"
    both = match_short("debian-kernel-handbook contains the Debian Kernel Handbook.", ["debian-kernel-handbook"], handbook)
    assert (both.label, both.rule) == ("match", "containment")
    # A short answer that is only the echo does not reach the F1 threshold either.
    assert match_short("The deabi package contains the Debian Kernel Handbook.", "debian-kernel-handbook",
                       handbook).label == "mismatch"
    # A one-token reference inside a copied path is not given; on its own it is.
    group = "Which group lets its members work in /usr/src/ without being root?"
    assert match_short("Members can work in /usr/src/ if they are staff.", ["src"], group).label == "mismatch"
    assert match_short("The src group.", ["src"], group).label == "match"
    # Without the question the rule has nothing to compare with: plain containment.
    assert match_short("The package that provides the lsb_release program is coreutils.", "lsb-release").label == "match"


def test_echoed_marks_runs_copied_from_the_question() -> None:
    from ragguard.core.reference import echoed

    answer = normalize_tokens("so the list of packages along with their maintainers is long")
    question = normalize_tokens("which file gives a list of packages along with their maintainers")
    assert echoed(answer, question, 3) == [False] + [True] * 7 + [False, False]
    assert echoed(answer, question, 8) == [False] * 10
    assert echoed(answer, [], 1) == [False] * 10


@pytest.mark.parametrize(
    ("answer", "reference", "label"),
    [
        ("有效期为十三天。", "三十天", "mismatch"),  # the same characters, another number
        ("有效期为三十五天。", "三十天", "mismatch"),
        ("每年享有五十天年假。", "十五天", "mismatch"),
        ("有效期为三十天。", "三十天", "match"),
        ("有效期为30天。", "三十天", "match"),  # a numeral and digits of one value
        ("最多可结转五天。", "5天", "match"),
    ],
)
def test_a_chinese_numeral_is_read_as_its_value(answer: str, reference: str, label: str) -> None:
    assert match_short(answer, reference).label == label


def test_a_shifou_question_is_decided_by_stance_not_by_echoed_words() -> None:
    m = match_short("是的，需要提交。", "需要", "没有工资卡的员工是否需要提交在职证明？")
    assert (m.label, m.rule) == ("match", "polarity")
    assert match_short("不需要。", "需要", "没有工资卡的员工是否需要提交在职证明？").label == "contradicts"
