"""OpenAI chat-completion bodies and stream chunks for a report (the message is never empty)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ragguard.core.types import Report
from ragguard.endpoints import finish_reason, token_usage

__all__ = ["completion", "completion_chunks", "usage"]


def usage(report: Report, guard: Any) -> dict[str, Any]:
    """OpenAI's ``usage`` for a report: :func:`ragguard.endpoints.token_usage` (the samples' own token
    counts, and the prompt once) with ``total_tokens``, and a ``note`` when something could not be counted.

    The prompt is rebuilt from the report's question and sources, as the pipeline built it.
    """
    from ragguard.generation.prompts import build_messages

    cfg = guard.config.prompt
    prompt = build_messages(report.question, report.sources, cfg.system, cfg.max_context_chars)
    counted = token_usage(getattr(guard, "generator", None), prompt, report.samples)
    out: dict[str, Any] = {"prompt_tokens": counted.prompt_tokens, "completion_tokens": counted.completion_tokens,
                           "total_tokens": counted.total_tokens}
    if counted.notes:
        out["note"] = "; ".join(counted.notes)
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
