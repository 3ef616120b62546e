"""Tuning records -> chat messages -> token ids with the prompt masked out of the labels.

Two record shapes, in ``.jsonl`` or ``.json`` (a list), as read by
:func:`ragguard.apps.records.read_records`:

* instruction records: ``instruction``, optional ``input``, ``output``, optional ``system``
  (the shape of the ``huanhuan.json`` of seed 003);
* RAG records: ``question``, ``context`` (a string, or a list of strings or of
  ``{"text", "doc_id"}`` objects) and ``answer``. They become messages through
  :func:`ragguard.generation.prompts.build_messages`, the function ``ragguard ask`` uses,
  so the adapter learns the exact prompt it will be asked with.

Messages become tokens through :func:`ragguard.generation.chat.chat_example_ids`,
the model's own chat template (the seed's script pasted Llama-3 markers into
a Qwen model). Bad records are returned with their line numbers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragguard.apps.records import BadRecord, read_records
from ragguard.core.types import Passage
from ragguard.errors import UsageError
from ragguard.generation.prompts import build_messages
from ragguard.tuning.config import TunePromptSection

__all__ = ["Example", "TuneData", "record_messages", "load_examples", "split_examples"]


@dataclass(frozen=True)
class Example:
    """One tokenized training example."""

    line: int
    kind: str  # "rag" or "instruction"
    input_ids: list[int]
    labels: list[int]  # -100 on the prompt
    prompt_tokens: int
    truncated: bool


@dataclass
class TuneData:
    """The usable examples of a file and the records that could not be used."""

    examples: list[Example]
    bad: list[BadRecord]
    records: int
    unit: str = "line"  # what a BadRecord's number counts: "line" (.jsonl) or "item" (a .json list's position)

    def where(self, path: Path | str, bad: BadRecord) -> str:
        """``file:N`` for a line, ``file item N`` for a position in a .json list (not a line an editor jumps to)."""
        return f"{path}:{bad.line}" if self.unit == "line" else f"{path} item {bad.line}"

    def bad_summary(self, limit: int = 5) -> str:
        shown = "; ".join(f"{self.unit} {b.line}: {b.error}" for b in self.bad[:limit])
        more = f" (+{len(self.bad) - limit} more)" if len(self.bad) > limit else ""
        return shown + more


def _text(data: dict[str, Any], key: str, required: bool) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing field '{key}'")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"field '{key}' is empty")
    return value


def _passages(context: Any) -> list[Passage]:
    items = context if isinstance(context, list) else [context]
    passages: list[Passage] = []
    for number, item in enumerate(items, 1):
        if isinstance(item, str):
            doc_id, text = f"context-{number}", item
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            doc_id, text = str(item.get("doc_id") or f"context-{number}"), item["text"]
        else:
            raise ValueError("field 'context' must be a string, or a list of strings or of {\"text\", \"doc_id\"} objects")
        if text.strip():
            passages.append(Passage(doc_id=doc_id, chunk_id=f"{doc_id}#{number}", text=text, score=1.0))
    return passages


def record_messages(data: dict[str, Any], prompt: TunePromptSection) -> tuple[str, list[dict[str, str]], str]:
    """(kind, chat messages, answer) of one record.

    Raises:
        ValueError: the record has neither shape, or a field is missing or empty.
    """
    if "question" in data or "answer" in data:
        question = _text(data, "question", True)
        answer = _text(data, "answer", True)
        context = data.get("context")
        passages = _passages("" if context is None else context)  # null: no context, as a missing field
        return "rag", build_messages(question, passages, prompt.system, prompt.max_context_chars), answer.strip()
    if "instruction" in data or "output" in data:
        instruction = _text(data, "instruction", True)
        extra = _text(data, "input", False)
        output = _text(data, "output", True)
        system = _text(data, "system", False) or prompt.instruction_system
        user = instruction.strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return "instruction", messages, output.strip()
    raise ValueError("expected instruction/input/output or question/context/answer fields, got "
                     + (", ".join(sorted(data)) or "no fields"))


def load_examples(path: str | Path, tokenizer: Any, prompt: TunePromptSection, max_length: int) -> TuneData:
    """Read and tokenize every record of ``path``.

    An answer that does not fit in ``max_length`` is cut (and the example
    marked ``truncated``); a prompt that leaves no room for the answer makes
    the record bad.

    Raises:
        UsageError: the file is missing, unreadable or of an unsupported type.
    """
    from ragguard.generation.chat import chat_example_ids

    p = Path(path)
    if p.suffix.lower() not in (".jsonl", ".json"):
        shown = f"not {p.suffix}" if p.suffix else "a file with no extension"
        raise UsageError(f"{str(p)!r}: tuning data must be .jsonl or .json (a list of records), {shown}")
    examples: list[Example] = []
    bad: list[BadRecord] = []
    records = 0
    for record in read_records(p):
        records += 1
        if isinstance(record, BadRecord):
            bad.append(record)
            continue
        try:
            kind, messages, answer = record_messages(record.data, prompt)
        except ValueError as exc:
            bad.append(BadRecord(record.line, str(exc)))
            continue
        prompt_ids, answer_ids = chat_example_ids(tokenizer, messages, answer)
        if len(prompt_ids) >= max_length:
            bad.append(BadRecord(record.line, f"the prompt is {len(prompt_ids)} tokens, no room for the answer in "
                                              f"train.max_length {max_length}: shorten the context or raise it"))
            continue
        room = max_length - len(prompt_ids)
        truncated = len(answer_ids) > room
        answer_ids = answer_ids[:room]
        examples.append(Example(
            line=record.line, kind=kind, input_ids=prompt_ids + answer_ids,
            labels=[-100] * len(prompt_ids) + answer_ids, prompt_tokens=len(prompt_ids), truncated=truncated,
        ))
    return TuneData(examples, bad, records, "item" if p.suffix.lower() == ".json" else "line")


def split_examples(examples: Sequence[Example], eval_split: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Shuffle with ``seed`` and hold out ``eval_split`` of the examples (at least one when the split is > 0)."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    if eval_split <= 0 or len(order) < 2:
        return order, []
    n_eval = max(1, round(len(order) * eval_split))
    n_eval = min(n_eval, len(order) - 1)
    return order[n_eval:], order[:n_eval]
