"""Does an answer say what the reference says? Rules that read short references.

A short reference ("golden anniversary", "apt-cache rdepends", "8") never
reaches an embedding-similarity threshold against a sentence that contains
it, so references of a few words are read lexically, SQuAD-style:

* **Normalisation**: lower case, punctuation turned into spaces (so
  ``/etc/apt/sources.list`` reads ``etc apt sources list`` and still contains
  ``sources list``), English articles dropped, whitespace collapsed; Chinese
  is compared character by character (each CJK character is a token), except
  that a Chinese numeral is one token, its value (三十天 reads ``30 天``), and
  Traditional characters read as Simplified (三個月 is 三个月).
* **containment**: every token of the normalised reference appears, in
  order and contiguously, in the normalised answer. Score 1.0. An
  occurrence that only restates the question does not count: when it lies
  inside a run of tokens copied from the question that is longer than the
  reference ("the package that provides the lsb_release program is Debian"
  for reference ``lsb-release``), the answer has repeated the question, not
  given the reference. This can only happen when the question holds the
  reference's tokens. Token F1 leaves such runs out of the answer too.
  Nor does an occurrence that is only part of a longer name: one joined to
  more of its word by ``-`` or ``_`` (``xdg-desktop-portal`` in
  ``xdg-desktop-portal-qtv``, ``ibus`` in ``ibus-mozc``), unless the
  reference is itself open at that end (the suffix ``-dbgsym``, the prefix
  ``linux-image-``); or one inside a web address, unless the reference looks
  like (part of) an address itself (``debian.org``): "config" in
  ``https://github.com/.../config/...`` is not the answer "config".
* **token F1** (SQuAD's): the harmonic mean of token precision and recall;
  a match at :data:`F1_THRESHOLD` or above. A name joined by ``-`` or ``_``
  counts as one word, as SQuAD's deletion of punctuation would make it, unless
  it is one of the reference's own (:func:`compounds`).
* **verbatim**: a reference that normalises to no token at all (symbols such
  as ``&&``, ``>>`` or ``~``; an option such as ``-a``, whose letter is an
  article) is looked for as written (case aside), standing alone: with only
  spaces, quotes, brackets or punctuation around it, not inside a word or a
  longer run of symbols, so ``~`` is in "use a
  `~`" but not in "foo~bar", and ``=`` not in "x=1"; a list marker ("- item")
  is not an occurrence of ``-``. Score 1.0.

* **polarity**: for a yes/no question whose reference takes a side ("no",
  "no, not yet"), the answer's stance decides (the polarity detector's
  reader): the same side is a match, the other side ``contradicts``. A "yes"
  answer that mentions "no" somewhere is not taken for a "no". Only an answer
  without a stance falls back to the lexical rules.

A reference is *short* when it has at most :data:`SHORT_TOKENS` words
(whitespace-separated; each CJK character is a word), so a command, path or
web address of a few words is read lexically even though its punctuation
splits it into many tokens: an embedding puts two different web addresses
close together. A long reference (a sentence or more) is compared by
embedding cosine plus the contradiction detectors (any contradiction kind
makes it ``contradicts``), which :func:`match_long` takes as already computed
inputs so this module stays pure.

Every decision says which rule decided and its score (:class:`ReferenceMatch`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ragguard.core.detectors.lexicon_zh import chinese_number
from ragguard.core.detectors.polarity import is_yes_no_question, stance
from ragguard.core.script import simplified

__all__ = [
    "ReferenceMatch",
    "normalize_tokens",
    "numeral_value",
    "contains",
    "echoed",
    "token_f1",
    "compounds",
    "is_short",
    "match_short",
    "standalone",
    "match_yes_no",
    "match_long",
    "SHORT_TOKENS",
    "F1_THRESHOLD",
]

MatchLabel = Literal["match", "mismatch", "contradicts"]

SHORT_TOKENS = 6  # references of at most this many words are read lexically (is_short)
F1_THRESHOLD = 0.5  # SQuAD token F1 at which a short reference matches without containment
_ARTICLES = frozenset({"a", "an", "the"})
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_ZH_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万]+")
_ADDRESS_LIKE = re.compile(r"[./:]")  # a reference with one of these may be (part of) a web address


@dataclass(frozen=True)
class ReferenceMatch:
    """How an answer compares with a reference, and which rule decided."""

    label: MatchLabel
    rule: str  # "containment", "verbatim", "token_f1", "polarity", "embedding", "detector:<kind>", "empty"
    score: float
    reference: str = ""  # the accepted variant that decided (when several were given)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "rule": self.rule, "score": round(float(self.score), 6)}


def normalize_tokens(text: str) -> list[str]:
    """The SQuAD-style tokens of ``text`` (see the module docstring)."""
    return [token for token, _glued, _address in _read_words(text)]


def numeral_value(m: re.Match[str]) -> str:
    """The matched Chinese numeral as its value between spaces (三十 -> " 30 "); unchanged when it is no number."""
    value = chinese_number(m.group())
    return m.group() if value is None else f" {value} "


def _read_words(text: str) -> list[tuple[str, bool, bool]]:
    """Each normalised token of ``text`` with where it stands in its whitespace-separated word.

    ``glued``: the token is joined to the previous one by a single ``-`` or ``_`` inside one word, as the parts of
    ``xdg-desktop-portal-qtv`` are. ``address``: the token's word is a web address (holds ``://`` or starts ``www.``).
    """
    text = simplified(unicodedata.normalize("NFKC", text).lower())  # Traditional Chinese reads as Simplified
    # A Chinese numeral becomes its value, one token: 三十天 reads "30 天", so it is not 十三天 (the same characters)
    # and it is 30天.
    text = _ZH_NUMERAL.sub(numeral_value, text)
    # Punctuation (and symbols) become spaces, one for one; letters, digits and CJK stay.
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    out: list[tuple[str, bool, bool]] = []
    for word in re.finditer(r"\S+", text):
        address = "://" in word.group() or word.group().startswith("www.")
        previous_end = None
        for m in _TOKEN.finditer(cleaned, word.start(), word.end()):
            token = m.group()
            if token in _ARTICLES:
                previous_end = None
                continue
            glued = previous_end is not None and text[previous_end : m.start()] in ("-", "_")
            out.append((token, glued, address))
            previous_end = m.end()
    return out


def contains(answer_tokens: Sequence[str], reference_tokens: Sequence[str], skip: Sequence[bool] | None = None,
             glued: Sequence[bool] | None = None, *, hidden: Sequence[bool] | None = None,
             open_ends: tuple[bool, bool] = (False, False)) -> bool:
    """Whether ``reference_tokens`` occur contiguously, in order, in ``answer_tokens``.

    An occurrence whose every token is marked in ``skip`` (one flag per answer
    token, see :func:`echoed`) does not count. With ``glued`` (one flag per
    answer token: joined to the previous token by ``-`` or ``_`` inside one
    word), an occurrence that is only part of such a compound does not count:
    ``xdg-desktop-portal`` is not in ``xdg-desktop-portal-qtv``, unless the
    reference is open at that end (``open_ends``: it starts or ends with ``-``
    or ``_``, as a suffix ``-dbgsym`` or a prefix ``linux-image-`` does). An occurrence
    wholly inside tokens marked in ``hidden`` (a web address's) does not count
    either.
    """
    n = len(reference_tokens)
    if n == 0:
        return False
    first = reference_tokens[0]
    return any(
        answer_tokens[i] == first and list(answer_tokens[i : i + n]) == list(reference_tokens)
        and not (skip is not None and all(skip[i : i + n]))
        and not (hidden is not None and all(hidden[i : i + n]))
        and not (glued is not None and ((glued[i] and not open_ends[0])
                                        or (i + n < len(glued) and glued[i + n] and not open_ends[1])))
        for i in range(len(answer_tokens) - n + 1)
    )


def echoed(answer_tokens: Sequence[str], question_tokens: Sequence[str], min_run: int) -> list[bool]:
    """For each answer token, whether it lies in a run of at least ``min_run`` tokens copied, in order, from the question."""
    masked = [False] * len(answer_tokens)
    if min_run < 1:
        return masked
    # current[j]: length of the shared run ending at this answer token and at question token j.
    previous = [0] * (len(question_tokens) + 1)
    for i, token in enumerate(answer_tokens):
        current = [0] * (len(question_tokens) + 1)
        for j, asked in enumerate(question_tokens, start=1):
            if token == asked:
                current[j] = previous[j - 1] + 1
                if current[j] >= min_run:
                    for k in range(i - current[j] + 1, i + 1):
                        masked[k] = True
        previous = current
    return masked


def compounds(tokens: Sequence[str], glued: Sequence[bool], skip: Sequence[bool] | None = None,
              parts_of: frozenset[str] = frozenset()) -> list[str]:
    """``tokens`` with each run glued by ``-`` or ``_`` inside one word made one unit (``xdg-desktop-portal-qtv``).

    Token F1 counts such a compound as one word, as SQuAD's normalisation (which deletes punctuation) would, so
    the package ``xdg-desktop-portal-qtv`` does not mostly match ``xdg-desktop-portal``; a compound that is in
    ``parts_of`` (the reference's own, such as ``0x800-0x8ff``) stays split into its tokens. A unit whose every
    token is marked in ``skip`` is left out.
    """
    units: list[tuple[list[str], bool]] = []
    for i, token in enumerate(tokens):
        marked = bool(skip is not None and skip[i])
        if glued[i] and units:
            units[-1] = (units[-1][0] + [token], units[-1][1] and marked)
        else:
            units.append(([token], marked))
    out: list[str] = []
    for parts, skipped in units:
        if not skipped:
            unit = "-".join(parts)
            out.extend(parts if len(parts) == 1 or unit in parts_of else [unit])
    return out


def _split(words: Sequence[tuple[str, bool, bool]]) -> tuple[list[str], list[bool]]:
    return [token for token, _glued, _address in words], [glued for _token, glued, _address in words]


def token_f1(answer_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    """SQuAD's token F1 between two token lists (0.0 when either is empty)."""
    common = Counter(answer_tokens) & Counter(reference_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(answer_tokens)
    recall = same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def is_short(reference: str) -> bool:
    """Whether ``reference`` is read lexically: at most :data:`SHORT_TOKENS` words.

    A word is what whitespace separates (each CJK character is one), so code of a few words
    (``apt-get install linux-headers-$(uname -r)``, a web address) is short though its punctuation splits
    it into more tokens. Articles and words of punctuation only do not count.
    """
    words = 0
    for chunk in unicodedata.normalize("NFKC", reference).split():
        tokens = normalize_tokens(chunk)
        words += len(tokens) if re.search(f"[{_CJK}]", chunk) else min(1, len(tokens))
    return 0 < words <= SHORT_TOKENS


def match_short(answer: str, references: str | Iterable[str], question: str = "") -> ReferenceMatch:
    """Match ``answer`` against one or several accepted short references.

    With the ``question``, a yes/no question whose references take one side is
    decided by the answer's stance (see the module docstring). Otherwise
    containment of any variant wins, then the best token F1 decides against
    :data:`F1_THRESHOLD`. Ties keep the first variant given. An occurrence
    inside a longer run copied from the ``question`` is not containment, and
    such runs are left out of the answer's tokens for the F1.
    """
    variants = [references] if isinstance(references, str) else list(references)
    tokenized = [(variant, *_split(_read_words(variant))) for variant in variants]  # read once: tokens, glued
    for variant, ref_tokens, _ in tokenized:  # nothing of these survives normalisation: read the text as written
        if not ref_tokens and standalone(answer, variant):
            return ReferenceMatch("match", "verbatim", 1.0, variant)
    words = _read_words(answer)
    answer_tokens, glued = _split(words)
    addresses = [address for _token, _glued, address in words]
    if not answer_tokens:
        return ReferenceMatch("mismatch", "empty", 0.0, variants[0] if variants else "")
    by_stance = match_yes_no(answer, variants, question)
    if by_stance is not None:
        return by_stance
    question_tokens = normalize_tokens(question)
    best = ReferenceMatch("mismatch", "token_f1", 0.0, variants[0] if variants else "")
    for variant, ref_tokens, ref_glued in tokenized:
        # Runs copied from the question that are longer than the reference only restate it.
        masked = echoed(answer_tokens, question_tokens, len(ref_tokens) + 1)
        # Inside a web address, only an address-like reference (a host, a path) is stated: "config" in a URL is not.
        hidden = None if _ADDRESS_LIKE.search(variant) else addresses
        edges = (variant.strip()[:1] in ("-", "_"), variant.strip()[-1:] in ("-", "_"))
        if contains(answer_tokens, ref_tokens, masked, glued, hidden=hidden, open_ends=edges):
            return ReferenceMatch("match", "containment", 1.0, variant)
        own = frozenset(compounds(ref_tokens, ref_glued))
        f1 = token_f1(compounds(answer_tokens, glued, masked, own), ref_tokens)
        if f1 > best.score:
            best = ReferenceMatch("match" if f1 >= F1_THRESHOLD else "mismatch", "token_f1", f1, variant)
    return best


_NEIGHBOURS = frozenset(" \t\r\n'\"`()[]{},.:;!?")


def standalone(text: str, reference: str) -> bool:
    """Whether ``reference`` occurs in ``text`` (case aside) standing alone.

    Standing alone: only the text's ends, whitespace, quotes, brackets or sentence punctuation next to
    it, and none of its own characters (so ``>>`` is not in ``>>>``, nor ``=`` in ``x=1``).

    A list marker does not count: a one-character reference that opens its line, followed by a space ("- item").
    """
    ref = reference.strip().lower()
    if not ref:
        return False
    lowered, allowed = text.lower(), _NEIGHBOURS - set(ref)
    start = lowered.find(ref)
    while start >= 0:
        end = start + len(ref)
        bullet = (len(ref) == 1 and not lowered[lowered.rfind("\n", 0, start) + 1 : start].strip()
                  and lowered[end : end + 1] in (" ", "\t"))
        if (start == 0 or lowered[start - 1] in allowed) and (end == len(lowered) or lowered[end] in allowed) and not bullet:
            return True
        start = lowered.find(ref, start + 1)
    return False


def match_yes_no(answer: str, references: Sequence[str], question: str) -> ReferenceMatch | None:
    """The polarity rule: ``None`` unless ``question`` asks yes/no, the references take one side and the answer one."""
    if not question or not references or not is_yes_no_question(question):
        return None
    sides = {stance(ref, question)[0] for ref in references} - {0}
    if len(sides) != 1:
        return None
    expected = sides.pop()
    got, _span = stance(answer, question)
    if got == 0:
        return None
    if got == expected:
        return ReferenceMatch("match", "polarity", 1.0, references[0])
    return ReferenceMatch("contradicts", "polarity", 0.0, references[0])


def match_long(similarity: float, contradiction_kinds: Sequence[str], threshold: float) -> ReferenceMatch:
    """Decide a long reference from its embedding cosine and the detectors' findings.

    Args:
        similarity: cosine between the answer and the reference embeddings.
        contradiction_kinds: kinds of the contradiction findings between
            answer and reference (any kind makes the answer ``contradicts``).
        threshold: cosine at which the answer ``match``-es.
    """
    if contradiction_kinds:
        return ReferenceMatch("contradicts", f"detector:{contradiction_kinds[0]}", similarity)
    return ReferenceMatch("match" if similarity >= threshold else "mismatch", "embedding", similarity)
