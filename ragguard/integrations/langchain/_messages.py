"""Between LangChain's and ragguard's shapes: messages, token usage, documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, ChatMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata

from ragguard.core.types import Passage, Sample
from ragguard.endpoints import token_usage
from ragguard.errors import UsageError

__all__ = ["block_text", "last_human_text", "chat_dicts", "truncate", "usage", "documents"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def block_text(content: Any, where: str) -> str:
    """The text of a message's content; refuses images, files and other non-text blocks."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise UsageError(f"{where} reads text only, got a {kind!r} content block: send text messages")
    return "".join(parts)


def last_human_text(messages: Sequence[BaseMessage]) -> str:
    """The text of the last human (or ``user`` role) message: the question."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or (isinstance(message, ChatMessage) and message.role == "user"):
            return block_text(message.content, "ragguard")
    raise UsageError("no human message to answer: end the conversation with a HumanMessage holding the question")


def chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as the ``{"role", "content"}`` dicts a ragguard generator takes."""
    out = []
    for message in messages:
        role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
        if role is None:
            raise UsageError(
                f"ChatRagGuard cannot take a {message.type!r} message (it has no tool calling): "
                "send system, human and AI messages"
            )
        out.append({"role": role, "content": block_text(message.content, "ChatRagGuard")})
    return out


def truncate(text: str, stop: Sequence[str] | None) -> str:
    """Cut ``text`` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop or ():
        if s:
            at = text.find(s)
            if 0 <= at < cut:
                cut = at
    return text[:cut]


def usage(generator: Any, prompt: list[dict[str, str]], samples: Sequence[Sample]) -> UsageMetadata:
    """``usage_metadata`` of a report: :func:`ragguard.endpoints.token_usage` over its ``samples``
    (``report.samples``), the count ``ragguard serve`` gives as ``usage`` for the same record.

    Input tokens are the prompt once (one prefill, shared by every sample); output tokens are every
    sample's own ``tokens``, not only the voted one's (like OpenAI's ``n > 1``: that is what the answer
    cost).
    """
    counted = token_usage(generator, prompt, samples)
    return UsageMetadata(input_tokens=counted.prompt_tokens, output_tokens=counted.completion_tokens,
                         total_tokens=counted.total_tokens)


def documents(passages: Sequence[Passage], index: Any = None) -> list[Document]:
    """Retrieved passages as Documents: ``page_content`` the text, ``metadata`` doc_id, chunk_id and score.

    With the ``index`` they came from (a :class:`~ragguard.retrieval.index.KnowledgeIndex`), ``metadata``
    also holds ``source`` (LangChain's convention: the source document's path as the index stores it, the
    file of a FAQ row) and the chunk's ``tags`` and ``lang`` when the index has them.
    """
    chunks = getattr(index, "by_chunk_id", None)
    out = []
    for p in passages:
        metadata: dict[str, Any] = {"doc_id": p.doc_id, "chunk_id": p.chunk_id, "score": float(p.score)}
        if chunks is not None:
            record = chunks.get(p.chunk_id) or {}
            metadata["source"] = record.get("source") or p.doc_id
            if record.get("tags") is not None:
                metadata["tags"] = list(record["tags"])
            if record.get("lang") is not None:
                metadata["lang"] = record["lang"]
        out.append(Document(id=p.chunk_id, page_content=p.text, metadata=metadata))
    return out
