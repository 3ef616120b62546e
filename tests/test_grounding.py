"""Claim-level grounding of what an answer adds to the question."""

from __future__ import annotations

import numpy as np
import pytest

from ragguard.core.grounding import added_terms, anchor, content_terms, coverage, ground, overlap, split_claims
from ragguard.core.types import Passage

LEAVE = Passage("hr", "hr#0", "Full-time employees receive 25 working days of paid annual leave. "
                "Requests go through the HR portal at least two weeks ahead.", 0.8)
VPN = Passage("it", "it#0", "Connect with the VPN client at vpn.example.com and your hardware token.", 0.5)
ZH = Passage("zh", "zh#0", "员工每年享有十五天带薪年假。年假需要提前两周通过系统申请。", 0.7)


def test_claims_are_sentences_and_long_sentences_split_at_clauses() -> None:
    assert split_claims("Yes. You need form HR-07. 需要。请提前申请！") == ["Yes.", "You need form HR-07.", "需要。", "请提前申请！"]
    long = ("You need form HR-07, which HR issues within three working days of the request; then take it to the "
            "bank branch on Dock Street and open the salary account there with your passport and the certificate.")
    assert len(split_claims(long)) == 3


def test_content_terms_keep_codes_paths_numbers_and_cjk_bigrams() -> None:
    terms = content_terms("Edit /etc/apt/sources.list and use form HR-07 within 25 days")
    assert {"/etc/apt/sources.list", "hr-07", "25", "day", "form", "edit"} <= terms
    assert "and" not in terms and "within" not in terms
    assert {"年假", "申请"} <= content_terms("年假需要申请")


def test_what_the_question_already_says_is_not_added() -> None:
    assert added_terms("You get 25 days of annual leave.", "How many days of annual leave do I get?") == {"25"}


def test_supported_claims_point_at_their_passage_and_window() -> None:
    g = ground("You get 25 days of paid leave.", "How much leave do I get?", [VPN, LEAVE])
    claim = g.claims[0]
    assert (claim.support, claim.chunk_id) == (1.0, "hr#0")
    assert LEAVE.text[claim.span[0]:claim.span[1]].startswith("Full-time employees receive 25")
    assert g.support == 1.0 and g.unsupported == [] and g.absent == []


def test_an_invented_amount_and_name_are_unsupported_and_absent() -> None:
    g = ground("You get 25 days of paid leave. The fee is £70 and Alice Smith signs it.", "How much leave do I get?",
               [LEAVE, VPN])
    assert g.claims[1].support == 0.0
    assert g.unsupported == ["The fee is £70 and Alice Smith signs it."]
    assert g.absent == ["Alice Smith", "£70"]
    # weighted by added content: 3 supported terms of 3, then 0 of 5 (fee, £70, alice, smith, sign)
    assert g.support == pytest.approx(3 / 8)


def test_a_markdown_answer_names_no_line_opening_word_as_absent() -> None:
    answer = "Based on the document:\n\n# Leave\nUsage: 25 days.\n\nHowever, Alice Smith signs it."
    assert ground(answer, "How much leave do I get?", [LEAVE]).absent == ["Alice Smith"]


def test_chinese_answers_are_grounded_by_bigrams() -> None:
    good = ground("员工每年有十五天带薪年假。", "年假有几天？", [ZH])
    bad = ground("员工每年有三十天病假和高温补贴。", "年假有几天？", [ZH])
    assert good.support > 0.8 > 0.4 > bad.support


def test_a_claim_that_adds_nothing_has_no_weight_and_nothing_to_ground_is_none() -> None:
    g = ground("Yes. You get 25 days.", "Do I get leave?", [LEAVE])
    assert g.claims[0].support is None and g.claims[0].added == 0
    assert ground("", "Q?", [LEAVE]).support is None
    assert ground("You get 25 days.", "Q?", []).support is None


def test_embedding_and_entailment_are_recorded_when_given() -> None:
    class Embedder:
        name = "fixed"

        def embed(self, texts):
            return np.array([[1.0, 0.0] if "25" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    seen = []

    def entails(premise: str, hypothesis: str) -> float:
        seen.append((premise, hypothesis))
        return 0.75

    g = ground("You get 25 days.", "How much leave?", [VPN, LEAVE], embedder=Embedder(), entails=entails)
    assert g.claims[0].embedding == pytest.approx(1.0)
    assert g.entailment == 0.75 and seen[0][1] == "You get 25 days."
    assert seen[0][0].startswith("Full-time employees receive 25")
    assert "absent" in g.to_dict() and g.to_dict()["claims"][0]["chunk_id"] == "hr#0"


# The Debian FAQ's own wording (two sentences about different things in one passage) is the kind of
# text where the answer's words occur somewhere, but only a copied phrase next to the question's terms
# is evidence.
ARCHIVE = Passage("faq", "faq#1", "The unstable distribution is always called sid. Packages enter it first. "
                  "The stable distribution is the released one, and security updates go to stable only.", 0.7)


def test_overlap_counts_copied_bigrams_in_the_best_passage() -> None:
    assert overlap("The unstable distribution is always called sid.", [VPN, ARCHIVE]) == 1.0
    # The same words shuffled share no bigram in order with the passage.
    assert overlap("sid called always is distribution unstable", [ARCHIVE]) == 0.0
    # a one-word answer is read by its word; nothing to read is None
    assert overlap("sid", [ARCHIVE]) == 1.0 and overlap("", [ARCHIVE]) is None and overlap("sid", []) is None
    assert overlap("年假需要提前两周申请", [ZH]) == pytest.approx(8 / 9)  # Chinese by characters: 周申 is new


def test_the_anchor_is_where_the_passages_talk_about_the_question() -> None:
    index, (a, b) = anchor("What is the unstable distribution called?", [VPN, ARCHIVE])
    assert index == 1 and ARCHIVE.text[a:b].startswith("The unstable distribution is always called sid.")
    assert anchor("Which colour is the logo?", [VPN, ARCHIVE]) is None  # no sentence shares a term


def test_anchored_support_reads_the_added_content_next_to_the_question() -> None:
    question = "What is the unstable distribution always called?"
    right = ground("It is called sid.", question, [ARCHIVE])
    # "stable" and "security" are in the passage, but in the sentence about stable, not next to the question's terms
    far = Passage("faq", "faq#2", "The unstable distribution is always called sid. Packages enter it first. "
                  "Mirrors copy it daily. Security updates go to the stable distribution.", 0.7)
    wrong = ground("It is called stable security.", question, [far])
    assert right.anchored == 1.0 and right.anchor == ("faq#1", right.anchor[1])
    assert wrong.claims[0].support == 1.0  # claim support finds every word in the passage...
    assert wrong.anchored == 0.0  # ...but none where the passage answers the question
    echo = ground("The unstable distribution is always called.", question, [ARCHIVE])
    assert echo.anchored == 0.0  # adds nothing: answers nothing
    assert ground("It is sid.", "Which colour is the logo?", [ARCHIVE]).anchored is None
    record = right.to_dict()
    assert record["anchored"] == 1.0 and record["anchor"]["chunk_id"] == "faq#1" and record["overlap"] is not None


def test_coverage_is_the_share_of_the_question_the_best_retrieved_sentence_holds() -> None:
    # unstable, distribution, called: all three in one sentence of ARCHIVE
    assert coverage("What is the unstable distribution called?", [VPN, ARCHIVE]) == 1.0
    # "logo" and "colour" appear nowhere, "distribution" does: one term of three
    assert coverage("Which colour is the distribution logo?", [ARCHIVE]) == pytest.approx(1 / 3)
    assert coverage("Which colour is the logo?", [VPN, ARCHIVE]) == 0.0  # no sentence shares a term
    assert coverage("What is it?", [ARCHIVE]) is None  # nothing asked: no content terms
    assert coverage("What is the unstable distribution called?", []) is None
    # the reading is the retrieval's, not the answer's: every answer to one question gets the same
    question = "What is the unstable distribution always called?"
    readings = {ground(a, question, [ARCHIVE]).coverage for a in ("It is called sid.", "It is stable.", "No idea.")}
    assert readings == {1.0} and ground("sid", question, [ARCHIVE]).to_dict()["coverage"] == 1.0
    assert ground("It is sid.", question, [ARCHIVE], readings=False).coverage is None


def test_key_hits_count_what_the_answer_adds_in_the_questions_key_sentence() -> None:
    question = "Which release is the unstable distribution called?"
    passage = Passage("faq", "faq#3", "Packages enter the archive daily. The unstable distribution is always called sid, "
                      "after the boy next door. Mirrors copy it daily.", 0.7)
    short = ground("It is called sid.", question, [passage])
    long = ground("The boy next door gave his name to it: sid. Packages enter it daily from many uploads, and mirrors "
                  "copy the archive around the world.", question, [passage])
    assert short.key_hits == 1 and long.key_hits == 4  # sid; boy, door, sid, next
    # the long answer's share in the anchor window is diluted by what it adds from other sentences; its count is not
    assert long.anchored < short.anchored
    wrong = ground("It is called stable.", question, [passage])
    assert wrong.key_hits == 0 and wrong.to_dict()["key_hits"] == 0
    assert ground("It is sid.", "Which colour is the logo?", [passage]).key_hits is None  # no key sentence
    assert ground("It is sid.", "Which colour is the logo?", [passage]).to_dict()["key"] is None
    assert ground("It is sid.", question, [passage], readings=False).key_hits is None


def test_the_key_sentence_is_chosen_by_the_rarity_of_the_question_terms_it_holds() -> None:
    question = "Which package provides the flatpak portal on a Debian desktop?"
    passages = [
        Passage("ref", "ref#1", "Every Debian package for the desktop is built by the Debian team. Debian desktop "
                "packages are tested. The Debian desktop package set is large.", 0.8),
        Passage("ref", "ref#2", "Sandboxed apps talk to the flatpak portal: install pipewire for it.", 0.6),
    ]
    # Each of the first three sentences holds three of the question's terms (debian, package, desktop), which are
    # common among the four retrieved sentences; the last holds two (flatpak, portal) that no other sentence has.
    # Weighted by rarity (log((1 + 4) / (1 + df)) + 1 each: 3 x 1.22 = 3.67 against 2 x 1.92 = 3.83), the last is
    # the key sentence; counted, the first would be.
    right = ground("It is pipewire.", question, passages)
    assert right.key_hits == 1
    where = passages[1].text.index("Sandboxed")
    assert right.to_dict()["key"] == {"chunk_id": "ref#2", "span": [where, len(passages[1].text)]}
    assert right.to_dict()["anchor"]["chunk_id"] == "ref#1"  # the anchor window keeps the count-chosen sentence
    assert right.coverage == pytest.approx(3 / 6)  # coverage still reads the sentence holding most of the terms
    assert ground("The Debian team builds it.", question, passages).key_hits == 0
    # Equal weights: the higher-ranked passage, then the earlier sentence.
    tie = [Passage("a", "a#1", "The portal is xdg.", 0.9), Passage("b", "b#1", "The portal is kde.", 0.5)]
    assert ground("xdg", "Which portal?", tie).key_hits == 1 and ground("kde", "Which portal?", tie).key_hits == 0


def test_key_hits_read_chinese_by_character_bigrams() -> None:
    question = "年假需要提前多久申请？"
    right, other, wrong = (ground(a, question, [ZH]) for a in ("需要提前两周。", "十五天。", "需要提前三个月。"))
    assert right.key_hits == 2  # 两周, 前两: in the sentence about applying ahead
    # "fifteen days" is in the anchor window (the sentence before) but not in the key sentence
    assert other.anchored == 1.0 and other.key_hits == 0
    assert wrong.key_hits == 0


def test_a_verb_before_a_chinese_name_is_not_part_of_it() -> None:
    passages = [Passage("hr", "hr#1", "人力资源部在三个工作日内出具在职证明。", 1.0)]
    assert ground("请联系人力资源部办理。", "在职证明怎么开？", passages).absent == []
    assert ground("请联系行政部办理。", "在职证明怎么开？", passages).absent == ["行政部"]
    assert ground("你是用来振上走的工资卡", "工资卡丢了怎么办？", passages).absent == []  # 用来 is "used to"


def test_a_chinese_numeral_before_a_unit_is_grounded_by_its_value() -> None:
    """二十五天 is 25天 (as reference matching reads it); 三十天 is not; numeral characters in words stay."""
    passage = [Passage("hr", "hr#0", "全职员工每年享有25天年假。", 1.0)]
    question = "我每年有多少天年假？"
    assert ground("二十五天。", question, passage).support == 1.0
    assert ground("二十五天。", question, passage).unsupported == []
    assert ground("三十天。", question, passage).support == 0.5  # 天 is there, 30 is not
    assert ground("兩個月。", question, [Passage("hr", "hr#0", "试用期为2个月。", 1.0)]).support == 1.0  # Traditional
    assert {"一些", "十分"} <= content_terms("一些员工十分满意")
