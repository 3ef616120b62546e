"""Offline contradiction detectors for English and Chinese answers (pure Python).

Embeddings place "Yes, you need the certificate" next to "No, you do not
need it" (cosine 0.81 with all-MiniLM-L6-v2) and "25 days" next to "30 days"
(0.94), so agreement cannot be decided by embeddings alone. These detectors
look at what the answers commit to:

* ``polarity``: the answer's stance on a yes/no question (a leading
  yes/no, 是/不是, 需要/不需要/无需 ...; otherwise negation cues in the first
  sentence that the question itself does not contain). Two answers with
  opposite stances contradict. For other questions, one answer asserting a
  policy predicate (charge, allow, require, cover; 收费, 可以, 需要, 报销 ...)
  that the other denies about the same thing contradicts too.
* ``quantity``: numbers attached to the same unit (days, weeks, months,
  years, hours, money, percent, weights, distances, data sizes, dates and
  times of day; Arabic, English or Chinese numerals, 三个月 vs 六个月). Two
  answers that give disjoint values for the same unit contradict, and so do
  two that give equally many values of which one has no match.
* ``entity``: for which/where/who questions (哪/谁/什么), the named things
  each answer commits to (capitalised names and form codes in English;
  banks, branches, departments, forms, 《titles》, cities and places in
  Chinese; web addresses), minus those the question names. Two answers with
  disjoint names contradict; for a who question, so do two that name roles of
  different kinds only (line manager vs HR business partner).

Each finding quotes the spans that conflict, so a reader sees why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Finding", "entities", "stance", "lead_stance", "quantities", "detect", "detect_all", "chinese_number", "same_lead_pairs", "first_sentence",
           "predicate_clash", "roles"]


@dataclass(frozen=True)
class Finding:
    """A contradiction between two texts, with the spans that conflict."""

    kind: str
    score: float
    span_a: str
    span_b: str

    def explanation(self) -> str:
        what = {"polarity": "opposite answers", "quantity": "different values",
                "entity": "different names", "nli": f"the NLI model reads a contradiction (p={self.score:.2f})"
                }.get(self.kind, self.kind)
        return f'{what}: "{self.span_a}" vs "{self.span_b}"'


# ----------------------------------------------------------------- polarity
_EN_YES = re.compile(r"^\s*(yes|yeah|yep|correct|that's right|that is right|absolutely|sure)\b", re.I)
# "No" answers only when punctuation follows it ("No receipts are needed" is not a "no").
_EN_NO = re.compile(r"^\s*(no need|(?:no|nope|not at all|incorrect)(?=\s*(?:[,.!;:\u2014-]|$)))", re.I)
_EN_NEG = re.compile(
    r"\b(not|never|cannot|can't|don't|doesn't|didn't|isn't|aren't|won't|wouldn't|shouldn't|needn't|"
    r"no need|not required|not necessary|unnecessary|no longer|neither|nor|prohibited|forbidden|not allowed|"
    r"not permitted|banned|unable|optional|voluntary|exempt|exempted|waived|excluded|excludes|exclude|"
    r"no(?!\s*[,.!;:\u2014-]))\b|n't\b",
    re.I,
)
# "Free" says no to a question about paying ("Does it cost extra?" - "It comes free"), not to others
# ("Can staff use the gym?" - "Staff can use it free of charge" is a yes).
_EN_FREE = re.compile(r"(?<!feel )(?<![\w-])free(?![\w-])", re.I)
_COST_QUESTION = re.compile(r"\b(?:charges?|charged|pay|paid|costs?|fees?|price|extra)\b|收费|付费|费用|多少钱", re.I)
_FREE_QUESTION = re.compile(r"(?<![\w-])free(?![\w-])|免费", re.I)
# "At no extra cost" and "免费" describe the answer's yes unless the question asks about paying.
_NO_COST = re.compile(r"\b(?:at\s+)?no\s+(?:extra\s+|additional\s+|further\s+)?(?:cost|charge|fee)s?\b|\bfree of charge\b"
                      r"|\bwithout (?:any )?(?:extra )?charge\b|免费|不收费|无需付费|无须付费|不另收费", re.I)
# To "Is it free?", an answer that says you pay says no.
_PAID = re.compile(r"\b(?:(?:have|has|need|needs|must) to pay|pay for|is charged|are charged|will be charged|"
                   r"charges? (?:a|an)\b|(?:a|an) [a-z-]+ fee|a fee)\b|需要付费|需付费|收费|要交|需缴纳|自费", re.I)
# To "Do I need to ...?", a first clause that says must / can (and nothing negative) is a yes even
# when a later clause denies something else ("报销必须附上发票原件，复印件不予受理").
_MODAL = re.compile(r"\b(?:must|need to|needs to|have to|has to|required|can|may|allowed|permitted)\b"
                    r"|必须|需要|须|可以|能够|允许", re.I)


def _answer_part(text: str) -> str:
    """The answer without an opening sentence that restates the question ("地铁换乘需要重新买票吗？不需要...")."""
    first = first_sentence(text)
    if first.endswith(("?", "？")) and len(first) < len(text.strip()):
        return text.strip()[len(first):].strip()
    return text.strip()
# Chinese: negative forms are matched first and masked before positive forms,
# because 需要 is inside 不需要 and 是 inside 不是.
_CONFIRM = re.compile(r"(correct|that's right|that is right)$", re.I)
_NEGATIVE_QUESTION = re.compile(
    r"^\s*(?:aren't|isn't|don't|doesn't|didn't|can't|won't|wasn't|weren't|shouldn't|haven't|hasn't|mustn't)\b", re.I
)
_ZH_NO_LEAD = re.compile(r"^\s*(不是|不对|不需要|不用|无需|不必|不能|不可以|不行|不允许|没有|否|不)")
_ZH_YES_LEAD = re.compile(r"^\s*(是的|是|对的|对|需要|要|可以|能|必须|有的|有|应该)")
_ZH_NO_EXPLICIT = re.compile(r"^\s*(不是的|不是|不对)")
_ZH_YES_EXPLICIT = re.compile(r"^\s*(是的|对的)")
_ZH_NEG = re.compile(r"(不是|不需要|不用|无需|无须|不必|不能|不可以|不可|不得|不允许|禁止|严禁|无法|没有|没|未|(?<!避)免|不)")


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (., !, ?, 。, ！, ？, ;)."""
    parts = re.split(r"(?<=[.!?。！？；;\n])", text.strip(), maxsplit=1)
    return parts[0].strip() if parts else ""


def stance(answer: str, question: str = "") -> tuple[int, str]:
    """The answer's yes/no stance: ``(+1 | -1 | 0, the span that decided it)``.

    A leading yes/no marker decides. For a yes/no question without such a
    marker, the first sentence must be about the question (two shared
    content words or Chinese bigrams); then a negation cue in it makes it a
    "no" (cues the
    question itself contains are ignored: "Is it not allowed?" answered "It
    is not allowed" is not a "no"), and its absence a "yes". A first clause
    that says must/can with no negation is a "yes" whatever later clauses deny;
    "free" is a "no" to a question about paying, "you have to pay" a "no" to
    "is it free?", and "at no extra cost" no negation unless the question asks
    about paying. An opening sentence that restates the question is skipped.
    For other questions only explicit markers (yes/no, 是的/不是) count, else
    ``(0, "")``.
    """
    text = _answer_part(answer)
    if not text:
        return 0, ""
    yes_no = _is_yes_no_question(question)
    # Explicit markers always count; the weaker Chinese leads (需要, 可以, 有 ...)
    # and negation cues only count when the question asks for a yes or a no.
    leads = [(_EN_NO, -1), (_EN_YES, 1), (_ZH_NO_LEAD, -1), (_ZH_YES_LEAD, 1)] if yes_no else [
        (_EN_NO, -1), (_EN_YES, 1), (_ZH_NO_EXPLICIT, -1), (_ZH_YES_EXPLICIT, 1)]
    first = first_sentence(text)
    q_neg = {m.group(0).lower() for p in (_EN_NEG, _EN_FREE) for m in p.finditer(question)}
    q_neg |= {m.group(0) for m in _ZH_NEG.finditer(question)}
    for pattern, sign in leads:
        m = pattern.match(text)
        if m and m.group(1).lower() not in q_neg:
            if not _lead_fits(m.group(1), question):
                return 0, ""  # the opening verb answers another question
            if _CONFIRM.match(m.group(1)) and _NEGATIVE_QUESTION.match(question):
                sign = -1  # "Aren't contractors eligible?" - "Correct, they can't enroll" is a "no"
            return sign, _context(text, m.start(), m.end())
    if not yes_no:
        return 0, ""
    first = _main_clause(first)
    if not _on_topic(first, question):
        return 0, ""  # an answer about something else takes no side
    free_q = bool(_FREE_QUESTION.search(question))
    cost_q = bool(_COST_QUESTION.search(question)) and not free_q
    if not cost_q:
        first = _masked(_NO_COST, first)
        if free_q and (m := _PAID.search(first)):
            return -1, _context(first, m.start(), m.end())
    cues = (_EN_NEG, _ZH_NEG, _EN_FREE) if cost_q else (_EN_NEG, _ZH_NEG)
    opening = re.split(r"[,，;；]", first, maxsplit=1)[0]
    modal = _MODAL.search(opening)
    if modal and _on_topic(opening, question) and _negation(opening, cues, q_neg) is None:
        return 1, _context(opening, modal.start(), modal.end())
    m = _negation(first, cues, q_neg)
    if m:
        return -1, _context(first, m.start(), m.end())
    return 1, _context(first, 0, min(len(first), 40))


def _negation(text: str, cues: Sequence[re.Pattern[str]], q_neg: set[str]) -> re.Match[str] | None:
    """The first negation cue in ``text`` that the question does not itself contain."""
    for pattern in cues:
        for m in pattern.finditer(text):
            if (m.group(0) if pattern is _ZH_NEG else m.group(0).lower()) not in q_neg:
                return m
    return None


def _masked(pattern: re.Pattern[str], text: str) -> str:
    """``text`` with ``pattern``'s matches blanked out (same length, so positions still fit)."""
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


# ----------------------------------------------------------------- predicate polarity
# Answers to a question that is not a yes/no question can still take opposite sides: "What happens
# if my balance falls below the minimum?" - "we charge a monthly fee" / "we do not charge any fee".
# Each family is a policy predicate with the words that assert it and those that deny it; a pair
# is flagged when one answer asserts and the other denies the same family in a clause about the
# same thing (two shared content words), and neither clause is restricted or conditional ("only
# members may ..." / "non-members cannot ..." say the same thing).
_PREDICATES: tuple[tuple[str, str, str], ...] = (
    # family, asserting forms, denying forms (denials are matched first and masked)
    ("charge",
     r"\b(?:charges?|charged|charging)\b|\bfees? (?:is|are) (?:charged|payable)|收费|收取|自付|自费|自行承担|需付费",
     r"\b(?:does not|doesn't|do not|don't|will not|won't|never|not|no)\s+(?:be\s+)?(?:charge|charged|charges)\b"
     r"|(?:\bnot|n't)\s+(?:be\s+)?charged\b|\bfree of charge\b|\bno (?:extra |additional )?(?:fee|charge)s?\b|\bat no (?:extra |additional )?cost\b"
     r"|免费|不收费|不收取|免收|无需付费|无须付费|无需自付|无须自付|不用付"),
    ("allow",
     r"\b(?:may|allowed|permitted|welcome)\b|可以|允许|支持",
     r"\b(?:prohibited|forbidden|banned|not (?:allowed|permitted)|may not|must not|mustn't)\b"
     r"|(?:\bnot|n't)\s+(?:be\s+)?(?:allowed|permitted)\b|不可以|不允许|禁止|严禁|不得|不支持|不再支持"),
    ("require",
     r"\b(?:must|required|requires|require|mandatory|compulsory|need to|needs to|have to|has to)\b|必须|需要|要求",
     r"\b(?:not required|no need|needn't|don't need|do not need|doesn't need|does not need|don't have to|"
     r"do not have to|doesn't have to|does not have to|optional|exempt|exempted|not (?:necessary|mandatory)|voluntary)\b"
     r"|(?:\bnot|n't|\bnever)\s+(?:be\s+|been\s+)?(?:required|necessary|mandatory|needed)\b|不需要|无需|无须|不必|不用|不要求|免于"),
    ("entitle",
     r"\b(?:entitled|eligible|qualify|qualifies)\b|享受|享有|有资格|领取|发放",
     r"\b(?:not entitled|not eligible|ineligible|no longer eligible|(?:does not|doesn't|do not|don't) qualify)\b"
     r"|(?:\bnot|n't)\s+(?:be\s+)?(?:entitled|eligible)\b|不享受|不享有|没有资格|无资格|无权|不能领取|不发放|不予发放"),
    ("cover",
     r"\b(?:covered|covers|included|includes|reimbursed|reimburses|reimbursable|refunded|refundable)\b"
     r"|报销|包括|包含|赔付|退款",
     r"\b(?:not covered|doesn't cover|does not cover|excluded|excludes|not included|not reimbursed|not reimbursable|"
     r"non-refundable|not refundable|no refunds?)\b|(?:\bnot|n't)\s+(?:be\s+)?(?:covered|included|reimbursed|refunded)\b|不予报销|不能报销|不报销|不包括|不包含|不赔付|不予赔付|不退款|不予退款"),
)
_PREDICATE_RES = tuple((family, re.compile(pos, re.I), re.compile(neg, re.I)) for family, pos, neg in _PREDICATES)
_PREDICATE_WORDS = re.compile("|".join(form for _, pos, neg in _PREDICATES for form in (pos, neg)), re.I)
_RESTRICTED = re.compile(r"\b(?:only|just|except|unless|non-|provided|as long as|without)\b|仅|只有|只能|只要|除|否则", re.I)
_LEADING_CONDITION = re.compile(r"^(?:if|when|whenever|in case|如果|若|假如|要是|一旦)", re.I)
_CLAUSE = re.compile(r"[,，:：]|\s[\u2014\u2013-]\s|\bbut\b|但")


def _clause_signs(clause: str) -> dict[str, tuple[int, str]]:
    """``{family: (+1 | -1, span)}`` for the predicates a clause plainly asserts or denies."""
    signs: dict[str, tuple[int, str]] = {}
    for family, pos, neg in _PREDICATE_RES:
        denied = list(neg.finditer(clause))
        asserted = list(pos.finditer(_masked(neg, clause)))
        if denied and not asserted:
            signs[family] = (-1, _context(clause, denied[0].start(), denied[0].end()))
        elif asserted and not denied:
            signs[family] = (1, _context(clause, asserted[0].start(), asserted[0].end()))
    return signs


def _predicate_clauses(answer: str) -> list[tuple[dict[str, tuple[int, str]], set[str]]]:
    """The signed predicates of each plain clause of the answer, with the words of its sentence."""
    out = []
    for sentence in re.split(r"(?<=[.!?。！？；;])\s*", _answer_part(answer)):
        if sentence.endswith(("?", "？")):
            continue  # a question asserts nothing
        words = None
        for clause in _CLAUSE.split(sentence):
            clause = clause.strip()
            plain = clause and not _RESTRICTED.search(clause) and not _LEADING_CONDITION.match(clause)
            signs = _clause_signs(clause) if plain else {}
            if signs:
                if words is None:
                    rest = _PREDICATE_WORDS.sub(" ", sentence)
                    words = {w[:5] for w in _content_words(rest)} | _cjk_bigrams(rest)
                out.append((signs, words))
    return out


def predicate_clash(a: str, b: str) -> tuple[str, str] | None:
    """The spans where one answer asserts a policy predicate that the other denies, about the same
    thing (two shared content words or Chinese bigrams besides the predicate), or None."""
    return _clash(_predicate_clauses(a), _predicate_clauses(b))


def _clash(
    clauses_a: list[tuple[dict[str, tuple[int, str]], set[str]]], clauses_b: list[tuple[dict[str, tuple[int, str]], set[str]]]
) -> tuple[str, str] | None:
    for signs_a, words_a in clauses_a:
        for signs_b, words_b in clauses_b:
            for family, (sign, span_a) in signs_a.items():
                other = signs_b.get(family)
                if other and other[0] == -sign and len(words_a & words_b) >= 2:
                    return span_a, other[1]
    return None


# A leading condition ("If you do not have the card, ...", "如果没有工资卡，...") restates a case of
# the question; a negation inside it is not the answer's stance, so only the main clause is read.
_CONDITION = re.compile(r"^\s*(?:if|unless|when|whenever|in case|as long as|provided that|如果|若|假如|要是|除非|只要|如(?![何此下今同]))"
                        r"[^,，;；:：]{0,120}[,，;；:：]\s*(?=\S)", re.I)


_CAVEAT = re.compile(r"[,，;；]\s*(?:but|however|although|但是|但|不过|然而|只是)", re.I)


def _main_clause(sentence: str) -> str:
    """``sentence`` without a leading conditional clause, up to a caveat ("..., but ...")."""
    m = _CONDITION.match(sentence)
    sentence = sentence[m.end():] if m else sentence
    return _CAVEAT.split(sentence, maxsplit=1)[0]


_STOP = frozenset(
    "the a an and or of to in on for with from at by is are was were be been do does did can could should must "
    "will would may might have has had need needs i you we they he she it my your our their this that these those "
    "what which who when where how why if not no yes there any some".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]{2,}", text.lower()) if w not in _STOP}


def _cjk_bigrams(text: str) -> set[str]:
    chars = re.findall(r"[\u4e00-\u9fff]", text)
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}


def _stem(word: str) -> str:
    """A crude English stem, enough to match "items" with "item" and "refunded" with "refund"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _on_topic(sentence: str, question: str) -> bool:
    """Does the sentence talk about the question (two shared content words or Chinese bigrams)?"""
    words = {_stem(w) for w in _content_words(sentence)} & {_stem(w) for w in _content_words(question)}
    return len(words | (_cjk_bigrams(sentence) & _cjk_bigrams(question))) >= 2


# A Chinese answer that opens with a verb echoes the question's verb: 可以…吗 is answered
# 可以/不可以, not 不需要 (which answers another question). Generic markers answer any question.
_ZH_GENERIC_LEADS = frozenset({"是的", "是", "不是", "对", "对的", "不对", "否", "不", "不行"})
_ZH_LEAD_FAMILIES = (
    (("需要", "不需要", "不用", "无需", "不必", "要", "必须"), ("需要", "要", "需", "必须", "用")),
    (("可以", "不可以", "能", "不能", "不允许"), ("可以", "能", "可否", "允许", "可不可以")),
    (("有", "有的", "没有"), ("有",)),
    (("应该",), ("应该", "应")),
)


def _lead_fits(lead: str, question: str) -> bool:
    if lead in _ZH_GENERIC_LEADS or not re.search(r"[\u4e00-\u9fff]", question):
        return True
    for leads, question_words in _ZH_LEAD_FAMILIES:
        if lead in leads:
            return any(w in question for w in question_words)
    return True


def lead_stance(answer: str, question: str = "") -> int:
    """+1 or -1 when the answer *opens* with a yes/no marker, else 0.

    Stricter than :func:`stance`: only explicit openings count, so an
    off-topic answer is never taken for a "yes".
    """
    text = _answer_part(answer)
    yes_no = _is_yes_no_question(question)
    leads = [(_EN_NO, -1), (_EN_YES, 1), (_ZH_NO_LEAD, -1), (_ZH_YES_LEAD, 1)] if yes_no else [
        (_EN_NO, -1), (_EN_YES, 1), (_ZH_NO_EXPLICIT, -1), (_ZH_YES_EXPLICIT, 1)]
    return stance(text, question)[0] if any(p.match(text) for p, _ in leads) else 0


def same_lead_pairs(texts: Sequence[str], question: str = "") -> list[tuple[int, int]]:
    """Pairs ``i < j`` of answers that open with the same yes/no marker."""
    leads = [lead_stance(t, question) for t in texts]
    return [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if leads[i] and leads[i] == leads[j]]


_YES_NO_EN = re.compile(r"^\s*(do|does|did|is|are|was|were|can|could|should|must|will|would|may|have|has|need)\b", re.I)
_YES_NO_ZH = re.compile(r"(吗|么|是否|能否|可否|要不要|需不需要|是不是|可不可以|有没有)\s*[？?]?\s*$")


def _is_yes_no_question(question: str) -> bool:
    q = question.strip()
    return bool(_YES_NO_EN.match(q) or _YES_NO_ZH.search(q))


def _context(text: str, start: int, end: int, width: int = 30) -> str:
    """The matched cue with a few words around it, cut at word boundaries, on one line."""
    lo = max(0, start - 12)
    hi = min(len(text), end + width)
    if lo > 0 and text[lo - 1] != " " and " " in text[lo:start]:
        lo = text.index(" ", lo) + 1
    if hi < len(text) and text[hi] != " " and " " in text[end:hi]:
        hi = text.rindex(" ", end, hi)
    return " ".join(text[lo:hi].split())


# ----------------------------------------------------------------- quantity
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}


def chinese_number(text: str) -> int | None:
    """Convert a Chinese numeral (三, 十二, 二十五, 一百零五, 两千) to an int."""
    if not text or any(ch not in _ZH_DIGITS and ch not in _ZH_UNITS for ch in text):
        return None
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        else:
            unit = _ZH_UNITS[ch]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
    value = total + section + (digit or 0)
    return value if value or any(ch in text for ch in "零〇") else None  # a bare 万 is no number


_UNIT_WORDS = {
    "working day": "day", "working days": "day", "business day": "day", "business days": "day",
    "day": "day", "days": "day", "天": "day", "日": "day",
    "个工作日": "day", "工作日": "day", "fortnight": "fortnight", "fortnights": "fortnight",
    "week": "week", "weeks": "week", "周": "week", "个星期": "week", "星期": "week",
    "month": "month", "months": "month", "个月": "month", "月": "month",
    "year": "year", "years": "year", "年": "year",
    "hour": "hour", "hours": "hour", "小时": "hour", "个小时": "hour", "个钟头": "hour",
    "minute": "minute", "minutes": "minute", "mins": "minute", "分钟": "minute",
    "cent": "cent", "cents": "cent", "pence": "cent", "分钱": "cent",
    "本": "book", "册": "book", "books": "book", "次": "times", "times": "times", "attempts": "times",
    "%": "percent", "percent": "percent", "per cent": "percent",
    "元": "money", "块": "money", "pounds": "money", "pound": "money", "dollars": "money", "euros": "money",
    "kg": "kg", "kgs": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg", "公斤": "kg", "千克": "kg",
    "gram": "g", "grams": "g", "克": "g", "斤": "jin", "lb": "lb", "lbs": "lb",
    "km": "km", "kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km", "公里": "km",
    "千米": "km", "mile": "mile", "miles": "mile",
    "mb": "mb", "gb": "gb", "tb": "tb",
}
_EN_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a": 1, "an": 1,
    "thirteen": 13, "fourteen": 14, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "thousand": 1000,
}
# Calendar durations compare in days, whatever unit they were written in (a fortnight = 14 days,
# a month = 30); values within 10 % count as the same ("4 weeks" and "one month").
_DAYS_PER = {"day": 1.0, "week": 7.0, "fortnight": 14.0, "month": 30.0, "year": 365.0}
# Weights, distances and data sizes compare in one unit each, whatever unit they were written in.
_MEASURES = {"kg": ("weight", 1.0), "g": ("weight", 0.001), "jin": ("weight", 0.5), "lb": ("weight", 0.4536),
             "km": ("distance", 1.0), "mile": ("distance", 1.609), "mb": ("data", 1 / 1024), "gb": ("data", 1.0),
             "tb": ("data", 1024.0), "hour": ("minutes", 60.0), "minute": ("minutes", 1.0),
             "cent": ("money", 0.01)}
_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTH_ABBR = {m[:3]: i for m, i in _MONTHS.items()}
_EN_DATE = re.compile(
    r"\b(?:(?P<m1>January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?\s+(?P<d1>\d{1,2})(?:st|nd|rd|th)?\b"
    r"|(?P<d2>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>January|February|March|April|May|June|July|August|"
    r"September|October|November|December)\b"
    r"|(?<![A-Z.!?]\s)(?<!^)(?P<m3>January|February|March|April|June|July|August|September|October|November|"
    r"December)\b)"
)
_ZH_MONTH = re.compile(r"(?<![个\d零〇一二两三四五六七八九十])(\d{1,2}|十[一二]?|[一二三四五六七八九])\s*月(?!份?[内以])"
                       r"(?:份)?(?:\s*(\d{1,2}|[一二三四五六七八九十]{1,3})\s*[日号])?")
_EN_NUM_RE = "|".join(sorted(_EN_NUMBERS, key=len, reverse=True))
_NUM = rf"(\d+(?:[.,]\d+)?(?:\s*[万千])?|[零〇一二两三四五六七八九十百千万]+|\b(?:{_EN_NUM_RE})(?:[\s-]+(?:{_EN_NUM_RE}))*\b)"
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNIT_WORDS), key=len, reverse=True))
_QTY = re.compile(rf"(?<!第){_NUM}\s*({_UNIT_RE})(?![a-z])", re.I)
_MONEY = re.compile(r"([£$€¥￥])\s?(\d+(?:[.,]\d+)?)")
_ZH_PERCENT = re.compile(r"百分之([零〇一二两三四五六七八九十百]+|\d+(?:\.\d+)?)")
# Day of the month: 15日 / 10号 / 十五号, but not the 日 of a full date such as 3月5日.
_DAY_OF_MONTH = re.compile(r"(?<!\d月)(?<![一二三四五六七八九十]月)(?<![\d一二三四五六七八九十])(\d{1,2}|[一二三四五六七八九十]{1,3})\s*(日|号)")


# Times of day are minutes on a 24-hour clock when the text says which half of the day ("8 p.m.",
# "20:00", "晚上8点"); a time that does not ("8:00", "8点") is ambiguous, marked by a value ending
# in .5, and equals both 8 a.m. and 8 p.m. (see _same).
_EN_TIME = re.compile(r"(?<![\d:])(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|AM|PM|o'clock)?(?![\d:])", re.I)
_ZH_TIME = re.compile(r"(早上|早晨|上午|凌晨|中午|下午|傍晚|晚上|夜间|夜里)?\s*"
                      r"(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*[点點](?:(半)|(\d{1,2}|[一二三四五六七八九十]{1,3})分?)?")
_ZH_PM = frozenset({"中午", "下午", "傍晚", "晚上", "夜间", "夜里"})


def _clock(hour: float, minute: float, pm: bool | None) -> float:
    """Minutes since midnight; ``pm`` None when the text does not say (an ambiguous time, value + 0.5)."""
    if pm is None and hour <= 12:
        return (hour % 12) * 60 + minute + 0.5
    if pm and hour < 12:
        hour += 12
    elif pm is False and hour == 12:
        hour = 0
    return (hour % 24) * 60 + minute


def _to_number(token: str) -> float | None:
    words = re.split(r"[\s-]+", token.lower().strip())
    if all(w in _EN_NUMBERS for w in words):
        # "five hundred" = 500, "twenty-five" = 25, "two thousand five hundred" = 2500
        total, part = 0, 0
        for w in words:
            value = _EN_NUMBERS[w]
            if value in (100, 1000):
                part = max(part, 1) * value
                if value == 1000:
                    total, part = total + part, 0
            else:
                part += value
        return float(total + part)
    if token[0].isdigit():
        scale = {"万": 10000.0, "千": 1000.0}.get(token[-1], 1.0)
        try:
            return float(token.rstrip("万千 ").replace(",", "")) * scale
        except ValueError:
            return None
    value = chinese_number(token)
    return float(value) if value is not None else None


def quantities(text: str) -> dict[str, dict[float, str]]:
    """Numbers per unit found in ``text``: ``{unit: {value: quoted span}}``."""
    found: dict[str, dict[float, str]] = {}
    for m in _QTY.finditer(text):
        value = _to_number(m.group(1))
        if value is None:
            continue
        unit = _UNIT_WORDS[m.group(2).lower()] if m.group(2).lower() in _UNIT_WORDS else _UNIT_WORDS[m.group(2)]
        # 月 after a number is a month count only in "三个月"; "3月" is a date (March).
        if m.group(2) in ("月", "日"):  # 3月 / 三月 is March and 5日 a day of the month; 三个月 is a duration
            continue
        if m.group(2) == "年" and m.group(1)[0].isdigit() and value >= 100:  # 2025年 is a year, 5年 a duration
            continue
        if m.group(1) == "一" and text[max(0, m.start() - 1):m.start()] in ("前", "后", "当", "同"):
            continue  # 前一天 is the day before, not a day's time
        if unit in _DAYS_PER:
            unit, value = "duration", value * _DAYS_PER[unit]
        elif unit in _MEASURES:
            unit, value = _MEASURES[unit][0], round(value * _MEASURES[unit][1], 6)
        found.setdefault(unit, {}).setdefault(value, m.group(0).strip())
    for m in _EN_DATE.finditer(text):
        name = m.group("m1") or m.group("m2") or m.group("m3")
        month = _MONTHS.get(name.lower()) or _MONTH_ABBR.get(name.lower()[:3])
        day = m.group("d1") or m.group("d2")
        if month:
            found.setdefault("month", {}).setdefault(float(month), m.group(0).strip())
            if day and 1 <= int(day) <= 31:
                found.setdefault("date", {}).setdefault(float(month * 100 + int(day)), m.group(0).strip())
    for m in _ZH_MONTH.finditer(text):
        month = _to_number(m.group(1))
        if month is None or not 1 <= month <= 12:
            continue
        found.setdefault("month", {}).setdefault(month, m.group(0).strip())
        day = _to_number(m.group(2)) if m.group(2) else None
        if day is not None and 1 <= day <= 31:
            found.setdefault("date", {}).setdefault(month * 100 + day, m.group(0).strip())
    for m in _EN_TIME.finditer(text):
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if hour <= 24 and minute < 60 and (m.group(3) or m.group(2)):
            half = (m.group(3) or "").lower()
            pm = True if half.startswith("p") else False if half.startswith("a") else None
            found.setdefault("time", {}).setdefault(_clock(hour, minute, pm), m.group(0).strip())
    for m in _ZH_TIME.finditer(text):
        hour = _to_number(m.group(2))
        minute = 30.0 if m.group(3) == "半" else (_to_number(m.group(4)) if m.group(4) else 0.0)
        if hour is not None and minute is not None and hour <= 24:
            pm = m.group(1) in _ZH_PM if m.group(1) else None
            found.setdefault("time", {}).setdefault(_clock(hour, minute, pm), m.group(0).strip())
    for m in _MONEY.finditer(text):
        value = _to_number(m.group(2))
        if value is not None:
            found.setdefault("money", {}).setdefault(value, m.group(0).strip())
    for m in _ZH_PERCENT.finditer(text):
        value = _to_number(m.group(1))
        if value is not None:
            found.setdefault("percent", {}).setdefault(value, m.group(0))
    for m in _DAY_OF_MONTH.finditer(text):
        value = _to_number(m.group(1))
        if value is not None and 1 <= value <= 31:
            found.setdefault("day_of_month", {}).setdefault(value, m.group(0))
    return found


# ----------------------------------------------------------------- entity
_WH_EN = re.compile(r"^\s*(?:(?:in|at|from|to|with|by|for|on|through)\s+)?(which|where|who|whom|whose|what\s+(?:bank|form|department|team|branch|city|office|"
                    r"system|tool|person|address|app|portal))\b", re.I)
_WH_ZH = re.compile(r"(哪|谁|什么|何处)")
_EN_NAME = re.compile(
    r"(?<![A-Za-z0-9'-])(?:[A-Z]+-\d+|[A-Z]{2,}\d+|[A-Z][A-Za-z&']*(?:-[A-Za-z]+)*)(?:\s+(?:[A-Z]+-\d+|[A-Z]{2,}\d+|[A-Z][A-Za-z&']*(?:-[A-Za-z]+)*|of|and|&))*"
)
_EN_CODE = re.compile(r"\b(?:[A-Z]+-\d+|[A-Z]{2,}\d+)\b")
_ZH_TITLE = re.compile(r"《([^》]+)》")
_ZH_ORG = re.compile(
    r"(?:统一在|需要到|需要|填写|使用|通过|在|到|由|向|于|为|去|是|找|经|需|请)"
    r"([\u4e00-\u9fffA-Z0-9]{1,10}(?:银行|支行|分行|网点|部门|部|中心|服务台|公司|处|科|室|局|窗口|机场|医院|组|表|单|经理|主管|专员))"
)
# Systems and apps: 在钉钉上提交, 通过公司的飞书审批, 用企业微信打卡
_ZH_SYSTEM = re.compile(r"(?:在|通过|用|使用|登录)(?:公司的|公司)?([\u4e00-\u9fffA-Za-z]{2,5}?)"
                        r"的?(?:上|审批|App|APP|app|小程序|提交|打卡)")
_ZH_GENERIC = frozenset({"公司", "本公司", "系统", "平台", "网上", "线上", "手机", "电脑", "部门", "内部", "表单", "表格"})
# Web addresses name a place as much as a capitalised name does: permits.marlowcouncil.gov
_URL = re.compile(r"\b(?:https?://)?(?:[a-z0-9-]+\.)+(?:com|gov|org|net|edu|io|co|uk|cn|de|fr|eu|info)(?:/[\w/-]*)?\b", re.I)
_ZH_PLACE = re.compile(r"(?:设在|位于|在)([\u4e00-\u9fff]{2,3})(?=[。，！；]|$)")
# Cities are named without a marker after them ("定在杭州举办"): the largest Chinese cities by name.
_ZH_CITY = re.compile(
    "(北京|上海|天津|重庆|广州|深圳|杭州|苏州|南京|无锡|宁波|温州|成都|武汉|西安|长沙|郑州|济南|青岛|大连|沈阳|"
    "长春|哈尔滨|石家庄|太原|合肥|福州|厦门|南昌|南宁|昆明|贵阳|兰州|西宁|银川|乌鲁木齐|拉萨|呼和浩特|海口|三亚|"
    "珠海|东莞|佛山|香港|澳门|台北)"
)
_COMMON_CAPS = frozenset(
    "the a an you your we our it this that these those employees employee yes no please all each every "
    "if for in on at to from by use using salaries salary payroll annual".split()
    # days and months say when, not who or where
    + "monday tuesday wednesday thursday friday saturday sunday".split()
    + list(_MONTHS)
)


def entities(text: str, question: str = "") -> set[str]:
    """Named things an answer commits to, minus those the question already names."""
    found: set[str] = set()
    q = question.lower()
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for m in _EN_NAME.finditer(sentence):
            words = m.group(0).split()
            if m.start() == len(sentence) - len(sentence.lstrip()) and len(words) == 1 and not _EN_CODE.match(words[0]):
                continue  # one capitalised word opening a sentence is just a sentence start
            while words and (words[0].lower() in _COMMON_CAPS or words[0].lower() in ("of", "and", "&")):
                words = words[1:]
            while words and words[-1].lower() in ("of", "and", "&"):
                words = words[:-1]
            name = " ".join(words)
            q_words = set(re.findall(r"[a-z0-9'-]+", q))
            if name and not all(w.lower() in q_words for w in words):
                found.add(name)
    found |= set(_EN_CODE.findall(text))
    found |= {m.group(0).lower() for m in _URL.finditer(text)}
    for pattern in (_ZH_TITLE, _ZH_ORG, _ZH_SYSTEM, _ZH_PLACE, _ZH_CITY):
        for m in pattern.finditer(text):
            name = m.group(1).lstrip("在到由向于为去请需要")
            name = re.sub(r"^(?:通过|公司的|公司|填写|使用|提交|办理)", "", name) if pattern is _ZH_ORG else name
            if name and name not in question and name not in _ZH_GENERIC and len(name) >= 2:
                found.add(name)
    return {e for e in found if e.lower() not in q and len(e) > 1}  # "B" of B座 is no name


def _asks_for_a_name(question: str) -> bool:
    return bool(_WH_EN.search(question) or _WH_ZH.search(question))


# Who approves / who do I tell: answers often name a role, not a person ("your line manager" vs
# "your HR business partner"). Roles are compared by kind; words in one group name the same kind
# (a supervisor and a line manager are often the same person).
_ROLE_KINDS = (
    ("manager", "supervisor", "boss", "lead", "leader", "head", "主管", "经理", "主任", "组长", "负责人"),
    ("director", "总监"), ("partner",), ("officer", "专员"), ("nurse", "护士"), ("physician", "doctor", "gp", "医生"),
    ("administrator", "admin", "管理员"), ("coordinator",), ("committee", "board", "委员会"),
    ("receptionist", "前台"), ("secretary", "秘书"), ("engineer", "工程师"),
    ("ceo", "cfo", "coo", "cto", "president", "vice president", "总裁", "副总裁", "总经理", "副总经理"),
    ("landlord", "房东"), ("agent", "representative", "advisor", "adviser", "客服"),
)
_ROLE_KIND = {word: group[0] for group in _ROLE_KINDS for word in group}
_ROLE = re.compile(
    r"((?:[A-Za-z'-]+\s+){0,2})\b(" + "|".join(sorted((w for w in _ROLE_KIND if w.isascii()), key=len, reverse=True))
    + r")s?\b|([A-Z]{2,}|[\u4e00-\u9fff]{0,2}?)("
    + "|".join(sorted((w for w in _ROLE_KIND if not w.isascii()), key=len, reverse=True)) + ")",
    re.I,
)
_WHO = re.compile(r"^\s*(?:who|whom)\b|谁", re.I)


def roles(text: str, question: str = "") -> dict[str, str]:
    """``{role kind: quoted phrase}`` for the roles an answer names, minus kinds the question names."""
    asked = {_ROLE_KIND[(m.group(2) or m.group(4)).lower()] for m in _ROLE.finditer(question)}
    found: dict[str, str] = {}
    for m in _ROLE.finditer(text):
        kind = _ROLE_KIND[(m.group(2) or m.group(4)).lower()]
        if kind not in asked:
            found.setdefault(kind, " ".join(m.group(0).split()))
    return found


def _overlaps(a: set[str], b: set[str]) -> bool:
    """Do two entity sets share a name (one may be a longer form of the other)?"""
    return any(x == y or x in y or y in x for x in a for y in b)


# ----------------------------------------------------------------- detection
class _Reading:
    """What one answer to a question commits to, each part read once when first needed
    (:func:`detect_all` compares every answer with all the others)."""

    def __init__(self, text: str, question: str) -> None:
        self.text, self.question = text, question

    @cached_property
    def stance(self) -> tuple[int, str]:
        return stance(self.text, self.question)

    @cached_property
    def predicates(self) -> list[tuple[dict[str, tuple[int, str]], set[str]]]:
        return _predicate_clauses(self.text)

    @cached_property
    def quantities(self) -> dict[str, dict[float, str]]:
        return quantities(self.text)

    @cached_property
    def entities(self) -> set[str]:
        return entities(self.text, self.question)

    @cached_property
    def roles(self) -> dict[str, str]:
        return roles(self.text, self.question)


def detect(a: str, b: str, question: str = "") -> list[Finding]:
    """All contradictions between answers ``a`` and ``b`` to ``question``."""
    return _compare(_Reading(a, question), _Reading(b, question), question, quantities(question) if question else {})


def _compare(ra: _Reading, rb: _Reading, question: str, qq: dict[str, dict[float, str]]) -> list[Finding]:
    findings: list[Finding] = []
    (sa, span_a), (sb, span_b) = ra.stance, rb.stance
    if sa * sb == -1:
        findings.append(Finding("polarity", 1.0, span_a, span_b))
    elif not _is_yes_no_question(question):
        clash = _clash(ra.predicates, rb.predicates)
        if clash:
            findings.append(Finding("polarity", 1.0, *clash))
    qa, qb = ra.quantities, rb.quantities
    for unit in sorted(set(qa) & set(qb)):
        va, vb = set(qa[unit]), set(qb[unit])
        # Values the question itself gives ("a vacation longer than a week") are conditions, not
        # answers: leave them out when both answers say something else too.
        asked = set(qq.get(unit, ()))
        rest_a = {x for x in va if not _any_same(unit, x, asked)}
        rest_b = {y for y in vb if not _any_same(unit, y, asked)}
        if rest_a and rest_b:
            va, vb = rest_a, rest_b
        if not any(_same(unit, x, y) for x in va for y in vb):
            x, y = min(va), min(vb)
        else:
            # Both give the same number of values (opens at 8 am, closes at 8 pm / opens at 7 am,
            # closes at 8 pm) and one has no match on the other side. "A month" is a rate ("£5 a
            # month"), not a value, here.
            va = {x for x in va if not _RATE.match(qa[unit][x])}
            vb = {y for y in vb if not _RATE.match(qb[unit][y])}
            if not (len(va) == len(vb) >= 2 and any(not _any_same(unit, x, vb) for x in va)):
                continue
            x = min(x for x in va if not _any_same(unit, x, vb))
            y = min(y for y in vb if not _any_same(unit, y, va))
        score = abs(x - y) / max(abs(x), abs(y), 1e-9)
        findings.append(Finding("quantity", round(min(1.0, score), 6), qa[unit][x], qb[unit][y]))
    if not findings and _asks_for_a_name(question):
        ea, eb = ra.entities, rb.entities
        if ea and eb and not _overlaps(ea, eb):
            findings.append(Finding("entity", 1.0, ", ".join(sorted(ea)), ", ".join(sorted(eb))))
        elif _WHO.search(question):
            roles_a, roles_b = ra.roles, rb.roles
            if roles_a and roles_b and not set(roles_a) & set(roles_b):
                findings.append(Finding("entity", 1.0, ", ".join(roles_a.values()), ", ".join(roles_b.values())))
    return findings


_RATE = re.compile(r"an?\s", re.I)


def _same(unit: str, x: float, y: float) -> bool:
    """Equal values; converted values within 10 % count as equal ("4 weeks" and "one month", 1 mile and 1.6 km);
    a time of day that does not say a.m. or p.m. equals both."""
    if unit == "time" and (x % 1 or y % 1):
        return int(x) % 720 == int(y) % 720
    return abs(x - y) <= 0.1 * max(x, y) if unit in ("duration", "weight", "distance", "data", "minutes") else x == y


def _any_same(unit: str, x: float, values: set[float]) -> bool:
    return any(_same(unit, x, v) for v in values)


def detect_all(texts: Sequence[str], question: str = "") -> dict[tuple[int, int], list[Finding]]:
    """Run :func:`detect` on every pair ``i < j``; only pairs with findings are returned."""
    out: dict[tuple[int, int], list[Finding]] = {}
    readings = [_Reading(t, question) for t in texts]
    asked = quantities(question) if question else {}
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if texts[i].strip() == texts[j].strip():
                continue
            found = _compare(readings[i], readings[j], question, asked)
            if found:
                out[(i, j)] = found
    return out
