"""Reading question records from .jsonl, .json (a list) or .csv files.

A bad record never stops the run: it is yielded as a :class:`BadRecord`
with its line number and the reason, in input order, so callers can report
it in their output and go on.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragguard._io import numbered_lines, read_stdin_text, read_user_text
from ragguard._text import clean_value, shorten
from ragguard.errors import UsageError

__all__ = ["Record", "BadRecord", "read_records", "record_type", "no_records", "STDIN", "json_problem", "misspelled", "id_given", "id_typed",
           "id_key", "id_trim_note", "id_has_control", "ID_CONTROL"]

SUFFIXES = (".jsonl", ".json", ".csv")
STDIN = "-"  # the path that reads JSON lines from standard input (``ragguard check -``)


@dataclass(frozen=True)
class Record:
    """One usable input record and the line it starts on.

    ``data`` has its invalid characters replaced (:mod:`ragguard._text`); ``warnings`` say where.
    """

    line: int
    data: dict[str, Any]
    warnings: tuple[str, ...] = ()

    @classmethod
    def cleaned(cls, line: int, data: dict[str, Any]) -> Record:
        warnings: list[str] = []
        return cls(line, clean_value(data, "", warnings), tuple(warnings))


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be used, with the reason."""

    line: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.error}


def record_type(path: str | Path) -> str:
    """The format of ``path``'s records by its suffix: ``.jsonl``, ``.json`` or ``.csv`` (for a gzip file,
    ``q.jsonl.gz``, the suffix before ``.gz``; for :data:`STDIN`, ``.jsonl``), or ``""`` when it has none of them."""
    if str(path) == STDIN:
        return ".jsonl"
    suffixes = [s.lower() for s in Path(path).suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes and suffixes[-1] in SUFFIXES else ""


def read_records(path: str | Path, stdin: bool = False) -> Iterator[Record | BadRecord]:
    """Yield every record of ``path`` in order (bad ones as :class:`BadRecord`).

    A ``.gz`` file is decompressed first (line numbers are those of the text inside). ``stdin``: the path
    :data:`STDIN` reads JSON lines from standard input (a pipe in CI).

    Raises:
        UsageError: the file is missing, unreadable, of an unknown type, or a
            .json file that is not a list.
    """
    p = Path(path)
    suffix = record_type(p)
    if str(path) == STDIN:
        if not stdin:
            raise UsageError(f"{STDIN!r} (standard input) is read by `ragguard check` only: save the records to a "
                             ".jsonl file and pass its path")
        text = read_stdin_text("standard input")
        if text.lstrip().startswith("["):
            raise UsageError("standard input holds a JSON list: piped records are read as JSON lines (one object "
                             "per line); save a list as a .json file and pass its path")
        yield from _jsonl(text)
        return
    if not suffix:
        raise UsageError(f"{str(p)!r} has an unsupported type: use .jsonl, .json (a list) or .csv "
                         "(each may be gzipped: .jsonl.gz)")
    text = read_user_text(p, "input file", "check the path")
    if suffix == ".jsonl":
        yield from _jsonl(text)
    elif suffix == ".json":
        yield from _json_list(text, p)
    else:
        yield from _csv(text)


def no_records(path: Path, fields: str, columns: str) -> UsageError:
    """The error for an input file that holds no record, with advice for its own format: ``fields`` say
    what each JSON object needs, ``columns`` what a CSV header needs."""
    advice = {".csv": f"give it a header line with {columns}",
              ".json": f"give it a JSON list of objects with {fields}"}.get(
        record_type(path), f"add one JSON object per line with {fields}")
    shown = "stdin" if str(path) == STDIN else path
    return UsageError(f"{shown} holds no records: {advice}")


# The rules of a record's own ``id`` (audit refuses a record that breaks them; check warns and scores it). The
# whitespace around an id is dropped first (with a warning), in both.
ID_CONTROL = "'id' holds a control character (a newline, a tab, an escape): remove it"


def id_given(raw: Any) -> bool:
    """Whether a record has an id: a value other than null or a blank string (an empty CSV cell); 0 is an id."""
    return raw is not None and not (isinstance(raw, str) and not raw.strip())


def id_typed(raw: Any) -> bool:
    """Whether an id is of a kind an id may be: a string or a whole number (not a bool, a float or a list)."""
    return not isinstance(raw, bool) and isinstance(raw, (str, int))


def id_key(raw: Any) -> str:
    """The id a record is known by (duplicates, ``--only``, results): its text without the whitespace around it,
    so ``" q1 "`` and ``"q1"`` are one id."""
    return str(raw).strip()


def id_trim_note(raw: Any) -> str | None:
    """The warning for an id that :func:`id_key` changed (``" q1 "`` is read as ``"q1"``), else ``None``."""
    if not isinstance(raw, str) or raw == raw.strip():
        return None
    return f"'id' {shorten(repr(raw), 40)} has whitespace around it: it is read as {shorten(repr(raw.strip()), 40)}"


def id_has_control(raw: Any) -> bool:
    """Whether an id holds a control character (a newline in an id would fake a log line)."""
    return any(unicodedata.category(ch) == "Cc" for ch in str(raw))


def misspelled(data: dict[str, Any], wanted: str) -> str:
    """A hint when the record holds a key that looks like ``wanted`` (``questoin``, ``Question``), else ``""``."""
    import difflib

    near = difflib.get_close_matches(wanted, [str(k) for k in data if k != wanted], n=1, cutoff=0.75)
    return f" (it has {near[0]!r}: rename it to {wanted!r})" if near else ""


def json_problem(exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text and where: ``Unterminated string starting at column 25`` (json's own
    message may already end in "at": no "at at")."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def _jsonl(text: str) -> Iterator[Record | BadRecord]:
    for lineno, line in numbered_lines(text):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadRecord(lineno, f"not valid JSON ({json_problem(exc)})")
            continue
        except RecursionError:
            yield BadRecord(lineno, "nested too deeply to be a record")
            continue
        if not isinstance(data, dict):
            yield BadRecord(lineno, f"expected a JSON object, got {type(data).__name__}")
            continue
        yield Record.cleaned(lineno, data)


def _json_list(text: str, path: Path) -> Iterator[Record | BadRecord]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{str(path)!r} is not valid JSON (line {exc.lineno}): fix it or use .jsonl") from None
    if not isinstance(data, list):
        raise UsageError(f"{str(path)!r} must hold a JSON list of records, got {type(data).__name__}")
    # Line numbers of list items are not tracked by json; report 1-based positions.
    for position, item in enumerate(data, 1):
        if isinstance(item, dict):
            yield Record.cleaned(position, item)
        else:
            yield BadRecord(position, f"item {position} is not a JSON object")


_DELIMITERS = ";\t|"


def _csv(text: str) -> Iterator[Record | BadRecord]:
    lines = text.split("\n")
    header = lines[0]
    # A spreadsheet saved in a locale that writes "a;b" (or a tab-separated export): read it by what its
    # header is separated with rather than as one column named "id;question".
    delimiter = "," if "," in header else next((d for d in _DELIMITERS if d in header), ",")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    end = 1  # the header
    for row in reader:
        start, end = end + 1, reader.line_num
        while start < end and not lines[start - 1].strip():
            start += 1  # the row starts at its first non-blank line, however many lines its quoted cells span
        if None in row:
            yield BadRecord(start, "more fields than the header has")
            continue
        record = Record.cleaned(start, {k.strip(): (v if v is not None else "") for k, v in row.items() if k is not None})
        spans = [k for k, v in record.data.items() if isinstance(v, str) and "\n" in v.strip()]
        if spans:  # legal CSV, but most often an unclosed quote that swallowed the rows after it
            record = Record(start, record.data, (*record.warnings, f"the {spans[0]!r} cell spans lines {start}-{end}: if "
                                                 "that is an unclosed quote, the rows it swallowed were not read"))
        yield record
