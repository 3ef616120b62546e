"""Request fields: the question of a chat request, and its sampling parameters as sampling settings."""

from __future__ import annotations

import math
from typing import Any

from ragguard.apps.serve.http import ApiError
from ragguard.apps.serve.settings import ServeSettings
from ragguard.config import Config, SamplingConfig
from ragguard.endpoints import call_config
from ragguard.errors import ConfigError

__all__ = ["question_of", "sampling_for"]


def _int_field(body: dict[str, Any], name: str, low: int, high: int, what: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"'{name}' must be an integer from {low} to {high} ({what}), got {value!r}",
                       param=name, code="invalid_value")
    return value


def _number_field(body: dict[str, Any], name: str, low: float, high: float, low_open: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bound = "(" if low_open else "["
        raise ApiError(400, f"'{name}' must be a number in {bound}{low:g}, {high:g}], got {value!r}",
                       param=name, code="invalid_value")
    return float(value)


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise ApiError(400, f"messages[{index}] has a non-text content part: ragguard reads text only",
                               param=f"messages[{index}].content", code="invalid_value")
        return "".join(parts)
    raise ApiError(400, f"messages[{index}].content must be a string or a list of text parts",
                   param=f"messages[{index}].content", code="invalid_value")


def question_of(messages: Any) -> str:
    """The last user message: the question ragguard answers from its index."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages",
                       code="invalid_value")
    question = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role' and a 'content'",
                           param=f"messages[{i}]", code="invalid_value")
        if message["role"] == "user":
            question = _message_text(message.get("content"), i)
    if question is None or not question.strip():
        raise ApiError(400, "no non-empty user message: the last user message is the question ragguard answers",
                       param="messages", code="invalid_value")
    return question


def sampling_for(body: dict[str, Any], config: Config, settings: ServeSettings) -> tuple[SamplingConfig, list[str]]:
    """The sampling settings a request asks for (``config.sampling`` changed by its fields) and its report's notes.

    ``temperature=0`` draws only the greedy answer (:func:`ragguard.endpoints.call_config`).
    """
    samples = _int_field(body, "samples", 1, settings.max_samples, "answers drawn")
    seed = _int_field(body, "seed", 0, 2**63 - 1, "the base seed of the samples")
    top_p = _number_field(body, "top_p", 0.0, 1.0, low_open=True)
    limit = settings.max_tokens
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"  # the one the client sent
    tokens = body.get(name)
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ApiError(400, f"'{name}' must be a positive integer, got {tokens!r}", param=name,
                           code="invalid_value")
        if tokens > limit:
            raise ApiError(400, f"'{name}' {tokens} exceeds this server's limit of {limit}: ask for at most "
                                f"{limit}", param=name, code="max_tokens_exceeded")
    temperature = _number_field(body, "temperature", 0.0, 2.0)
    try:
        cfg, notes = call_config(config, temperature=temperature, top_p=top_p, max_tokens=tokens, samples=samples,
                                 seed=seed)
    except ConfigError as exc:
        raise ApiError(400, str(exc), code="invalid_value") from None
    return cfg.sampling, notes
