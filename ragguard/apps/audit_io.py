"""The files of an audit folder: ``results.jsonl`` read back (a torn last line cut off, nothing else) and appended to
durably, and ``summary.json`` and ``results.csv`` replaced atomically."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragguard._io import json_line
from ragguard.core.types import DIVERGENT
from ragguard.errors import UsageError

__all__ = ["RESULTS", "CSV_FIELDS", "read_results", "latest_per_id", "append_record", "write_csv", "write_json",
           "read_json"]

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


def append_record(fh: Any, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable before the next question runs."""
    fh.write(json_line(record) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


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
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in [*current, *rest]:
            fh.write(json_line(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` with the CSV of ``records`` (written beside it, then renamed)."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(records))
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as indented JSON (written beside it, then renamed)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
