"""Text helpers shared by the detectors: sentences, clauses, topic words, masking and quoting.

Punctuation, clause words and topic words come from the registered lexicons
(:class:`~ragguard.core.detectors.lexicon.TextCues`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ragguard.core.detectors.languages import compiled, joined
from ragguard.core.detectors.lexicon import Lexicon, TextCues

__all__ = [
    "first_sentence", "sentences", "is_question", "answer_part", "main_clause", "opening_clause", "masked", "context",
    "topic_terms", "on_topic", "in_script", "clause_punctuation",
]


def _chars(chars: str) -> str:
    """A regex character class body matching any of ``chars``."""
    return "".join(re.escape(c) for c in dict.fromkeys(chars))


@dataclass(frozen=True)
class _Text:
    lexicons: tuple[Lexicon, ...]
    first: re.Pattern[str]
    sentence: re.Pattern[str]
    questions: tuple[str, ...]
    opening: re.Pattern[str]
    condition: re.Pattern[str]
    caveat: re.Pattern[str]
    commas: str
    colons: str


def _build(lexicons: tuple[Lexicon, ...]) -> _Text:
    cues = [lex.text for lex in lexicons]

    def merged(pick: Callable[[TextCues], str]) -> str:
        return "".join(pick(c) for c in cues)

    ends = merged(lambda c: c.sentence_ends + c.semicolons)
    pauses = merged(lambda c: c.commas + c.semicolons)
    stops = merged(lambda c: c.commas + c.semicolons + c.colons)
    return _Text(
        lexicons=lexicons,
        first=re.compile(rf"(?<=[{_chars(ends)}\n])"),
        sentence=re.compile(rf"(?<=[{_chars(ends)}])\s*"),
        questions=tuple(dict.fromkeys(merged(lambda c: c.question_marks))),
        opening=re.compile(rf"[{_chars(pauses)}]"),
        # A leading condition ("If you do not have the card, ...", "如果没有工资卡，...") restates a
        # case of the question; a negation inside it is not the answer's stance.
        condition=re.compile(rf"^\s*(?:{joined([c.condition_openers for c in cues])})"
                             rf"[^{_chars(stops)}]{{0,120}}[{_chars(stops)}]\s*(?=\S)", re.I),
        caveat=re.compile(rf"[{_chars(pauses)}]\s*(?:{joined([c.caveat_words for c in cues])})", re.I),
        commas=merged(lambda c: c.commas),
        colons=merged(lambda c: c.colons),
    )


_text = compiled(_build)


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (., !, ?, 。, ！, ？, ;, a line break)."""
    parts = _text().first.split(text.strip(), maxsplit=1)
    return parts[0].strip() if parts else ""


def sentences(text: str) -> list[str]:
    """The text cut after each sentence end (line breaks do not cut)."""
    return _text().sentence.split(text)


def is_question(sentence: str) -> bool:
    """Does ``sentence`` end with a question mark?"""
    return sentence.endswith(_text().questions)


def answer_part(text: str) -> str:
    """The answer without an opening sentence that restates the question ("地铁换乘需要重新买票吗？不需要...")."""
    first = first_sentence(text)
    if is_question(first) and len(first) < len(text.strip()):
        return text.strip()[len(first):].strip()
    return text.strip()


def main_clause(sentence: str) -> str:
    """``sentence`` without a leading conditional clause, up to a caveat ("..., but ...")."""
    t = _text()
    m = t.condition.match(sentence)
    sentence = sentence[m.end():] if m else sentence
    return t.caveat.split(sentence, maxsplit=1)[0]


def opening_clause(sentence: str) -> str:
    """``sentence`` up to its first comma or semicolon."""
    return _text().opening.split(sentence, maxsplit=1)[0]


def clause_punctuation() -> tuple[str, str]:
    """The registered commas and colons (as characters), for clause splitting."""
    t = _text()
    return t.commas, t.colons


def masked(pattern: re.Pattern[str], text: str) -> str:
    """``text`` with ``pattern``'s matches blanked out (same length, so positions still fit)."""
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def context(text: str, start: int, end: int, width: int = 30) -> str:
    """The matched cue with a few words around it, cut at word boundaries, on one line."""
    lo = max(0, start - 12)
    hi = min(len(text), end + width)
    if lo > 0 and text[lo - 1] != " " and " " in text[lo:start]:
        lo = text.index(" ", lo) + 1
    if hi < len(text) and text[hi] != " " and " " in text[end:hi]:
        hi = text.rindex(" ", end, hi)
    return " ".join(text[lo:hi].split())


def _stem(cues: TextCues, word: str) -> str:
    """A crude stem, enough to match "items" with "item" and "refunded" with "refund"."""
    for suffix in cues.stem_suffixes:
        if word.endswith(suffix) and not word.endswith(cues.stem_keep) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def topic_terms(text: str, prefix: int | None = None) -> set[str]:
    """What ``text`` is about: its content words, stemmed (or cut to ``prefix`` characters), and
    the bigrams of languages written without spaces."""
    terms: set[str] = set()
    lowered = text.lower()
    for lex in _text().lexicons:
        cues = lex.text
        if cues.topic_words is not None:
            words = {w for w in cues.topic_words.findall(lowered) if w not in cues.stop_words}
            terms |= {w[:prefix] for w in words} if prefix else {_stem(cues, w) for w in words}
        if cues.topic_chars is not None:
            chars = cues.topic_chars.findall(text)
            terms |= {a + b for a, b in zip(chars, chars[1:], strict=False)}
    return terms


def on_topic(sentence: str, question: str) -> bool:
    """Does the sentence talk about the question (two shared content words or bigrams, or the
    question's only one: "Do I need the certificate?")?"""
    asked = topic_terms(question)
    return len(topic_terms(sentence) & asked) >= min(2, len(asked) or 2)


def in_script(lexicon: Lexicon, text: str) -> bool:
    """Does ``text`` contain a character of ``lexicon``'s script?"""
    return lexicon.text.script is not None and bool(lexicon.text.script.search(text))
