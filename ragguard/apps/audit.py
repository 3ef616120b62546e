"""Batch audit of a question set: one ``ask`` record per question, a summary and reports.

Work is never lost: each finished question is appended to ``results.jsonl``
and flushed to disk as soon as its generation pass (``batch_questions`` questions)
ends, before the next pass starts. ``resume`` continues an
interrupted run (Ctrl-C or ``kill -9``) without redoing or duplicating a
question; a half-written last line is dropped and that question redone.
Infrastructure errors (the model failed) are kept apart from quality
results, and from invalid input records, everywhere.

Output folder:

* ``audit.json``: what the run was made from (input hash, config hash, index);
* ``results.jsonl``: one record per question (the ``ask`` record plus ``id``,
  ``line``, ``status``, ``reference``, ``reference_match``, ``tags``);
  invalid records and errors are lines too, with ``status`` and ``error``;
* ``summary.json``, ``results.csv`` and ``report.html``: rebuilt from
  ``results.jsonl`` at the end of every run (the last record per question wins).

This module runs the questions; the figures and ``audit diff`` are in
:mod:`ragguard.apps.audit_summary`, reading and writing the folder's files in
:mod:`ragguard.apps.audit_io`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragguard._text import question_problem
from ragguard._version import __version__
from ragguard.apps.audit_io import (
    RESULTS,
    append_record,
    compact_results,
    discard,
    latest_per_id,
    publish,
    read_json,
    read_results,
    stage_csv,
    stage_json,
    write_json,
)
from ragguard.apps.audit_summary import VERDICTS, diff_audits, recorded_weights, summarize
from ragguard.apps.calibration_drift import audit_drift
from ragguard.apps.records import (
    ID_CONTROL,
    BadRecord,
    id_given,
    id_has_control,
    id_key,
    id_trim_note,
    id_typed,
    misspelled,
    no_records,
    read_records,
)
from ragguard.config.schema import TRANSPORT, setting_values
from ragguard.core.consistency import CONTRADICTION_KINDS
from ragguard.core.detectors import detect
from ragguard.core.grounding import added_terms, content_terms
from ragguard.core.reference import ReferenceMatch, is_short, match_long, match_short
from ragguard.errors import (
    ConfigError,
    GenerationError,
    IndexLoadError,
    ModelLoadError,
    OutputError,
    RagGuardError,
    UsageError,
)
from ragguard.generation.models import sha256_of
from ragguard.progress import ProgressBar

log = logging.getLogger("ragguard.audit")

__all__ = ["AuditQuestion", "AuditResult", "ErrorStreak", "load_questions", "run_audit", "summarize", "match_reference",
           "diff_audits"]

REFERENCE_THRESHOLD = 0.6


@dataclass(frozen=True)
class AuditQuestion:
    """A usable question record."""

    id: str
    line: int
    question: str
    reference: str | None
    tags: list[str]
    warnings: tuple[str, ...] = ()  # about the record's text (invalid characters replaced)
    answers: tuple[str, ...] = ()  # other accepted forms of the reference ("59,100", "more than 59100")


@dataclass
class AuditResult:
    """What a run did, for the CLI."""

    out: Path
    summary: dict[str, Any]
    ran: int
    skipped: int  # not asked again: their records from earlier runs stand
    gate_failed: bool = False
    gate_messages: list[str] = field(default_factory=list)
    # The gate is the --fail-under of an earlier run into the folder (recorded, not this run's exit status).
    gate_inherited: bool = False
    # Left out by --only with no record from an earlier run: neither asked nor in the results.
    unselected: int = 0


def load_questions(path: str | Path) -> tuple[list[AuditQuestion], list[dict[str, Any]]]:
    """Read questions; bad records come back as result lines with status ``invalid``."""
    questions: list[AuditQuestion] = []
    invalid: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in read_records(path):
        if isinstance(record, BadRecord):
            invalid.append({"id": f"line-{record.line}", "line": record.line, "status": "invalid", "error": record.error})
            continue
        data = record.data
        raw_id = data.get("id")
        given = id_given(raw_id)
        qid = id_key(raw_id) if given else f"line-{record.line}"  # an id 0 is an id, not a missing one
        trimmed = id_trim_note(raw_id) if given else None
        question = data.get("question")
        problem = None
        if given and not id_typed(raw_id):
            problem = f"'id' must be a string or a whole number, not {type(raw_id).__name__}"
        elif id_has_control(qid):
            problem = ID_CONTROL
        elif question is not None and not isinstance(question, str):
            problem = f"'question' must be a string, not {type(question).__name__}"
        elif not isinstance(question, str) or not question.strip():
            problem = "missing or empty 'question' field" + misspelled(data, "question")
        elif question_problem(question):
            problem = f"'question' has no word in it, only punctuation or symbols: {question.strip()[:40]!r}"
        elif qid in seen:
            problem = f"duplicate id {qid!r}"
        elif re.fullmatch(r"line-\d+", qid) and qid != f"line-{record.line}":
            # the id a row without one (or a bad row) on that line gets: two records would share it
            problem = f"id {qid!r} is reserved for the row on {qid.replace('-', ' ')}: choose another id"
        reference = data.get("reference")
        if problem is None and reference is not None and not isinstance(reference, str):
            problem = "'reference' must be a string"
        answers = data.get("answers") or []
        if isinstance(answers, str):  # a CSV cell: variants separated by "|"
            answers = [a.strip() for a in answers.split("|") if a.strip()]
        if problem is None and not (isinstance(answers, list) and all(isinstance(a, str) for a in answers)):
            problem = "'answers' must be a list of strings (accepted forms of the reference)"
        if problem is None and answers and not (reference or "").strip():
            problem = "'answers' needs a 'reference' (the main expected answer)"
        tags = data.get("tags") or []
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.replace(";", ",").split(",") if t.strip()]
        if problem is None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            problem = "'tags' must be a list of strings"
        elif problem is None:
            tags = [t.strip() for t in tags if t.strip()]  # as a CSV cell's: --only tag:hr selects " hr"
        if problem:
            # Results are keyed by "id", unique per line; the record's own id (maybe a duplicate) rides beside it.
            own = {"record_id": str(data["id"])} if data.get("id") not in (None, "") else {}
            invalid.append({"id": f"line-{record.line}", "line": record.line, **own, "status": "invalid",
                            "error": problem})
            continue
        seen.add(qid)
        questions.append(
            AuditQuestion(qid, record.line, question.strip(), (reference or "").strip() or None, list(tags),
                          (*record.warnings, *([trimmed] if trimmed else [])), tuple(a.strip() for a in answers if a.strip()))
        )
    return questions, invalid


def match_reference(
    answer: str, reference: str, question: str, embedder: Any, threshold: float, answers: Sequence[str] = ()
) -> ReferenceMatch:
    """Compare the voted answer with the expected one: ``match``, ``mismatch`` or ``contradicts``.

    A reference of a few words (and its accepted ``answers``) is read
    lexically, after the yes/no rule for yes/no questions
    (:func:`ragguard.core.reference.match_short`), since a short reference
    never reaches an embedding threshold against a sentence that contains it.
    A longer one is compared by embedding cosine at ``threshold``, and any
    contradiction kind the detectors find makes it ``contradicts``; an answer
    whose content words are all the question's does not match it
    (``restates_question``). The result
    names the rule that decided and its score.
    """
    if not answer.strip():
        return ReferenceMatch("mismatch", "empty", 0.0, reference)
    if is_short(reference):
        return match_short(answer, [reference, *[a for a in answers if is_short(a)]], question)
    vectors = embedder.embed([answer, reference])
    similarity = float(vectors[0] @ vectors[1])
    if content_terms(answer) and not added_terms(answer, question) and added_terms(reference, question):
        # The answer only restates the question ("What is the deadline for ...?"): close to a reference on the
        # same topic by embedding, yet it gives none of what the reference adds.
        return ReferenceMatch("mismatch", "restates_question", similarity)
    kinds = [f.kind for f in detect(answer, reference, question) if f.kind in CONTRADICTION_KINDS]
    return match_long(similarity, kinds, threshold)


_ONLY_EXAMPLES = {"id": "q01,q02", "tag": "payroll", "verdict": "contradiction", "status": "error"}


def _parse_only(only: str) -> tuple[str, list[str]]:
    """``--only KIND:V1,V2`` as ``(kind, [values])``, each trimmed (``id: q01, q02``); an unknown kind or no
    value is refused."""
    kind, _, values = only.partition(":")
    kind = kind.strip()
    if kind not in _ONLY_EXAMPLES:
        raise UsageError(f"--only {only!r} is not understood: use id:ID[,ID...], tag:TAG[,TAG...], "
                         "verdict:VERDICT[,VERDICT...] or status:STATUS[,STATUS...]")
    wanted = [v.strip() for v in values.split(",") if v.strip()]
    if not wanted:
        raise UsageError(f"--only {only!r} names no {kind}: give one or more, e.g. --only {kind}:{_ONLY_EXAMPLES[kind]}")
    return kind, wanted


def _whole_value(only: str, kind: str, wanted: list[str], questions: list[AuditQuestion]) -> list[str]:
    """``--only id:a,b`` names one id when the file has an id ``a,b`` (or a tag, for ``tag:``), as written
    (trimmed, as ids and tags are when read)."""
    whole = only.partition(":")[2].strip()
    if kind == "id" and any(q.id == whole for q in questions):
        return [whole]
    if kind == "tag" and any(whole in q.tags for q in questions):
        return [whole]
    return wanted


def _matches_filter(question: AuditQuestion, previous: dict[str, Any] | None, kind: str, wanted: list[str]) -> bool:
    if kind == "id":
        return question.id in wanted
    if kind == "tag":
        return bool(set(wanted) & set(question.tags))
    return previous is not None and previous.get(kind) in wanted  # verdict or status


def _check_only(only: str, kind: str, wanted: list[str], questions: list[AuditQuestion], qfile: Path) -> None:
    """An ``--only`` that can select nothing is a typo: say which value, and what the file holds, before anything runs."""
    if not questions:
        raise UsageError(f"--only {only!r}: {qfile} holds no valid question")
    known = {"id": [q.id for q in questions], "tag": sorted({t for q in questions for t in q.tags}),
             "verdict": list(VERDICTS), "status": ["ok", "error"]}[kind]
    unknown = ", ".join(repr(v) for v in wanted if v not in known)
    if not unknown:
        return
    if kind == "status" and "invalid" in wanted:
        raise UsageError(f"--only {only!r}: invalid rows are read again on every run, so fixing the row in {qfile} "
                         "is enough; --only status: takes ok or error")
    if kind in ("verdict", "status"):
        raise UsageError(f"--only {only!r}: {unknown} is not a {kind} (use {', '.join(known)})")
    if kind == "id":
        holds = f"its ids run {known[0]} ... {known[-1]}"
    else:
        holds = f"its tags are {', '.join(known)}" if known else "no question has a tag"
    raise UsageError(f"--only {only!r}: no question in {qfile} has the {kind} {unknown} ({holds})")


def _asked_as(previous: dict[str, Any], q: AuditQuestion) -> bool:
    """Whether ``previous`` answers ``q`` as the input now states it (same text, reference and accepted answers)."""
    return (previous.get("question") == q.question and previous.get("reference") == q.reference
            and tuple(previous.get("answers") or ()) == tuple(q.answers))


def _same_invalid(previous: dict[str, Any] | None, record: dict[str, Any]) -> bool:
    """Whether ``previous`` already reports the invalid input line ``record`` (so it is not written twice)."""
    return (previous is not None and previous.get("status") == "invalid"
            and previous.get("error") == record.get("error"))


def _setup_refusal(out_dir: Path, previous: dict[str, Any], now: dict[str, Any]) -> str | None:
    """Why ``out_dir``'s results cannot be resumed with this setup (``None``: they can)."""
    if previous.get("setup_hash") is not None:
        if previous["setup_hash"] == now["setup_hash"]:
            return None
    elif previous.get("config_hash") in (None, now["config_hash"]):  # an audit.json from before setup_hash
        return None
    before = previous.get("settings") if isinstance(previous.get("settings"), dict) else {}
    differ = [k for k in sorted(before) if before[k] != now["settings"].get(k)]
    if before and differ and set(differ) <= TRANSPORT:
        return None  # how requests reach the server, not what it answers: raising max_retries must not block --resume
    changed = [f"{k} {before[k]!r} then, {now['settings'].get(k)!r} now" for k in differ]
    what = f": {'; '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}" if changed else (
        f" ({previous.get('setup_hash') or previous.get('config_hash')} vs {now['setup_hash']})")
    return (f"{out_dir} holds results made with other settings{what}. Rerun with the settings it was made with to "
            "resume, or use a new --out folder")


def _fingerprint_run(questions_file: Path, guard: Any) -> dict[str, Any]:
    from ragguard.pipeline import index_id

    return {
        "input": str(questions_file),
        "input_sha256": sha256_of(questions_file),
        "config_hash": guard.config.hash(),
        # What a resume must match: the settings without the index folder (index_id names the index itself).
        "setup_hash": guard.config.setup_hash(),
        "settings": setting_values(guard.config),
        "index": guard.index_path,
        "index_id": index_id(guard.index_path),  # its manifest's hash: `index add` at the same path changes it
        "ragguard_version": __version__,
        # Left out of both hashes (a calibration must recognise the setup it was fitted for), so a resume
        # compares it on its own: one audit's records must not pool two calibrations.
        "calibration": calibration_setting(guard.config),
    }


def calibration_setting(config: Any) -> dict[str, Any] | str | None:
    """What ``consistency.calibration`` names: ``{"file", "sha256"}`` for a file, ``"auto"``, or ``None``."""
    from ragguard.apps.calibration_io import is_off, load_calibration

    value = config.consistency.calibration
    if is_off(value):
        return None
    if str(value).strip().lower() == "auto":
        return "auto"
    return {"file": str(value), "sha256": load_calibration(value).data.get("file_sha256")}


def _calibration_name(value: Any) -> str:
    if isinstance(value, dict):
        sha = f" (sha256 {str(value['sha256'])[:12]})" if value.get("sha256") else ""
        return f"{Path(str(value.get('file'))).name}{sha}"
    return "calibration: auto" if value == "auto" else "no calibration file"


def _calibration_refusal(out_dir: Path, previous: dict[str, Any], now: dict[str, Any],
                         existing: list[dict[str, Any]]) -> str | None:
    """Why ``out_dir``'s answers cannot be continued under this run's calibration (``None``: they can).

    ``audit.json`` names the calibration of the last run; one written before it did is read from the records:
    the file of the last calibrated answer (a run whose answers name no file is not compared).
    """
    now_ = now.get("calibration")
    if "calibration" in previous:
        then = previous["calibration"]
    else:
        files = [r["calibration"] for r in existing if r.get("calibrated") is True and isinstance(r.get("calibration"), dict)
                 and r["calibration"].get("sha256")]
        if not files or now_ == "auto":
            return None
        then = {"file": files[-1].get("file"), "sha256": files[-1]["sha256"]}

    def key(value: Any) -> Any:
        return value.get("sha256") or value.get("file") if isinstance(value, dict) else value

    if key(then) == key(now_):
        return None
    return (f"{out_dir} holds answers made with {_calibration_name(then)}; this run uses {_calibration_name(now_)} "
            "(consistency.calibration): resume with the same calibration, or use a new --out folder (one audit's "
            "confidence and calibration figures must not pool two calibrations)")


def _weights_refusal(out_dir: Path, existing: list[dict[str, Any]], guard: Any) -> str | None:
    """Why answers in ``out_dir`` cannot be continued with ``guard``'s model: other weights at the same path.

    The config names the model and adapter by path, so a retrained adapter (``tune --out`` into the same
    folder) or a replaced checkpoint has the same config hash; the weights' hashes in the records' fingerprints
    tell them apart. The model is loaded to read its hashes (the run loads it anyway).
    """
    recorded = recorded_weights(existing)
    if not any(recorded.values()):
        return None
    generator = guard.generator
    if callable(getattr(generator, "load", None)):
        generator.load()
    for key, what in (("model_sha256", "model"), ("adapter_sha256", "adapter")):
        then, now = recorded.get(key), getattr(generator, key, None)
        if then and now and then != now and not (key == "adapter_sha256" and _legacy_adapter_hash(generator) == then):
            return (f"{out_dir} holds answers from other {what} weights than the ones loaded now ({key} "
                    f"{then[:16]} then, {now[:16]} now: retrained or replaced at the same path): use a new --out "
                    "folder, or load the old weights to resume")
    return None


def _legacy_adapter_hash(generator: Any) -> str | None:
    """The adapter hash ragguard recorded before it hashed the weights alone: every ``*.safetensors`` file of
    the folder, ``parity-reference.safetensors`` included. An audit begun then resumes on the same folder."""
    from ragguard.generation.sources import weights_sha256

    adapter = getattr(generator, "adapter", None)
    return weights_sha256(Path(adapter)) if adapter and Path(adapter).is_dir() else None


# Questions failing one after the other that stop an audit (--stop-after-errors): a server that went away would
# otherwise turn every remaining question into an error record, each after its retries.
STOP_AFTER_ERRORS = 5


class ErrorStreak(GenerationError):
    """An audit stopped because ``--stop-after-errors`` questions in a row ended in error."""


def _run_audit_unlocked(
    questions_file: str | Path,
    out: str | Path,
    guard: Any,
    *,
    resume: bool = False,
    retry_errors: bool = False,
    only: str | None = None,
    fail_under: float | None = None,
    reference_threshold: float = REFERENCE_THRESHOLD,
    batch_questions: int | None = None,
    progress: Callable[[str], None] | ProgressBar | None = None,
    stop_after_errors: int = STOP_AFTER_ERRORS,
) -> AuditResult:
    """Ask every question of ``questions_file`` and write the audit folder ``out``.

    Args:
        guard: a :class:`~ragguard.pipeline.RagGuard` (anything with ``ask``,
            ``config``, ``embedder`` and ``index_path``).
        resume: continue a previous run in ``out`` (questions already done are skipped).
        retry_errors: with ``resume``, redo questions that failed for infrastructure reasons.
        only: rerun a subset: ``id:q01,q02``, ``tag:payroll``, ``verdict:contradiction`` or ``status:error``.
        fail_under: gate on the consistent share (and on reference accuracy when references exist).
        batch_questions: questions handed to one ``ask_many`` call (their generation is
            batched up to ``generator.max_batch_tokens``); records are written after each.
            ``None``: :func:`default_batch` (1 for an in-process model on the CPU, where only then
            is every record the one ``ask`` gives alone; else :data:`DEFAULT_BATCH`, 8).
        progress: a :class:`~ragguard.progress.ProgressBar` (redrawn in place on a
            terminal, with rate, ETA and live counts per verdict), or a function
            that receives one status line per finished question.
        stop_after_errors: stop with an :class:`ErrorStreak` when this many questions in a row end in
            error (a server that went away), without recording them; 0 never stops.

    A run that stops early (Ctrl-C or SIGTERM, a setup error, an error streak) still writes
    ``summary.json`` (with ``partial`` saying why and how many questions were not answered),
    ``results.csv`` and ``report.html`` from the records done, then raises again.
    """
    qfile = Path(questions_file)
    out_dir = Path(out)
    questions, invalid = load_questions(qfile)
    if not questions and not invalid:
        raise no_records(qfile, "a 'question' field", "a 'question' column and one row per question")
    if fail_under is not None and not 0 <= fail_under <= 1:
        raise UsageError(f"--fail-under must be a fraction between 0 and 1, got {fail_under}")
    if stop_after_errors < 0:
        raise UsageError(f"--stop-after-errors must be 0 (never stop) or more, got {stop_after_errors}")
    if batch_questions is not None and batch_questions < 1:
        raise UsageError(f"--batch must be at least 1, got {batch_questions}")
    if only:  # a typo is refused before anything is written (a refused run leaves no folder behind)
        only_kind, only_values = _parse_only(only)
        only_values = _whole_value(only, only_kind, only_values, questions)
        _check_only(only, only_kind, only_values, questions, qfile)
    results_path = out_dir / RESULTS
    run_info = _fingerprint_run(qfile, guard)
    existing: list[dict[str, Any]] = []
    earlier_gate = None
    if results_path.exists() and (resume or only):
        previous_info = read_json(out_dir / "audit.json")
        refusal = _setup_refusal(out_dir, previous_info, run_info) if previous_info else None
        if refusal:
            raise UsageError(refusal)
        if previous_info and previous_info.get("index_id") not in (None, run_info["index_id"]):
            raise UsageError(
                f"{out_dir} holds results made over another version of the index {run_info['index']} (manifest "
                f"{previous_info['index_id']} vs {run_info['index_id']}: it was rebuilt or updated since): "
                "use a new --out folder"
            )
        existing = read_results(results_path)
        refusal = _calibration_refusal(out_dir, previous_info or {}, run_info, existing) if previous_info else None
        refusal = refusal or _weights_refusal(out_dir, existing, guard)
        if refusal:
            raise UsageError(refusal)
        earlier_gate = _earlier_gate(out_dir)
    elif results_path.exists() and results_path.stat().st_size > 0:
        raise UsageError(f"{out_dir} already holds audit results: pass --resume to continue, or choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "audit.json", run_info)

    latest = latest_per_id(existing)
    todo: list[AuditQuestion] = []
    changed = 0
    for q in questions:
        prev = latest.get(q.id)
        if only:
            if _matches_filter(q, prev, only_kind, only_values):
                todo.append(q)
            continue
        if prev is not None and not _asked_as(prev, q):
            changed += 1  # the line was fixed or edited since: its old record answers another question
            todo.append(q)
        elif prev is None or (retry_errors and prev.get("status") == "error"):
            todo.append(q)
    new_invalid = [r for r in invalid if not _same_invalid(latest.get(r["id"]), r)]
    asked = {q.id for q in todo}
    unselected = sum(1 for q in questions if q.id not in asked and q.id not in latest) if only else 0
    skipped = len(questions) - len(todo) - unselected

    if batch_questions is None:
        batch_questions = default_batch(guard) if todo else DEFAULT_BATCH
    ran = 0
    bar = progress if isinstance(progress, ProgressBar) else None
    earlier = {} if only else _done_before(questions, asked, latest)  # a resumed run shows 1401/1997, not 1/597
    if bar is not None:
        bar.start(len(todo), **earlier)
    note = bar.note if bar is not None else progress
    stopped: BaseException | None = None
    # Error records of the questions that failed last, one after the other, held back until one succeeds:
    # when stop_after_errors of them fail in a row (the server went away) the run stops without them, so a
    # plain --resume asks them again.
    streak: list[dict[str, Any]] = []
    done_now: set[str] = set()  # ids recorded by this run
    # What results.jsonl holds once this run's records are appended (the lock keeps other writers out), so the
    # finishing step does not read and parse the whole file again.
    written = list(existing)
    try:
        with open(results_path, "ab", buffering=0) as fh:
            for record in new_invalid:
                written.append(append_record(fh, record))
                if note:
                    note(f"{qfile}:{record['line']}: invalid record: {record['error']}")
            if only and note:
                if not unselected:
                    rest = f"the other {skipped} keep their records"
                elif not skipped:
                    rest = f"the other {unselected} are not asked and have no record in {out_dir}"
                else:
                    rest = f"of the other {skipped + unselected}, {skipped} keep their records and {unselected} have none"
                note(f"{len(todo)} question(s) match --only {only}; {rest}")
            elif skipped and note:
                note(f"{skipped} question(s) already done in {results_path}: not asked again")
            if changed and note:
                note(f"{changed} question(s) changed in {qfile} since the last run (text, reference or accepted "
                     "answers): asked again")
            fallback = ProgressBar(len(todo), _LineSink(progress), live=False) if progress and bar is None else None
            if fallback is not None:
                fallback.start(len(todo), **earlier)
            for chunk_start in range(0, len(todo), batch_questions):
                chunk = todo[chunk_start : chunk_start + batch_questions]
                finished: list[tuple[str, str]] = []
                try:
                    for q, record in zip(chunk, _ask_chunk(chunk, guard, reference_threshold), strict=False):
                        detail = f"agreement {record['agreement']:.2f}" if "agreement" in record else ""
                        if record["status"] == "error":
                            detail = record.get("error", "")[:80]
                        finished.append((record.get("verdict") or record["status"], f"{q.id} {detail}".strip()))
                        if record["status"] == "error" and stop_after_errors:
                            streak.append(record)
                            if len(streak) >= stop_after_errors:
                                raise _error_streak(streak, ran, results_path)
                            continue
                        for held in [*streak, record]:
                            written.append(append_record(fh, held))
                            done_now.add(held["id"])
                            ran += 1
                        streak.clear()
                finally:
                    for tracker in (bar, fallback):
                        if tracker is not None and finished:
                            tracker.advance_many(finished)  # the batch ended at once: rates over whole batches
            for held in streak:  # the last questions failed, but fewer than stop_after_errors in a row
                written.append(append_record(fh, held))
                done_now.add(held["id"])
                ran += 1
            streak.clear()
    except OutputError:
        raise  # the disk is full or read-only: nothing more can be written
    except (KeyboardInterrupt, RagGuardError) as exc:
        stopped = exc  # Ctrl-C, SIGTERM (a CI timeout), a setup error or an error streak: the outputs of what is done
    finally:
        if bar is not None:
            bar.close()
    if stopped is not None and not written:
        raise stopped  # nothing to report (run_audit removes a folder this run made)
    all_records = _ordered(written, questions, invalid)
    compact_results(results_path, written, all_records)
    summary = summarize(all_records)
    # Whether the calibration's fit data looks like these answers (None: no answer is calibrated).
    summary["calibration_drift"] = audit_drift(all_records)
    partial = None
    if stopped is not None:
        partial = {"reason": "interrupted" if isinstance(stopped, KeyboardInterrupt) else "error",
                   "not_done": sum(1 for q in todo if q.id not in done_now),
                   "message": "interrupted" if isinstance(stopped, KeyboardInterrupt) else str(stopped)}
    summary["partial"] = partial
    gate_messages: list[str] = []
    # A rerun without --fail-under (--resume, --only) keeps the folder's gate, checked over the records now:
    # summary.json and the report still say whether the audit passes it. It is not this run's exit status.
    inherited = fail_under is None and earlier_gate is not None
    if inherited:
        fail_under = earlier_gate
    if fail_under is not None:
        summary["gates"] = {"fail_under": fail_under}
        share = summary["consistent_share"]
        if partial:  # a run that stopped half way has not measured the set: it must not pass
            gate_messages.append(f"the run stopped ({partial['reason']}) before {partial['not_done']} question(s) "
                                 "were answered: rerun with --resume")
        if not summary["answered"]:  # a file of bad rows measures nothing: a gate on it must not pass
            gate_messages.append(f"no question was answered ({summary['invalid']} invalid, {summary['errors']} "
                                 "errors): nothing passed --fail-under")
        else:
            if summary["errors"]:
                gate_messages.append(f"{summary['errors']} question(s) ended in error and were not measured "
                                     "(rerun with --retry-errors)")
            if summary["invalid"]:  # a row the gate never saw must not pass it (a typo'd key, a broken line)
                lines = ", ".join(str(r["line"]) for r in summary["invalid_records"][:5])
                more = f" and {summary['invalid'] - 5} more" if summary["invalid"] > 5 else ""
                gate_messages.append(f"{summary['invalid']} row(s) of the question file are invalid and were not "
                                     f"measured (line {lines}{more}; summary.json lists why): fix them and rerun "
                                     "with --resume")
            single = sum(1 for r in all_records if r.get("status") == "ok" and len(r.get("samples") or []) == 1)
            if single:
                gate_messages.append(f"{single} question(s) drew one answer, so their consistency was not "
                                     "measured: audit with --samples 2 or more")
        if share is not None and share < fail_under:
            gate_messages.append(f"consistent share {share:.2f} is below --fail-under {fail_under:.2f}")
        accuracy = summary["reference"]["accuracy"]
        if accuracy is not None and accuracy < fail_under:
            gate_messages.append(f"reference accuracy {accuracy:.2f} is below --fail-under {fail_under:.2f}")
        summary["gates"]["passed"] = not gate_messages
        summary["gates"]["failures"] = gate_messages
        if inherited:
            summary["gates"]["inherited"] = True
    # When this run ended, so that two reports (or summaries) of the same input can be told apart.
    summary["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _write_outputs(out_dir, all_records, summary, run_info)
    if stopped is not None:
        raise stopped
    return AuditResult(out_dir, summary, ran, skipped, bool(gate_messages) and not inherited, gate_messages,
                       inherited, unselected)


def _write_outputs(out_dir: Path, records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> None:
    """Write ``summary.json``, ``results.csv`` and ``report.html``: each is written beside its target first, and
    the three are renamed in only when all are written, so a folder never mixes two runs' outputs (an interrupt
    or a full disk while they are written leaves the last run's outputs, and no temporary file)."""
    from ragguard.apps.report_html import stage_report

    staged: list[tuple[Path, Path]] = []
    try:
        for name, make in (("summary.json", lambda path: stage_json(path, summary)),
                           ("results.csv", lambda path: stage_csv(path, records)),
                           ("report.html", lambda path: stage_report(path, records, summary, run))):
            staged.append((make(out_dir / name), out_dir / name))
    except BaseException:
        discard(staged)
        raise
    publish(staged)


def _error_streak(streak: list[dict[str, Any]], saved: int, results_path: Path) -> ErrorStreak:
    last = " ".join(str(streak[-1].get("error", "")).split())[:240]
    return ErrorStreak(
        f"{len(streak)} questions in a row ended in error ({streak[0]['id']} ... {streak[-1]['id']}; the last: {last}), "
        f"so the audit stopped rather than record an error for every question left. {saved} answer(s) of this run are "
        f"saved in {results_path}. Fix the cause and rerun with --resume (it asks these {len(streak)} again), or with "
        "--stop-after-errors 0 to record the errors and go on"
    )


def _earlier_gate(out_dir: Path) -> float | None:
    """The ``--fail-under`` that the folder's ``summary.json`` records, or ``None``."""
    gates = (read_json(out_dir / "summary.json") or {}).get("gates")
    value = gates.get("fail_under") if isinstance(gates, dict) else None
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else None


def run_audit(questions_file: str | Path, out: str | Path, guard: Any, **options: Any) -> AuditResult:
    """Ask every question of ``questions_file`` and write the audit folder ``out``, holding its lock.

    Two runs into one ``out`` would both append every record: the second is
    refused with a :class:`~ragguard.errors.UsageError` naming the holder. The
    lock is an ``flock`` (:class:`~ragguard.locking.WriterLock`), dropped by the
    kernel when its process dies, so a crashed run's lock file never blocks a
    later ``--resume``. Options: see :func:`_run_audit_unlocked`.

    A run that is refused (a :class:`~ragguard.errors.UsageError`), or whose setup fails
    before any record is written, leaves nothing new behind: the folders it made for ``out``
    are removed again.
    """
    from ragguard.locking import WriterLock

    out_dir = Path(out)
    made = [d for d in (out_dir, *out_dir.parents) if not d.exists()]  # deepest first; the lock makes the parents
    try:
        with WriterLock(out, what="audit folder"):
            try:
                return _run_audit_unlocked(questions_file, out, guard, **options)
            except RagGuardError:
                if out_dir in made:  # made by this run, under the lock: only its own files can be there
                    _remove_unused(out_dir)
                raise
    except RagGuardError:
        for folder in made[1:]:
            try:
                folder.rmdir()  # only while empty: another run's files are never touched
            except OSError:
                break
        raise


def _remove_unused(out_dir: Path) -> None:
    """Remove the folder this run made when it holds no record: its ``audit.json`` and an empty ``results.jsonl``."""
    results = out_dir / RESULTS
    if results.exists() and results.stat().st_size > 0:
        return  # records (invalid lines included) are kept: --resume continues from them
    for name in ("audit.json", RESULTS):
        (out_dir / name).unlink(missing_ok=True)
    try:
        out_dir.rmdir()
    except OSError:
        pass


# Questions per generation pass where the model is not in this process on a CPU (a GPU, a server).
DEFAULT_BATCH = 8


def default_batch(guard: Any) -> int:
    """Questions per pass when ``--batch`` is not given: 1 for a model running in this process on the CPU.

    There a batched pass computes each row's float32 sums in another order than the question alone,
    so while the tokens stay the same a record's log-probabilities can differ in their last digit
    (``bench/audit_throughput.py``, 16 FAQ questions, AMD EPYC: 4 records differ, one
    ``logprob_min`` or ``logprob_mean`` each), and a record must be the one ``ask`` gives alone.
    ``--batch 8`` is faster there (1.62x the questions per minute in the same run).
    """
    generator = getattr(guard, "generator", None)
    load = getattr(generator, "load", None)
    if callable(load):
        load()  # the device is known once the weights are placed (the first question would load them anyway)
    return 1 if str(getattr(generator, "device", "")) == "cpu" else DEFAULT_BATCH


# Errors of the setup, not of a question: a refused config, a model or an index that cannot load. Every
# other question would fail the same way, so the audit stops (one line; --resume continues once fixed)
# instead of writing one error record per question.
SETUP_ERRORS = (ConfigError, ModelLoadError, IndexLoadError)


def _ask_chunk(chunk: list[AuditQuestion], guard: Any, reference_threshold: float) -> Iterator[dict[str, Any]]:
    """Records for a chunk, in order: one batched call, or one call per question when the batch fails (each
    record as soon as its question is done, so a run can stop between them)."""
    ask_many = getattr(guard, "ask_many", None)
    if ask_many is not None and len(chunk) > 1:
        try:
            reports = ask_many([q.question for q in chunk])
        except SETUP_ERRORS:
            raise  # the setup, not a question, is wrong: stop (what is written stays; --resume continues)
        except (RagGuardError, RuntimeError, MemoryError) as exc:
            # Find out which question fails by asking them one by one (slower: say so, and why).
            log.warning("a batch of %d questions (%s ... %s) failed (%s: %s): asking them one by one",
                        len(chunk), chunk[0].id, chunk[-1].id, type(exc).__name__, str(exc).splitlines()[0][:300])
        else:
            yield from [_record(q, r, guard, reference_threshold) for q, r in zip(chunk, reports, strict=True)]
            return
    for q in chunk:
        yield _ask_one(q, guard, reference_threshold)


def _record(q: AuditQuestion, report: Any, guard: Any, reference_threshold: float) -> dict[str, Any]:
    record: dict[str, Any] = {**_asked(q), "status": "ok", **report.to_dict()}
    record["warnings"] = [*q.warnings, *record["warnings"]]
    if q.reference:
        decided = match_reference(report.answer, q.reference, q.question, guard.embedder, reference_threshold,
                                  q.answers)
        record["reference_match"] = decided.label
        record["reference_rule"] = decided.rule
        record["reference_score"] = round(decided.score, 6)
    else:
        record["reference_match"] = None
    return record


def _asked(q: AuditQuestion) -> dict[str, Any]:
    """What every record of ``q`` says of the input row, so that a resume knows it was asked as it stands
    (:func:`_asked_as`): an error record without the accepted ``answers`` was taken for a changed row."""
    return {"id": q.id, "line": q.line, "tags": q.tags, "reference": q.reference,
            **({"answers": list(q.answers)} if q.answers else {})}


def _ask_one(q: AuditQuestion, guard: Any, reference_threshold: float) -> dict[str, Any]:
    base = _asked(q)
    try:
        report = guard.ask(q.question)
    except SETUP_ERRORS:
        raise  # not this question's fault: every other one would fail the same way
    except UsageError as exc:
        return {**base, "question": q.question, "status": "invalid", "error": str(exc)}
    except (RagGuardError, RuntimeError, MemoryError) as exc:
        # Infrastructure, not quality: kept apart and retried with --retry-errors.
        return {**base, "question": q.question, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return _record(q, report, guard, reference_threshold)


def _ordered(
    records: list[dict[str, Any]], questions: list[AuditQuestion], invalid: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The last record per question, in input order."""
    latest = latest_per_id(records)
    keys = sorted([(q.line, q.id) for q in questions] + [(r["line"], r["id"]) for r in invalid])
    return [latest[k] for _, k in keys if k in latest]


def _done_before(questions: list[AuditQuestion], asked: set[str], latest: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The questions a resumed run does not ask again and their verdicts (or statuses), for the progress shown."""
    kept = [latest[q.id] for q in questions if q.id not in asked and q.id in latest]
    return {"done_before": len(kept), "counts_before": Counter(r.get("verdict") or r.get("status") for r in kept)}


class _LineSink:
    """A text stream that hands each written line to a callback (progress as plain lines)."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        self.callback = callback

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.callback(line)

    def flush(self) -> None:
        pass
