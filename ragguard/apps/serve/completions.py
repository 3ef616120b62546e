"""OpenAI chat-completion bodies and stream chunks for a report (the message is never empty)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ragguard.core.types import Report

__all__ = ["completion", "completion_chunks"]


def completion(completion_id: str, created: int, model: str, fingerprint: str | None, report: Report,
               content: str) -> dict[str, Any]:
    """A ``chat.completion`` object: ``content`` as the message, the report in the extra ``ragguard`` field."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": fingerprint,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop", "logprobs": None}],
        "ragguard": report.to_dict(),
    }


def completion_chunks(completion_id: str, created: int, model: str, fingerprint: str | None, report: Report,
                      content: str) -> Iterator[str]:
    """``content`` as server-sent ``chat.completion.chunk`` events (known in full before the first chunk)."""

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": fingerprint,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(content):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop", ragguard=report.to_dict())
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
