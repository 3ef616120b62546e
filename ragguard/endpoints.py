"""What every endpoint over the pipeline shares: per-call settings and the chat reply.

The LangChain components (:mod:`ragguard.integrations.langchain`) and ``ragguard serve``
(:mod:`ragguard.apps.serve`) take the usual chat parameters per call (``temperature``, ``top_p``,
``max_tokens``, ``seed``, ragguard's ``samples``). :func:`call_config` turns them into a config,
with the one rule for ``temperature=0``; :meth:`RagGuard.with_settings
<ragguard.pipeline.RagGuard.with_settings>` then gives the guard that draws with that config.

:func:`token_usage` is the one count of the tokens a report cost (``serve``'s ``usage`` and
``ChatRagGuard``'s ``usage_metadata``).

A chat message never has empty content: when ragguard abstains (the report's ``answer`` is ``""``),
:class:`Refusals` says why in a short sentence, and the report keeps ``answer == ""``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragguard._text import shorten
from ragguard.config import Config
from ragguard.core.types import Report, Sample
from ragguard.errors import ConfigError

__all__ = ["SINGLE_SAMPLE_NOTE", "TEMPERATURE_ZERO_NOTE", "add_notes", "call_config", "finish_reason",
           "mark_single_sample", "Refusals", "TokenUsage", "token_usage"]

TEMPERATURE_ZERO_NOTE = (
    "temperature=0: only the greedy answer was drawn, so the verdict does not measure consistency "
    "(use a temperature > 0)"
)
SINGLE_SAMPLE_NOTE = (
    "only one answer was drawn, so the verdict does not measure consistency and confidence is 0 "
    "(draw 3 or more, e.g. --samples 5)"
)


def mark_single_sample(report: Report, note: str = SINGLE_SAMPLE_NOTE) -> None:
    """Say that a report of one sample measured no agreement.

    One answer always sits alone in its cluster, so its agreement is 1.0 by
    construction, not by evidence. The verdict keeps the contract's values
    (``consistent`` still means no second answer disagreed) and ``agreement``
    keeps its definition (the winner's share), but ``confidence``, the number
    gates and rankings read, is set to 0 and ``note`` (:data:`SINGLE_SAMPLE_NOTE`, or a caller's own
    wording of its advice) says why.
    """
    if len(report.samples) != 1:
        return
    report.confidence = 0.0
    if note not in report.warnings and TEMPERATURE_ZERO_NOTE not in report.warnings:
        report.warnings.append(note)


def add_notes(report: Report, notes: list[str]) -> None:
    """Add an endpoint's notes (from :func:`call_config`) to ``report``, once each.

    :data:`TEMPERATURE_ZERO_NOTE` replaces :data:`SINGLE_SAMPLE_NOTE`: it says the same and why.
    """
    for note in notes:
        if note == TEMPERATURE_ZERO_NOTE and SINGLE_SAMPLE_NOTE in report.warnings:
            report.warnings.remove(SINGLE_SAMPLE_NOTE)
        if note not in report.warnings:
            report.warnings.append(note)


def finish_reason(report: Report) -> str:
    """OpenAI's ``finish_reason`` for the answer a chat endpoint returns: ``"length"`` when it was cut at
    the length limit (``max_tokens``, ``sampling.max_new_tokens``), else ``"stop"``.

    The returned answer is the voted cluster's representative, the text of one or more samples (the
    samples whose text is exactly ``report.answer``); it was cut when each of them is ``truncated``
    (one that ended on its own shows the text is whole). A cut sample outside the answer does not
    count, and an abstention (``answer == ""``, sent as a refusal) is ``"stop"``.
    """
    if not report.answer:
        return "stop"
    cut = [s.truncated for s in report.samples if s.text == report.answer]
    return "length" if cut and all(cut) else "stop"


@dataclass(frozen=True)
class TokenUsage:
    """The tokens one answer cost (see :func:`token_usage`); ``notes`` say what could not be counted."""

    prompt_tokens: int
    completion_tokens: int
    notes: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def token_usage(generator: Any, prompt: Sequence[dict[str, str]], samples: Sequence[Sample]) -> TokenUsage:
    """The tokens the model read and wrote for a report: what ``serve`` puts in ``usage`` and
    ``ChatRagGuard`` in ``usage_metadata``, so both give the same numbers for the same record.

    ``completion_tokens`` adds up the samples' own ``tokens`` (counted as they were generated, the
    stop token included where the backend reports it), for every sample drawn, not only the voted
    one: like OpenAI's ``n > 1``, that is what was generated. A sample without a count (a backend
    that gives no log-probabilities) adds nothing, and a note says how many. ``prompt_tokens``
    counts ``prompt`` (the messages the samples were drawn from) once, as one prefill serves every
    sample, encoded with the generator's chat template (``encode_prompt``), or as the model server
    counted it (``reported_prompt_tokens``, the ``openai`` backend's record of ``usage.prompt_tokens``);
    a generator with neither gives 0 and a note. No samples (ragguard abstained before generating): nothing ran, all 0.
    """
    if not samples:
        return TokenUsage(0, 0)
    notes: list[str] = []
    counts = [s.tokens for s in samples]
    completion_tokens = sum(t for t in counts if t is not None)
    if any(t is None for t in counts):
        notes.append(f"{sum(t is None for t in counts)} of {len(counts)} samples carry no token count "
                     "(not counted in completion_tokens)")
    encode = getattr(generator, "encode_prompt", None)
    reported = getattr(generator, "reported_prompt_tokens", None)  # a server's own count (openai backend)
    counted = reported(list(prompt)) if not callable(encode) and callable(reported) else None
    if callable(encode):
        prompt_tokens = len(encode(list(prompt)))
    elif counted is not None:
        prompt_tokens = counted
    else:
        prompt_tokens = 0
        notes.append("prompt_tokens is 0: the generator has no tokenizer to count the prompt with")
    return TokenUsage(prompt_tokens, completion_tokens, tuple(notes))


def call_config(
    cfg: Config,
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    samples: int | None = None,
    seed: int | None = None,
) -> tuple[Config, list[str]]:
    """``cfg`` with one call's sampling parameters, and the warnings its report should carry.

    ``None`` keeps the config's value. ``max_tokens`` sets ``sampling.max_new_tokens``.
    ``temperature=0`` draws only the greedy answer (``samples=1``, whatever ``samples`` says):
    seeded samples at temperature 0 would all equal it, so the verdict would measure nothing;
    the returned warning says so.

    Raises:
        ConfigError: on a negative or non-numeric temperature, or a value the sampling config refuses.
    """
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if samples is not None:
        changes["samples"] = samples
    if seed is not None:
        changes["seed"] = seed
    if top_p is not None:
        changes["top_p"] = top_p
    if max_tokens is not None:
        changes["max_new_tokens"] = max_tokens
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"temperature must be a number >= 0, got {temperature!r}")
        if temperature == 0:
            changes["samples"] = 1
            notes.append(TEMPERATURE_ZERO_NOTE)
        else:
            changes["temperature"] = float(temperature)
    return (cfg.replace("sampling", **changes) if changes else cfg), notes


@dataclass(frozen=True)
class Refusals:
    """The text a chat reply carries when ragguard abstains (its report's ``answer`` is empty).

    Args:
        off_topic: nothing was generated: the index has nothing relevant (``retrieval.min_score``).
        disagree: the answers disagreed and ``consistency.on_flagged`` is ``"abstain"``;
            ``{answers}`` is replaced by the competing answers, quoted.
        empty: the voted answer itself was empty.
    """

    off_topic: str = "The knowledge base has nothing on this."
    disagree: str = "The answers disagree: {answers}"
    empty: str = "The model gave no answer."

    def __post_init__(self) -> None:
        for name in ("off_topic", "disagree", "empty"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"refusal {name!r} must be a non-empty string, got {value!r}: a chat reply "
                                  "is never empty")

    def reply(self, report: Report) -> str:
        """The message text for ``report``: its answer, or the refusal that says why there is none."""
        if report.answer:
            return report.answer
        if not report.samples:
            return self.off_topic
        if len(report.clusters) > 1 or report.contradictions:
            answers = [c.representative.strip() for c in sorted(report.clusters, key=lambda c: (-c.size, c.id))]
            listed = "; ".join(f'"{shorten(a, 80)}"' for a in answers[:3] if a)
            return self.disagree.replace("{answers}", listed or "(no text)")
        return self.empty

