"""The one prompt builder used at inference (and, later, for tuning data).

Keeping a single function means a tuned adapter sees exactly the prompt
shape it will be asked with.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragguard.types import Passage

__all__ = ["build_messages", "format_context"]


def format_context(passages: Sequence[Passage], max_chars: int) -> str:
    """Numbered passages, best first, cut to ``max_chars`` in total."""
    parts: list[str] = []
    used = 0
    for number, p in enumerate(passages, 1):
        block = f"[{number}] ({p.doc_id})\n{p.text.strip()}"
        if used + len(block) > max_chars:
            room = max_chars - used
            if room > 80:
                parts.append(block[:room].rstrip() + " …")
            break
        parts.append(block)
        used += len(block) + 2
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
