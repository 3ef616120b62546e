"""Claim-level grounding: is what an answer *adds* to the question in the retrieved passages?

An answer is split into claims (sentences; long sentences at clause
boundaries; Chinese at 。！？；). For each claim:

* **Added content** is what the claim says that the question did not:
  content words (lower-cased, plural-stemmed, stop words dropped), numbers,
  codes and paths (``HR-07``, ``/etc/apt/sources.list``), web addresses; for
  Chinese, character bigrams. Words the question already holds carry no
  evidence either way (restating the question is not being grounded).
* **Lexical support** against a passage is the share of the added content
  found in it (a compound term such as a path counts when it occurs anywhere
  in the passage text). The claim's best passage is the one with the highest
  support (ties: the higher-ranked passage); its best **window** is the run
  of at most :data:`WINDOW` consecutive sentences of that passage with the
  most added content, returned as a character span.
* **Embedding support** (with an embedder) is the claim's best cosine to a
  passage; **entailment** (with an NLI scorer) is the probability that the
  best window entails the claim.

The answer's overall ``support`` is the added-content-weighted mean of its
claims' lexical support, so a long answer with one invented sentence scores
in proportion. A claim that adds nothing has no support of its own and no
weight. Numbers, amounts and names (read by the contradiction detectors'
readers) that appear in no retrieved passage are listed in ``absent``: exact
values are where embeddings fail.

Two answer-level readings measure whether the answer was *taken from* the
passages rather than merely sharing words with them (on the Debian sets of
``bench/trust.py`` they are among the strongest single signals of a wrong
answer, though not the strongest on every set):

* **overlap**: the share of the answer's word bigrams (SQuAD-normalised
  tokens; Chinese by characters) that occur in the passage holding most of
  them. Copying a phrase is evidence; sharing scattered words is less.
* **anchored** support: the share of the answer's added content found in the
  *anchor*, the window where the passages talk about the question: the
  sentence holding most of the question's content terms, with one sentence
  on each side. An answer to "which package holds X" is usually written next
  to X; a right word from the wrong paragraph is not support. An answer that
  adds nothing to the question scores 0 (it answers nothing); with no
  sentence sharing a term with the question there is no anchor (``None``).
* **coverage**: the share of the question's content terms found in the
  anchor's central sentence, the retrieved sentence that holds most of them.
  It reads the retrieval, not the answer: low coverage means no retrieved
  sentence talks about what was asked, so even a copied answer is likely to
  be copied from the wrong place (0 when no sentence shares a term with the
  question; ``None`` when the question has no content terms).
* **key hits**: how many of the answer's added terms the question's *key
  sentence* holds. A share dilutes a long answer that does state the key
  fact (a name, a package, a year) among other words; a count does not. The
  key sentence is the retrieved sentence whose question terms weigh most,
  each term weighted by its rarity among the retrieved sentences (smooth
  inverse document frequency, ``log((1 + S) / (1 + df)) + 1`` over the ``S``
  sentences; ties: the higher-ranked passage, then the earlier sentence):
  a sentence that holds the question's one rare name says more about where
  the answer is than one holding three of its common words (``None`` when
  no sentence shares a term with the question). ``key`` records where that
  sentence is (``chunk_id`` and character span).

Everything here is deterministic and works on plain texts; models come in as
objects (an :class:`~ragguard.core.protocols.Embedder`, an NLI callable).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ragguard.core.detectors import entities, quantities
from ragguard.core.detectors.lexicon_zh import ZH
from ragguard.core.protocols import Embedder
from ragguard.core.reference import normalize_tokens, numeral_value
from ragguard.core.script import simplified
from ragguard.core.types import Passage

__all__ = ["Claim", "Grounding", "split_claims", "content_terms", "added_terms", "ground", "overlap", "anchor",
           "coverage", "has_cjk", "WINDOW", "ANCHOR_RADIUS", "CLAUSE_WORDS"]

WINDOW = 2  # sentences in a supporting window
ANCHOR_RADIUS = 1  # sentences on each side of the question's sentence in the anchor window
CLAUSE_WORDS = 25  # a sentence longer than this (in words) is split at clause boundaries
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[\u3400-\u9fff])|(?<=[。！？；])|\n+")
_CLAUSE = re.compile(r"(?<=[;:])\s+|,\s+(?=(?:but|and|so|which|while|whereas|although|or)\b)|(?<=[，；])")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# A word, or a compound with inner punctuation: apt-get, HR-07, /etc/apt/sources.list, 2.6.32, e-mail.
_TERM = re.compile(r"[A-Za-z0-9_$£€¥%]+(?:[./:@+_-]+[A-Za-z0-9_$£€¥%]+)*|/[A-Za-z0-9_./-]+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+/\S*", re.I)
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each else even ever every few for from
    further get gets got had has have having he her here hers him his how however i if in into is it its itself
    just least less let like may me might more most much must my no nor not now of off often on once one only
    or other our ours out over own per perhaps please quite rather really same shall she should since so some
    such than that the their theirs them then there these they this those though through thus to too under
    until up upon us use used uses using very via was we well were what when where whether which while who
    whom whose why will with within without would yes yet you your yours also always usually generally simply
    able need needs needed want make makes made way ways thing things something anything example instance
    answer question context information provided based according following refer""".split()
)


@dataclass(frozen=True)
class Claim:
    """One claim of an answer and how well the retrieved passages support it."""

    text: str
    added: int  # number of added content terms
    support: float | None  # lexical support of the added content (None: adds nothing)
    chunk_id: str | None = None  # the best supporting passage
    span: tuple[int, int] | None = None  # character span of the best window in that passage's text
    embedding: float | None = None
    entailment: float | None = None
    missing: list[str] = field(default_factory=list)  # added terms the best passage lacks

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "added": self.added,
            "support": _round(self.support),
            "chunk_id": self.chunk_id,
            "span": list(self.span) if self.span else None,
            "embedding": _round(self.embedding),
            "entailment": _round(self.entailment),
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class Grounding:
    """How an answer's claims are supported by the retrieved passages."""

    support: float | None  # added-content-weighted lexical support (None: nothing to ground)
    claims: list[Claim]
    absent: list[str]  # numbers, amounts and names found in no retrieved passage
    embedding: float | None = None  # best claim-to-passage cosine, averaged over claims
    entailment: float | None = None  # lowest entailment over claims that add content
    overlap: float | None = None  # share of the answer's bigrams in the passage holding most of them
    anchored: float | None = None  # share of the added content in the anchor window
    anchor: tuple[str, tuple[int, int]] | None = None  # (chunk_id, span) of the anchor window
    coverage: float | None = None  # share of the question's content terms in the anchor's central sentence
    key_hits: int | None = None  # added content terms found in the question's key sentence
    key: tuple[str, tuple[int, int]] | None = None  # (chunk_id, span) of the question's key sentence

    @property
    def unsupported(self) -> list[str]:
        """Claims that add content and have less than half of it in their best passage."""
        return [c.text for c in self.claims if c.support is not None and c.support < 0.5]

    def to_dict(self) -> dict[str, Any]:
        return {
            "support": _round(self.support),
            "embedding": _round(self.embedding),
            "entailment": _round(self.entailment),
            "overlap": _round(self.overlap),
            "anchored": _round(self.anchored),
            "anchor": None if self.anchor is None else {"chunk_id": self.anchor[0], "span": list(self.anchor[1])},
            "coverage": _round(self.coverage),
            "key_hits": self.key_hits,
            "key": None if self.key is None else {"chunk_id": self.key[0], "span": list(self.key[1])},
            "claims": [c.to_dict() for c in self.claims],
            "unsupported": self.unsupported,
            "absent": list(self.absent),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (stripped, non-empty)."""
    spans, start = [], 0
    for m in [*_SENTENCE.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = m.end() if m else len(text)
    return spans


def split_claims(text: str) -> list[str]:
    """The claims of an answer: its sentences, long ones cut at clause boundaries."""
    claims: list[str] = []
    for a, b in _sentences(text):
        sentence = text[a:b]
        if len(sentence.split()) <= CLAUSE_WORDS:
            claims.append(sentence)
            continue
        claims.extend(p.strip() for p in _CLAUSE.split(sentence) if p and p.strip())
    return claims


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_ZH_COUNTED = re.compile(
    "([零〇一二两三四五六七八九十百千万]+)(?=" + "|".join(sorted(map(re.escape, ZH.quantities.units), key=len, reverse=True)) + ")"
)


def _zh_values(text: str) -> str:
    """A Chinese numeral before a unit word reads as its value (二十五天 -> " 25 天"), so it meets "25天" in a
    passage, as reference matching reads it; other numeral characters stay (一些, 十分 are words)."""
    return _ZH_COUNTED.sub(numeral_value, text)  # the unit is a lookahead: the match is the numeral alone


def content_terms(text: str) -> set[str]:
    """Content terms of ``text``: stemmed words without stop words, numbers, compounds, CJK bigrams."""
    terms: set[str] = set()
    if _CJK_RUN.search(text):
        text = _zh_values(simplified(text))  # Traditional Chinese reads as Simplified
    lowered = text.lower()
    for m in _URL.finditer(lowered):
        terms.add(m.group(0).rstrip(".,;:)"))
    for m in _TERM.finditer(lowered):
        term = m.group(0).rstrip("./:-_").lstrip(".:-_")
        parts = [term] if term.isalnum() else [term, *re.split(r"[^a-z0-9$£€¥%]+", term)]
        for part in parts:  # a compound (9:00, HR-07, a path) also holds its parts (9, hr, 07)
            if part and part not in _STOP and (len(part) > 1 or part.isdigit()):
                terms.add(_stem(part))
    for run in _CJK_RUN.findall(simplified(text)):  # Traditional Chinese shares bigrams with Simplified
        if len(run) == 1:
            terms.add(run)
        terms.update(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def added_terms(claim: str, question: str) -> set[str]:
    """What ``claim`` says beyond ``question``."""
    return content_terms(claim) - content_terms(question)


def _found(term: str, terms: set[str], lowered: str) -> bool:
    # Compounds (paths, codes, addresses) and CJK bigrams count when they occur anywhere in the text.
    return term in terms or ((not term.isalnum() or not term.isascii()) and term in lowered)


def _best_window(passage: str, added: set[str]) -> tuple[tuple[int, int] | None, int]:
    spans = _sentences(passage)
    best: tuple[tuple[int, int] | None, int] = (None, 0)
    for i in range(len(spans)):
        for width in range(1, WINDOW + 1):
            if i + width > len(spans):
                break
            a, b = spans[i][0], spans[i + width - 1][1]
            window = passage[a:b]
            hits = sum(_found(t, content_terms(window), window.lower()) for t in added)
            if hits > best[1]:
                best = ((a, b), hits)
    return best


def overlap(answer: str, passages: Sequence[Passage]) -> float | None:
    """Share of the answer's word bigrams (one word: unigram) in the passage that holds most of them."""
    tokens = normalize_tokens(answer)
    if not tokens or not passages:
        return None
    n = min(2, len(tokens))
    grams = {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
    best = 0
    for p in passages:
        words = normalize_tokens(p.text)
        best = max(best, len(grams.intersection(tuple(words[i : i + n]) for i in range(len(words) - n + 1))))
    return best / len(grams)


_Anchor = tuple[int, int, tuple[int, int]]


class _Sentence(NamedTuple):
    passage: int  # index in the retrieved passages
    index: int  # the sentence's position in its passage
    span: tuple[int, int]
    terms: set[str]


def _read_sentences(passages: Sequence[Passage]) -> list[list[_Sentence]]:
    """Every retrieved sentence with its content terms, passage by passage (read once, used by each reading)."""
    return [[_Sentence(pi, si, (a, b), content_terms(p.text[a:b])) for si, (a, b) in enumerate(_sentences(p.text))]
            for pi, p in enumerate(passages)]


def _anchor_sentence(asked: set[str], sentences: list[list[_Sentence]]) -> _Anchor | None:
    """(hits, passage index, window span) of the sentence holding most of the terms ``asked``."""
    best: _Anchor | None = None
    for spans in sentences:
        for sentence in spans:
            hits = len(asked & sentence.terms)
            if hits and (best is None or hits > best[0]):
                si = sentence.index
                lo, hi = spans[max(0, si - ANCHOR_RADIUS)].span[0], spans[min(len(spans) - 1, si + ANCHOR_RADIUS)].span[1]
                best = (hits, sentence.passage, (lo, hi))
    return best


def _key_sentence(asked: set[str], sentences: list[list[_Sentence]]) -> _Sentence | None:
    """The sentence whose terms ``asked`` weigh most, each by its rarity among the sentences (module docstring)."""
    flat = [sentence for spans in sentences for sentence in spans]
    weight = {term: math.log((1 + len(flat)) / (1 + sum(term in s.terms for s in flat))) + 1 for term in asked}
    best, best_score = None, 0.0
    for sentence in flat:
        score = math.fsum(weight[term] for term in asked & sentence.terms)  # exact: no tie depends on set order
        if score > best_score:
            best, best_score = sentence, score
    return best


def anchor(question: str, passages: Sequence[Passage]) -> tuple[int, tuple[int, int]] | None:
    """(passage index, character span) of the window where the passages talk about the question.

    The sentence with the most of the question's content terms (ties: the
    higher-ranked passage, then the earlier sentence) and :data:`ANCHOR_RADIUS`
    sentences on each side; ``None`` when no sentence shares a term with the question.
    """
    best = _anchor_sentence(content_terms(question), _read_sentences(passages))
    return None if best is None else (best[1], best[2])


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds Chinese characters (read by character bigrams here, not by words)."""
    return _CJK_RUN.search(text) is not None


def coverage(question: str, passages: Sequence[Passage]) -> float | None:
    """Share of the question's content terms in the retrieved sentence that holds most of them.

    0.0 when no sentence of the passages shares a term with the question;
    ``None`` when the question has no content terms or there are no passages.
    """
    if not passages:
        return None
    asked = content_terms(question)
    return _covered(asked, _anchor_sentence(asked, _read_sentences(passages)))


def _covered(asked: set[str], found: _Anchor | None) -> float | None:
    """Coverage from the anchor sentence's hit count (``None``: nothing asked)."""
    if not asked:
        return None
    return 0.0 if found is None else found[0] / len(asked)


def _hits_in(added: set[str], text: str, terms: set[str] | None = None) -> int:
    """How many of the terms ``added`` occur in ``text`` (``terms``: its content terms, when already read)."""
    terms, lowered = content_terms(text) if terms is None else terms, text.lower()
    return sum(_found(t, terms, lowered) for t in added)


def _share_in(added: set[str], window: str) -> float:
    """Share of the terms an answer ``added`` found in ``window`` (0 when it adds nothing)."""
    return _hits_in(added, window) / len(added) if added else 0.0


class _Readings(NamedTuple):
    anchored: float | None
    anchor: tuple[str, tuple[int, int]] | None  # (chunk_id, span) of the anchor window
    coverage: float | None
    key_hits: int | None
    key: tuple[str, tuple[int, int]] | None  # (chunk_id, span) of the key sentence


def _anchored(answer: str, question: str, passages: Sequence[Passage]) -> _Readings:
    """The readings that hang on the anchor (see the module docstring); one pass over the sentences."""
    asked = content_terms(question)
    sentences = _read_sentences(passages)
    found = _anchor_sentence(asked, sentences)
    covered = _covered(asked, found)
    if found is None:
        return _Readings(None, None, covered, None, None)
    _, index, (a, b) = found
    # Some sentence holds a term asked (found), so the key sentence exists: every term weighs more than 0.
    key = _key_sentence(asked, sentences)
    assert key is not None
    text, added = passages[index].text, added_terms(answer, question)
    hits = _hits_in(added, passages[key.passage].text[key.span[0] : key.span[1]], key.terms)
    return _Readings(_share_in(added, text[a:b]), (passages[index].chunk_id, (a, b)), covered, hits,
                     (passages[key.passage].chunk_id, key.span))


def anchored_shares(answers: Sequence[str], question: str, passages: Sequence[Passage]) -> list[float | None]:
    """Each answer's ``anchored`` support, with one search for the anchor window.

    ``None`` for every answer when no retrieved sentence shares a term with the question.
    """
    found = anchor(question, passages)
    if found is None:
        return [None] * len(answers)
    index, (a, b) = found
    window = passages[index].text[a:b]
    return [_share_in(added_terms(answer, question), window) for answer in answers]


def _absent_values(answer: str, question: str, passages: Sequence[Passage]) -> list[str]:
    """Quantities and names the answer states that no passage (nor the question) holds."""
    context = "\n".join(p.text for p in passages)
    lowered = context.lower()
    known = quantities(context + "\n" + question)
    out: list[str] = []
    for unit, values in quantities(answer).items():
        for value, surface in values.items():
            if value not in known.get(unit, {}):
                out.append(surface)
    for name in sorted(entities(answer, question)):
        if name.lower() not in lowered:
            out.append(name)
    return sorted(dict.fromkeys(out))


def ground(
    answer: str,
    question: str,
    passages: Sequence[Passage],
    *,
    embedder: Embedder | None = None,
    passage_vectors: np.ndarray | None = None,
    entails: Callable[[str, str], float] | None = None,
    readings: bool = True,
) -> Grounding:
    """Ground ``answer`` against the retrieved ``passages`` (see the module docstring).

    Args:
        embedder: when given, each claim's best cosine to a passage is recorded.
        passage_vectors: the passages' unit vectors from ``embedder`` (one row
            per passage), when the caller already has them.
        entails: ``entails(premise, hypothesis)`` -> probability of entailment;
            when given, each content-adding claim is checked against its best window.
        readings: also read ``overlap``, ``anchored``, ``coverage`` and ``key_hits`` (``False`` where only the claims'
            support is wanted, as for the cluster representatives).
    """
    claims_text = split_claims(answer)
    if not claims_text or not passages:
        return Grounding(None, [Claim(t, len(added_terms(t, question)), None) for t in claims_text], [])
    read = _anchored(answer, question, passages) if readings else _Readings(None, None, None, None, None)
    passage_terms = [(content_terms(p.text), p.text.lower()) for p in passages]
    cosines: np.ndarray | None = None
    if embedder is not None:
        if passage_vectors is None:
            passage_vectors = np.asarray(embedder.embed([p.text for p in passages]), dtype=np.float32)
        claim_vectors = np.asarray(embedder.embed(claims_text), dtype=np.float32)
        cosines = claim_vectors @ np.asarray(passage_vectors, dtype=np.float32).T
    claims: list[Claim] = []
    for ci, text in enumerate(claims_text):
        added = added_terms(text, question)
        embedding = float(cosines[ci].max()) if cosines is not None else None
        if not added:
            claims.append(Claim(text, 0, None, embedding=embedding))
            continue
        scores = [sum(_found(t, terms, low) for t in added) / len(added) for terms, low in passage_terms]
        best = int(np.argmax(scores))  # first maximum: the higher-ranked passage wins a tie
        span, _ = _best_window(passages[best].text, added)
        terms, low = passage_terms[best]
        missing = sorted(t for t in added if not _found(t, terms, low))
        entailment = None
        if entails is not None:
            premise = passages[best].text[span[0] : span[1]] if span else passages[best].text
            entailment = float(entails(premise, text))
        claims.append(Claim(text, len(added), scores[best], passages[best].chunk_id, span, embedding, entailment, missing))
    weighted = [(c.support, c.added) for c in claims if c.support is not None]
    total = sum(w for _, w in weighted)
    support = sum(s * w for s, w in weighted) / total if total else None
    embeddings = [c.embedding for c in claims if c.embedding is not None]
    entailments = [c.entailment for c in claims if c.entailment is not None]
    return Grounding(
        support,
        claims,
        _absent_values(answer, question, passages),
        embedding=float(np.mean(embeddings)) if embeddings else None,
        entailment=min(entailments) if entailments else None,
        overlap=overlap(answer, passages) if readings else None,
        anchored=read.anchored,
        anchor=read.anchor,
        coverage=read.coverage,
        key_hits=read.key_hits,
        key=read.key,
    )
