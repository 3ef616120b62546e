"""Scoring answers that were generated elsewhere (``ragguard check``).

Any LLM can produce the samples; ragguard clusters them, runs the
contradiction detectors and returns the same report as ``ask``.

A sample is an answer string, or an object with its ``text`` and, optionally,
its token log-probabilities: either the list itself (``"logprobs": [...]``,
natural logs, one per token, or the ``logprobs`` object of an
OpenAI-compatible response) or its summary (``logprob_mean``,
``logprob_min``, ``tokens``). Samples with log-probabilities get the
``logprob_*`` fields of ``ask``, and ``semantic_entropy_weighted`` is filled
in when every sample of a record has a mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from ragguard._text import clean_value, shorten
from ragguard.apps.records import json_problem, misspelled
from ragguard.config import Config
from ragguard.core.consistency import ConsistencyChecker, ConsistencyResult, ConsistencySettings
from ragguard.core.protocols import Embedder
from ragguard.core.signals import logprob_summary
from ragguard.core.types import Passage, Report, Sample
from ragguard.endpoints import mark_single_sample
from ragguard.errors import UsageError
from ragguard.generation.nli import NLIModel

__all__ = [
    "check",
    "check_record",
    "record_from_csv",
    "checker_from_config",
    "default_embedder",
    "nli_from_config",
    "report_from_result",
    "sample_from_input",
    "settings_from_config",
]


@functools.lru_cache(maxsize=4)
def default_embedder(model: str, device: str, batch_size: int) -> Embedder:
    """One embedder per setting per process: repeated ``check`` calls must not reload the model."""
    from ragguard.generation.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model, device, batch_size)


def settings_from_config(config: Config) -> ConsistencySettings:
    """The consistency thresholds of ``config`` (see :meth:`ragguard.config.ConsistencyConfig.settings`)."""
    return config.consistency.settings()


def nli_from_config(config: Config) -> NLIModel | None:
    """The configured NLI model (loaded once per process, weights on first use), or ``None``."""
    c = config.consistency
    if not c.nli_model:
        return None
    from ragguard.generation.nli import load_nli

    return load_nli(c.nli_model, c.nli_device, c.nli_batch_size)


def checker_from_config(
    config: Config, embedder: Embedder, nli: NLIModel | None = None, model_sha256: str | None = None
) -> ConsistencyChecker:
    """A :class:`ConsistencyChecker` with the config's thresholds, NLI model and calibration.

    ``model_sha256``: the weights that wrote the answers, when known (see
    :func:`ragguard.apps.calibration_io.resolve_calibration`).
    """
    from ragguard.apps.calibration_io import resolve_calibration, warn_unused_gate

    calibration = resolve_calibration(config, model_sha256)
    warn_unused_gate(config, calibration)
    return ConsistencyChecker(embedder, settings_from_config(config), nli if nli is not None else nli_from_config(config),
                              calibration=calibration)


def report_from_result(question: str, result: ConsistencyResult) -> Report:
    """Wrap a :class:`ConsistencyResult` into a :class:`Report` (no sources or fingerprint yet)."""
    return Report(
        question=question,
        answer=result.answer,
        verdict=result.verdict,
        agreement=result.agreement,
        semantic_entropy=result.semantic_entropy,
        semantic_entropy_weighted=result.semantic_entropy_weighted,
        samples=result.samples,
        clusters=result.clusters,
        contradictions=result.contradictions,
        confidence=result.confidence,
        grounded=result.grounded,
        grounding=result.grounding.to_dict() if result.grounding is not None else None,
        warnings=list(result.warnings),
        calibrated=result.calibrated,
        calibration=result.calibration,
    )


_SAMPLE_KEYS = ("text", "logprobs", "logprob_mean", "logprob_min", "tokens", "truncated", "finish_reason")
_RECORD_KEYS = ("question", "samples", "context")
# A log-probability is at most 0; servers' float32 rounding can put a near-certain token a hair above.
_LOGPROB_SLACK = 1e-6


_QUOTE_LIMIT = 80


def _quoted(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters with its type and length
    named when cut: a message quotes what it refuses, never a whole 170 KB log-probability object."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" of length {len(value)}" if isinstance(value, (str, bytes, Sequence, Mapping)) else ""
    return f"{shorten(text, limit)} ({type(value).__name__}{size})"


def _logprob(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where} is {_quoted(value)}: give a natural-log probability, a finite number at most 0")
    if value > _LOGPROB_SLACK:
        raise UsageError(f"{where} is {_quoted(value)}, above 0: give natural-log probabilities (log p), "
                         "not probabilities")
    return min(float(value), 0.0)


def _token_logprobs(values: Any, where: str) -> list[float]:
    """The token log-probabilities of a sample's ``logprobs``, in the shapes servers return them.

    A list of numbers; OpenAI's chat ``logprobs`` object (``{"content": [{"token", "logprob", ...}, ...]}``)
    or its ``content`` list of objects with a ``logprob``; or the completions API's
    ``{"token_logprobs": [...]}``.
    """
    if isinstance(values, Mapping):
        key = next((k for k in ("content", "token_logprobs") if k in values), None)
        if key is None:
            raise UsageError(f"{where} is an object without 'content' or 'token_logprobs' (keys "
                             f"{_quoted(sorted(map(str, values)))}): give a list of token log-probabilities, or "
                             "the logprobs object of an OpenAI-compatible response")
        values, where = values[key], f"{where}.{key}"
        if values is None:  # OpenAI sends "content": null when the answer has no tokens
            raise UsageError(f"{where} is null: leave 'logprobs' out when the answer has no log-probabilities")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise UsageError(f"{where} is {_quoted(values)}: give a list of token log-probabilities")
    if not values:
        raise UsageError(f"{where} is empty: leave it out when the answer has no log-probabilities")
    out = []
    for j, v in enumerate(values):
        if isinstance(v, Mapping):  # one token of OpenAI's content list: {"token", "logprob", "bytes", "top_logprobs"}
            if "logprob" not in v:
                raise UsageError(f"{where}[{j}] is an object without 'logprob' (keys {_quoted(sorted(map(str, v)))}): "
                                 "give each token as a number or as {\"logprob\": ...}")
            out.append(_logprob(v["logprob"], f"{where}[{j}].logprob"))
        else:
            out.append(_logprob(v, f"{where}[{j}]"))
    return out


def sample_from_input(item: Any, index: int) -> Sample:
    """One input sample (a string, or an object with ``text`` and optional log-probabilities) as a :class:`Sample`.

    Raises:
        UsageError: the sample is neither, has unknown keys, both a ``logprobs``
            list and summary fields, or log-probabilities that are not numbers at most 0.
    """
    where = f"samples[{index}]"
    if isinstance(item, str):
        return Sample(text=item, seed=None, greedy=False, truncated=None)  # whether it was cut is not known
    if not isinstance(item, Mapping):
        raise UsageError(f"{where} is {type(item).__name__}: give an answer string or an object with 'text'")
    unknown = sorted(str(k) for k in item if k not in _SAMPLE_KEYS)
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {shorten(', '.join(map(repr, unknown)), _QUOTE_LIMIT)}: "
                         f"valid keys are {', '.join(_SAMPLE_KEYS)}")
    text = item.get("text")
    if not isinstance(text, str):
        raise UsageError(f"{where} has no 'text' string (got {_quoted(text)}): give the answer as 'text'")
    cut = _truncated(item, where)
    summary_keys = [k for k in ("logprob_mean", "logprob_min", "tokens") if item.get(k) is not None]
    if item.get("logprobs") is not None:
        if summary_keys:
            raise UsageError(f"{where} has both 'logprobs' and {', '.join(summary_keys)}: give the list or its summary")
        summary = logprob_summary(_token_logprobs(item["logprobs"], f"{where}.logprobs"))
        return Sample(text=text, seed=None, greedy=False, truncated=cut, **summary)
    mean = _logprob(item["logprob_mean"], f"{where}.logprob_mean") if item.get("logprob_mean") is not None else None
    low = _logprob(item["logprob_min"], f"{where}.logprob_min") if item.get("logprob_min") is not None else None
    if mean is not None and low is not None and low > mean + _LOGPROB_SLACK:
        raise UsageError(f"{where}.logprob_min {low!r} is above its logprob_mean {mean!r}: check the two fields")
    tokens = item.get("tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise UsageError(f"{where}.tokens is {_quoted(tokens)}: give the number of scored tokens, an integer at least 0")
    return Sample(text=text, seed=None, greedy=False, logprob_mean=mean, logprob_min=low, tokens=tokens, truncated=cut)


def _truncated(item: Mapping[str, Any], where: str) -> bool | None:
    """Whether the answer was cut at its length limit: ``truncated`` (true/false), or the server's ``finish_reason``
    (``"length"``: cut; any other: ended on its own); ``None`` (reported as null) when the input does not say."""
    cut, reason = item.get("truncated"), item.get("finish_reason")
    if cut is not None and not isinstance(cut, bool):
        raise UsageError(f"{where}.truncated is {_quoted(cut)}: give true or false")
    if reason is not None and not isinstance(reason, str):
        raise UsageError(f"{where}.finish_reason is {_quoted(reason)}: give the server's string (\"stop\", \"length\")")
    by_reason = None if reason is None else reason == "length"
    if cut is not None and by_reason is not None and cut != by_reason:
        raise UsageError(f"{where} has truncated {str(cut).lower()} but finish_reason {reason!r}: give one of the two")
    return cut if cut is not None else by_reason


CHECK_SINGLE_SAMPLE_NOTE = ("only one answer was drawn, so the verdict does not measure consistency and confidence "
                            "is 0 (give 3 or more answers per record)")
# Characters that show nothing on their own: format characters (zero-width space U+200B, joiners, the
# BOM), combining and enclosing marks with no base, controls and separators.
_INVISIBLE = frozenset({"Cf", "Mn", "Me", "Cc", "Zs", "Zl", "Zp"})


def _invisible(text: str) -> bool:
    """Whether ``text`` is non-empty and shows nothing (only whitespace and invisible characters)."""
    return bool(text) and all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in text)


def _empty_if_invisible(samples: list[Sample], notes: list[str]) -> list[Sample]:
    """Answers made only of invisible characters are empty answers, as whitespace-only ones are
    (not a consistent answer "\u200b" voted with confidence 1.0); a note names them."""
    blank = [i for i, s in enumerate(samples) if s.text.strip() and _invisible(s.text)]
    if not blank:
        return samples
    chars = sorted({ch for i in blank for ch in samples[i].text if not ch.isspace()})
    named = ", ".join(f"U+{ord(ch):04X}" for ch in chars[:3]) + (", ..." if len(chars) > 3 else "")
    where = ", ".join(f"samples[{i}]" for i in blank[:5]) + (", ..." if len(blank) > 5 else "")
    notes.append(f"{where} held only invisible characters ({named}): counted as empty")
    return [dataclasses.replace(s, text="") if i in blank else s for i, s in enumerate(samples)]


def _passages(context: Any) -> list[str]:
    """``context`` as a list of passage texts: a string, or a list of strings or of objects with a
    ``text`` string (the shape ``tune`` reads); anything else is refused rather than read as its repr."""
    if context is None:
        return []
    if isinstance(context, str):
        return [context]
    if isinstance(context, Mapping) or not isinstance(context, Sequence):
        raise UsageError(f"'context' is {type(context).__name__}: give a passage string or a list of passages "
                         "(strings, or objects with 'text')")
    texts = []
    for i, item in enumerate(context):
        mapping = isinstance(item, Mapping)
        text = item.get("text") if mapping else item
        if not isinstance(text, str):
            what = f"{type(item).__name__} without a 'text' string" if mapping else type(item).__name__
            raise UsageError(f"context[{i}] is {what}: give each passage as a string or an object with 'text'")
        texts.append(text)
    return texts


def check(
    question: str,
    samples: Sequence[str | Mapping[str, Any]],
    context: str | Sequence[str] | None = None,
    *,
    embedder: Embedder | None = None,
    config: Config | None = None,
    nli: NLIModel | None = None,
    checker: ConsistencyChecker | None = None,
) -> Report:
    """Score externally generated answers to ``question``.

    Args:
        question: the question the samples answer.
        samples: the answers (at least one): strings, or objects
            ``{"text": ..., "logprobs": [...]}`` or ``{"text": ...,
            "logprob_mean": ..., "logprob_min": ..., "tokens": ...}`` that also
            carry the answer's token log-probabilities (natural logs). None of
            them is treated as the greedy answer, so size ties go to the lowest
            cluster id.
        context: passages the answers were generated from (a string, or a list of
            strings or of objects with ``text``); carried in the report's
            ``sources`` so the evidence travels with the verdict.
        embedder: defaults to the configured (embedded) sentence embedder.
        config: thresholds; defaults to :class:`Config`.
        nli: an NLI model; defaults to ``consistency.nli_model`` of the config (none by default).
        checker: a ready checker (:func:`checker_from_config`), to score many records with one
            calibration read once; ``embedder``, ``config`` and ``nli`` then make no checker.
    """
    cfg = config or Config()
    notes: list[str] = []
    question = clean_value(question, "the question", notes)
    samples = clean_value(list(samples), "samples", notes) if isinstance(samples, (list, tuple)) else samples
    passages = clean_value(_passages(context), "context", notes)
    if not isinstance(question, str):
        what = "null" if question is None else f"{type(question).__name__}, not a string"
        raise UsageError(f"'question' is {what}: give the question its samples answer as text")
    if not question.strip():
        raise UsageError("'question' is empty: every record needs the question its samples answer")
    if isinstance(samples, str) or not isinstance(samples, Sequence) or not samples:
        raise UsageError("'samples' must be a non-empty list of answer strings")
    samples_ = _empty_if_invisible([sample_from_input(s, i) for i, s in enumerate(samples)], notes)
    if checker is None:
        if embedder is None and cfg.embedder.backend != "sentence-transformers":
            from ragguard.generation.backends import build_embedder

            embedder = build_embedder(cfg.embedder)
        if embedder is None:
            embedder = default_embedder(cfg.embedder.model, cfg.embedder.device, cfg.embedder.batch_size)
        checker = checker_from_config(cfg, embedder, nli)
    result = checker.check(question.strip(), samples_, passages)
    report = report_from_result(question.strip(), result)
    report.warnings[:0] = notes
    mark_single_sample(report, CHECK_SINGLE_SAMPLE_NOTE)  # ask's note advises --samples: check has none
    report.sources = [
        Passage(doc_id="context", chunk_id=f"context#{i}", text=text, score=1.0)
        for i, text in enumerate(passages)
        if text.strip()
    ]
    return report


_SAMPLE_COLUMN = re.compile(r"sample_(\d+)")


def _samples_cell(value: str) -> list[Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the 'samples' cell is not a JSON list ({json_problem(exc)}): write it as "
                         '["first answer", "second answer"], or use sample_1, sample_2, ... columns') from None
    if not isinstance(parsed, list):
        raise UsageError(f"the 'samples' cell holds {type(parsed).__name__}, not a JSON list: write it as "
                         '["first answer", "second answer"]')
    return parsed


def _context_cell(value: str) -> str | list[Any]:
    """A ``context`` cell: a JSON list of passages (strings or ``{"text": ...}``), or else one passage as written (a passage may
    well start with ``[``: a citation marker ``[1] Staff get...``, a markdown link)."""
    if value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
        if isinstance(parsed, list) and all(  # [] (pandas' empty list) is no context, as before
                isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str)) for p in parsed):
            return parsed
    return value


def record_from_csv(row: dict[str, Any]) -> dict[str, Any]:
    """A ``check`` record from one CSV row (every cell a string).

    The layout (also in the README): a ``question`` column, and the samples either in a
    ``samples`` cell holding a JSON list (``["25 days.", "Twenty-five days."]``) or in
    ``sample_1``, ``sample_2``, ... columns (in number order; empty cells skipped, so rows may
    have different counts), not both. An optional ``context`` cell is a JSON list of passage
    strings when it reads as one, else one passage as written.

    Raises:
        UsageError: a ``samples`` cell that is not a JSON list, or both layouts in one row.
    """
    data = {k: v for k, v in row.items() if not _SAMPLE_COLUMN.fullmatch(k)}
    numbered = sorted(((int(m.group(1)), v) for k, v in row.items() if (m := _SAMPLE_COLUMN.fullmatch(k))),
                      key=lambda item: item[0])
    columns = [v for _, v in numbered if isinstance(v, str) and v.strip()]
    cell = row.get("samples")
    if isinstance(cell, str) and cell.strip():
        if columns:
            raise UsageError("the row has both a 'samples' cell and sample_N columns: use one of the two")
        data["samples"] = _samples_cell(cell)
    elif numbered:
        data["samples"] = columns
    context = row.get("context")
    if isinstance(context, str):
        if context.strip():
            data["context"] = _context_cell(context)
        else:
            data.pop("context")
    return data


def check_record(data: dict[str, Any], embedder: Embedder, config: Config,
                 checker: ConsistencyChecker | None = None) -> Report:
    """Score one input record ``{"question", "samples", "context"?}`` (samples as :func:`check` takes them).

    ``checker``: one made once for the whole file (:func:`checker_from_config`), so the calibration is
    read, and a config error raised, once rather than per record.
    """
    for field, what in (("question", ""), ("samples", " (a list of answers)")):
        if field not in data:  # "Question", "Samples": name the key that was meant
            raise UsageError(f"record has no {field!r} field{misspelled(data, field) or what}")
    report = check(data["question"], data["samples"], data.get("context"), embedder=embedder, config=config,
                   checker=checker)
    for key in sorted(str(k) for k in data if k not in _RECORD_KEYS):  # ids and labels of the caller's own ride along
        close = difflib.get_close_matches(key.lower(), _RECORD_KEYS, n=1, cutoff=0.75)
        if close:  # a typo would score the record without what it meant to give
            report.warnings.append(f"field {_quoted(key)} is not read (did you mean {close[0]!r}?)")
    return report
