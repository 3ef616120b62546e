"""Chat messages to token ids, with the tokenizer's own chat template.

Inference (prompts) and tuning (prompt and answer of a training example)
both build their tokens here, so a tuned model sees at inference exactly the
prompt tokens it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["chat_prompt_ids", "chat_example_ids"]


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a chat prompt, built with the tokenizer's own chat template.

    This is the one place where messages become tokens: inference
    (:meth:`ragguard.generation.generators.TransformersGenerator.encode_prompt`) and tuning
    (:func:`chat_example_ids`) both go through it.
    """
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True,
                                                return_dict=True)
        ids = encoded["input_ids"]
    else:  # base models without a template: plain concatenation
        text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
        ids = tokenizer(text)["input_ids"]
    return [int(i) for i in ids]


def chat_example_ids(tokenizer: Any, messages: Sequence[dict[str, str]], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of a training example.

    The prompt ids are exactly what :func:`chat_prompt_ids` gives at inference.
    The answer ids are what the chat template puts after them for an assistant
    turn (the answer and its end-of-turn tokens); when a template does not
    extend the prompt that way, the answer is tokenized alone and closed with
    the end-of-sequence token.
    """
    prompt = chat_prompt_ids(tokenizer, messages)
    eos = getattr(tokenizer, "eos_token_id", None)
    if getattr(tokenizer, "chat_template", None):
        turn = list(messages) + [{"role": "assistant", "content": answer}]
        encoded = tokenizer.apply_chat_template(turn, add_generation_prompt=False, tokenize=True, return_dict=True)
        full = [int(i) for i in encoded["input_ids"]]
        if full[: len(prompt)] == prompt and len(full) > len(prompt):
            return prompt, full[len(prompt) :]
        answer_ids = [int(i) for i in tokenizer(answer, add_special_tokens=False)["input_ids"]]
    else:
        answer_ids = [int(i) for i in tokenizer(" " + answer.strip())["input_ids"]]
    if isinstance(eos, int):
        answer_ids.append(eos)
    return prompt, answer_ids
