"""The files of an audit folder: ``results.jsonl`` read back (a torn last line cut off, nothing else) and appended to
durably, and ``summary.json``, ``results.csv`` and ``report.html`` replaced atomically, together.

A write that fails (a full disk, a read-only folder) leaves no temporary file behind and raises an
:class:`~ragguard.errors.OutputError` that names the file and what to do."""

from __future__ import annotations

import csv
import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ragguard._io import json_line
from ragguard.core.types import DIVERGENT
from ragguard.errors import OutputError, UsageError

__all__ = ["RESULTS", "CSV_FIELDS", "read_results", "latest_per_id", "append_record", "write_json",
           "read_json", "stage", "stage_csv", "stage_json", "publish", "discard", "output_error"]

RESULTS = "results.jsonl"


def read_results(path: Path, repair: bool = True) -> list[dict[str, Any]]:
    """The records of ``results.jsonl``, in file order.

    Blank lines are skipped. Only the last line can be torn (a run killed mid-write): one that is
    not a complete record is left out, and with ``repair`` cut off the file so the next record
    starts on a line of its own; a complete last record that merely lacks its line feed is kept,
    and with ``repair`` given one. Any other line that is not a record (edited by hand, another
    encoding) is refused with its number, never dropped: what follows it is real work.
    ``repair=False`` (``audit diff``) reads without writing.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")  # the last item is what follows the last line feed: b"" when the file ends in one
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        last = number == len(lines)
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            problem = None if isinstance(record, dict) else f"a JSON {type(record).__name__}, not a record"
        except UnicodeDecodeError:
            problem = "not UTF-8"
        except (json.JSONDecodeError, RecursionError):
            problem = "not valid JSON"
        if problem is None:
            records.append(record)
            if last and repair:
                with open(path, "ab") as fh:
                    fh.write(b"\n")
        elif last:
            if repair:
                with open(path, "r+b") as fh:
                    fh.truncate(len(data) - len(raw))
        else:
            raise UsageError(f"{path} line {number} is {problem}: it was edited by hand or written by another "
                             "tool; fix or delete that line (the other records are kept)")
    return records


def latest_per_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each question id (a rerun's record replaces the earlier one)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest[str(r.get("id"))] = r
    return latest


def append_record(fh: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Append one JSON line to ``fh`` (``results.jsonl`` opened ``"ab", buffering=0``) and make it durable before
    the next question runs; return the record as a reader of the file gets it back (tuples as lists, say).

    The bytes go straight to the file, so a failed write (a full disk) leaves nothing in a buffer for a later
    close to write again: at most a torn last line, which :func:`read_results` cuts off on ``--resume``.
    """
    line = json_line(record)
    data = (line + "\n").encode("utf-8")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fh.fileno(), view):]
        os.fsync(fh.fileno())
    except OSError as exc:
        raise output_error(Path(fh.name), exc) from None
    return json.loads(line)


def output_error(path: Path, exc: OSError) -> OutputError:
    """A one-line :class:`~ragguard.errors.OutputError` for a failed write of ``path``, saying what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk (or choose another --out)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable (or choose another --out)"
    else:
        fix = "check the disk (or choose another --out)"
    return OutputError(f"cannot write {path} ({exc.strerror or exc}): {fix}, then rerun with --resume: the "
                       "answers already in results.jsonl are kept")


def stage(path: Path, write: Callable[[Any], None], newline: str | None = None) -> Path:
    """Write ``path``'s new content beside it (``NAME.tmp``, made durable) with ``write(file)``, and return that
    temporary file for :func:`publish`.

    A failed or interrupted write removes the temporary file; an ``OSError`` becomes an
    :class:`~ragguard.errors.OutputError` naming ``path``.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(path, exc) from None
        raise
    return tmp


def publish(staged: list[tuple[Path, Path]]) -> None:
    """Rename each staged temporary file over its target, one right after the other (``(tmp, target)`` pairs), so
    that the outputs of one run replace those of the last together."""
    for i, (tmp, target) in enumerate(staged):
        try:
            os.replace(tmp, target)
        except OSError as exc:
            discard(staged[i:])
            raise output_error(target, exc) from None


def discard(staged: list[tuple[Path, Path]]) -> None:
    """Remove staged temporary files that will not be published."""
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)


def compact_results(path: Path, records: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
    """Rewrite ``results.jsonl`` (which holds ``records``, as read) with one record per question: ``current``
    (the input's latest records, in its order), then the latest records of questions no longer in the input
    (kept, never lost).

    Reruns append while they run, so a crash loses nothing; a finished run folds each question's superseded
    records away. The file is written beside, made durable, then renamed over the old one.
    """
    kept = {str(r.get("id")) for r in current}
    latest = latest_per_id(records)
    rest = [latest[i] for i in dict.fromkeys(str(r.get("id")) for r in records) if i not in kept]
    if [*current, *rest] == records:
        return  # already one record per question, in order

    def lines(fh: Any) -> None:
        for record in [*current, *rest]:
            fh.write(json_line(record) + "\n")

    publish([(stage(path, lines), path)])


CSV_FIELDS = ("id", "line", "status", "question", "verdict", "agreement", "confidence", "semantic_entropy",
              "grounded", "answer", "reference", "reference_match", "contradictions", "error", "tags", "warnings")


def csv_rows(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One ``results.csv`` row per record (contradictions counted, divergent pairs left out; tags joined
    by ``;`` and warnings by `` | ``, so a team can filter a spreadsheet by tag and read why an answer is doubted).
    A text cell that starts like a formula (``=``, ``+``, ``-``, ``@``) gets a leading ``'`` (OWASP's CSV injection
    advice): answers are model output, and a spreadsheet would run ``=HYPERLINK(...)``."""
    for r in records:
        row = {k: r.get(k) for k in CSV_FIELDS}
        row["contradictions"] = sum(1 for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT)
        row["tags"] = ";".join(str(t) for t in r.get("tags") or [])
        row["warnings"] = " | ".join(str(w) for w in r.get("warnings") or [])
        yield {k: _inert(v) for k, v in row.items()}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` from a model's answer), quoted with ``'``."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA) else value


def stage_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    """The CSV of ``records``, staged beside ``path`` (see :func:`stage`)."""

    def rows(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(records))

    return stage(path, rows, newline="")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as indented JSON (written beside it, then renamed)."""
    publish([(stage_json(path, data), path)])


def stage_json(path: Path, data: dict[str, Any]) -> Path:
    """``data`` as indented JSON, staged beside ``path`` (see :func:`stage`)."""
    return stage(path, lambda fh: fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n"))


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
