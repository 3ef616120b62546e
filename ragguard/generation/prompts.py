"""The one prompt builder used at inference (and, later, for tuning data).

Keeping a single function means a tuned adapter sees exactly the prompt
shape it will be asked with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragguard.core.types import Passage

__all__ = ["build_messages", "format_context"]


_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
CJK_WEIGHT = 3  # byte-level BPE tokenizers spend about 3 tokens per Chinese character


def context_cost(text: str) -> int:
    """Budget units of ``text``: one per character, ``CJK_WEIGHT`` per Chinese character.

    Counting Chinese characters as several units keeps a Chinese context
    about as long in tokens as an English one of the same budget.
    """
    return len(text) + (CJK_WEIGHT - 1) * len(_CJK.findall(text))


def _cut(text: str, room: int) -> str:
    """The longest prefix of ``text`` whose cost fits in ``room``."""
    used = 0
    for i, ch in enumerate(text):
        used += CJK_WEIGHT if _CJK.match(ch) else 1
        if used > room:
            return text[:i]
    return text


def format_context(passages: Sequence[Passage], max_chars: int) -> str:
    """Numbered passages, best first, cut to a budget of ``max_chars`` (see :func:`context_cost`)."""
    parts: list[str] = []
    used = 0
    for number, p in enumerate(passages, 1):
        block = f"[{number}] ({p.doc_id})\n{p.text.strip()}"
        cost = context_cost(block)
        if used + cost > max_chars:
            room = max_chars - used
            if room > 80:
                parts.append(_cut(block, room).rstrip() + " …")
            break
        parts.append(block)
        used += cost + 2
    return "\n\n".join(parts)


def build_messages(question: str, passages: Sequence[Passage], system: str, max_context_chars: int) -> list[dict[str, str]]:
    """Chat messages for a RAG question: a system turn and one user turn.

    The context goes into the user turn (small chat models follow it better
    there than in a long system prompt).
    """
    context = format_context(passages, max_context_chars)
    if context:
        user = f"Context:\n{context}\n\nQuestion: {question.strip()}"
    else:
        user = f"Question: {question.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
