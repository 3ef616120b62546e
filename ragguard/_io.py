"""Reading files a user pointed ragguard at, with one-line errors that say what to do; writing JSON lines."""

from __future__ import annotations

import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

from ragguard.errors import UsageError

__all__ = ["json_line", "read_user_text", "read_stdin_text", "numbered_lines"]


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` split at line feeds only (a CR before one is dropped).

    ``str.splitlines`` also splits at U+2028, U+2029, U+0085 and form feeds, which are legal
    inside a JSON string: a question pasted from a web page would be cut in two and every later
    line number would be off.
    """
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line.removesuffix("\r")


def json_line(value: object) -> str:
    """``value`` as one line of JSON (UTF-8 kept), with U+0085, U+2028 and U+2029 escaped.

    They are legal raw inside a JSON string, but Python's ``str.splitlines`` takes all three for
    line ends (and older JavaScript engines the last two), so a model's answer holding one would
    break a JSONL reader that is not ragguard's. ``json.dumps`` already escapes the ASCII ones.
    """
    text = json.dumps(value, ensure_ascii=False)
    for ch in _LINE_ENDS:
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


_LINE_ENDS = ("\u0085", "\u2028", "\u2029")


def read_user_text(path: Path, what: str, hint: str, error: type[UsageError] = UsageError) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped; a ``.gz`` file is decompressed first), or ``error``
    naming the file and the fix.

    Args:
        what: how to call the file in the message ("config file", "input file").
        hint: what to do when it does not exist.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist: {hint}") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read ({exc}): pass a readable UTF-8 text file") from None
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # not gzip, cut short (a copy stopped midway), or damaged
            raise error(f"{what} {str(path)!r} is not a whole gzip file ({exc}): compress it again with gzip, "
                        "or drop the .gz suffix if it is plain text") from None
    return _decoded(data, f"{what} {str(path)!r}", error)


def read_stdin_text(what: str, error: type[UsageError] = UsageError) -> str:
    """The UTF-8 text piped to standard input (a BOM is dropped), or ``error`` saying where it is not UTF-8."""
    return _decoded(sys.stdin.buffer.read(), what, error)


def _decoded(data: bytes, named: str, error: type[UsageError]) -> str:
    """``data`` as ``Path.read_text`` reads a file: UTF-8 with its BOM dropped and line ends made ``\\n``."""
    try:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig").read()
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise error(f"{named} is not UTF-8 (line {line} holds the byte {exc.object[exc.start]:#04x}): "
                    "save it as UTF-8") from None
