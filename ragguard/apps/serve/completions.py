"""OpenAI chat-completion bodies and stream chunks for a report (the message is never empty)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ragguard.core.types import Report
from ragguard.endpoints import finish_reason

__all__ = ["completion", "completion_chunks", "usage"]


def usage(report: Report, guard: Any) -> dict[str, Any]:
    """OpenAI's ``usage`` for a report: tokens the model read and wrote for it.

    ``completion_tokens`` adds up every sample's ``tokens`` (all the answers
    drawn, not only the voted one: that is what was generated).
    ``prompt_tokens`` counts the prompt once, as OpenAI does for ``n``
    choices: the ragguard prompt is rebuilt from the report's question and
    sources (as the pipeline built it) and encoded with the generator's chat
    template. A generator without a tokenizer, or samples without token
    counts, give 0 for that part and a ``note`` that says so.
    """
    notes: list[str] = []
    counts = [s.tokens for s in report.samples]
    completion_tokens = sum(t for t in counts if t is not None)
    if any(t is None for t in counts):
        notes.append(f"{sum(t is None for t in counts)} of {len(counts)} samples carry no token count "
                     "(not counted in completion_tokens)")
    prompt_tokens = 0
    encode = getattr(getattr(guard, "generator", None), "encode_prompt", None)
    if report.samples and callable(encode):
        from ragguard.generation.prompts import build_messages

        cfg = guard.config.prompt
        prompt_tokens = len(encode(build_messages(report.question, report.sources, cfg.system, cfg.max_context_chars)))
    elif report.samples:
        notes.append("prompt_tokens is 0: the generator has no tokenizer to count the prompt with")
    out: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}
    if notes:
        out["note"] = "; ".join(notes)
    return out


def completion(completion_id: str, created: int, model: str, fingerprint: str | None, report: Report,
               content: str, tokens: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object: ``content`` as the message, ``tokens`` as ``usage`` (see :func:`usage`),
    the report in the extra ``ragguard`` field; ``finish_reason`` is ``"length"`` when the voted answer was
    cut at ``max_tokens`` (:func:`~ragguard.endpoints.finish_reason`)."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": fingerprint,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason(report), "logprobs": None}],
        "usage": tokens,
        "ragguard": report.to_dict(),
    }


def completion_chunks(completion_id: str, created: int, model: str, fingerprint: str | None, report: Report,
                      content: str, tokens: dict[str, Any] | None = None) -> Iterator[str]:
    """``content`` as server-sent ``chat.completion.chunk`` events (known in full before the first chunk);
    the last one carries ``finish_reason``, ``usage`` and the report."""

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": fingerprint,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(content):
        yield chunk({"content": piece}, None)
    yield chunk({}, finish_reason(report), usage=tokens, ragguard=report.to_dict())
    yield "data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    """Word-sized pieces whose concatenation is exactly ``text``."""
    pieces: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i].isspace() and not text[i - 1].isspace():
            pieces.append(text[start:i])
            start = i
    if text:
        pieces.append(text[start:])
    return pieces
