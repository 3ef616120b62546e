"""The narrow interfaces ragguard's core talks to.

The consistency checker and the pipeline receive objects that satisfy these
protocols, never model names, so tests can hand them small fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ragguard.core.types import Passage

__all__ = ["Embedder", "Generator", "Retriever", "Completion", "NLIModel", "ENTAILMENT", "NEUTRAL", "CONTRADICTION"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return one float32 row per text (shape ``(len(texts), dim)``)."""
        ...


@dataclass(frozen=True)
class Completion:
    """One generated text and the seed that produced it (``None`` = greedy).

    ``token_logprobs`` are the natural-log probabilities of the completion's
    own tokens under the model's raw distribution (before temperature,
    top-k, top-p and the repetition penalty), in order; the stop token that
    ended the completion is included where the backend reports it. ``None``
    when the backend gives none. ``truncated`` is True when the completion hit the length
    limit (``sampling.max_new_tokens``) without a stop token, so it may end mid-sentence.
    """

    text: str
    seed: int | None
    token_logprobs: tuple[float, ...] | None = None
    truncated: bool = False


@runtime_checkable
class Generator(Protocol):
    """Produces completions for a chat prompt."""

    name: str

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        """Generate one completion per entry of ``seeds`` in one batched pass.

        A ``None`` seed asks for the greedy (deterministic) answer; an int asks
        for a sample drawn with that seed. Each sample must depend only on its
        own seed, not on the other entries.
        """
        ...


class BatchGenerator:
    """Base of the generators that answer several prompts in one pass.

    Subclasses implement :meth:`generate_batch`; :meth:`generate` (the
    :class:`Generator` protocol) is one prompt of it.
    """

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        """See :meth:`Generator.generate`."""
        return self.generate_batch([messages], [seeds])[0]

    def generate_batch(
        self, conversations: Sequence[Sequence[dict[str, str]]], seeds: Sequence[Sequence[int | None]]
    ) -> list[list[Completion]]:
        """One list of completions per conversation, each with its own seeds."""
        raise NotImplementedError


@runtime_checkable
class Retriever(Protocol):
    """Returns the passages most relevant to a query."""

    def search(self, query: str, k: int) -> list[Passage]:
        """Return up to ``k`` passages, best first."""
        ...


# Columns of an NLI model's predictions.
ENTAILMENT, NEUTRAL, CONTRADICTION = 0, 1, 2


@runtime_checkable
class NLIModel(Protocol):
    """Scores whether a premise entails, is neutral to, or contradicts a hypothesis."""

    name: str

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Return shape ``(len(pairs), 3)``: P(entailment), P(neutral), P(contradiction) per pair."""
        ...
