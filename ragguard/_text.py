"""The one rule for invalid text: lone surrogates are replaced with U+FFFD, with a warning.

A Python ``str`` can hold code points that no UTF-8 text can: lone surrogates
(U+D800..U+DFFF). They arrive from a JSON escape (``"\\ud800"``), from an argv
byte that is not UTF-8 (Python decodes argv with ``surrogateescape``, so
``\\xff`` becomes U+DCFF), or from a record read with the same error handler.
Tokenizers refuse them (a ``TypeError`` deep in the embedder), and writing
them to a UTF-8 file raises.

ragguard replaces each with U+FFFD (the Unicode replacement character) and says
so in a warning, instead of refusing the input: one stray byte in a question,
an audit record or a source document should not cost the whole answer, run or
index, and the warning tells the user the text was changed. Files that are not
UTF-8 at all are a different case, handled where they are read (refused, or
decoded with their detected encoding for index sources).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["REPLACEMENT", "clean_text", "clean_value", "columns", "question_problem", "shorten"]

REPLACEMENT = "\ufffd"
_INVALID = re.compile("[\ud800-\udfff]")


def clean_text(text: str, what: str) -> tuple[str, str | None]:
    """``text`` with every lone surrogate replaced by U+FFFD, and the warning to show (``None`` if clean).

    Args:
        text: any string.
        what: what the text is, for the warning ("the question", "samples[2]").
    """
    cleaned, count = _INVALID.subn(REPLACEMENT, text)
    if not count:
        return text, None
    return cleaned, (f"{what} held {counted(count, 'invalid character')} (undecodable bytes or lone surrogates), "
                     f"replaced with U+FFFD: pass UTF-8 text")


def clean_value(value: Any, what: str, warnings: list[str]) -> Any:
    """``value`` (a JSON-like value) with every string cleaned by :func:`clean_text`; warnings appended."""
    if isinstance(value, str):
        cleaned, warning = clean_text(value, what)
        if warning:
            warnings.append(warning)
        return cleaned
    if isinstance(value, list):
        return [clean_value(v, f"{what}[{i}]", warnings) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = clean_value(k, f"a key of {what or 'the record'}", warnings)
            out[key] = clean_value(v, f"{what}.{key}" if what else f"'{key}'", warnings)
        return out
    return value


def question_problem(question: str, noun: str = "question") -> str | None:
    """What makes ``question`` unaskable (empty, or no word at all: only punctuation or symbols), else ``None``.

    ``noun``: what to call it ("query" for a retriever's)."""
    if not question.strip():
        return f"the {noun} is empty"
    if not re.search(r"\w", question):
        return f"the {noun} {question.strip()[:40]!r} has no word in it, only punctuation or symbols"
    return None



def _width(ch: str, columns: bool) -> int:
    return 2 if columns and unicodedata.east_asian_width(ch) in "WF" else 1


def shorten(text: str, limit: int, columns: bool = False) -> str:
    """``text`` on one line, at most ``limit`` long, its closing "…" included when it is cut.

    ``columns``: count terminal columns, where a Chinese character (East Asian wide or full width) takes two.
    """
    text = one_line(" ".join(text.split()))  # an escape left in a model's answer must not drive the terminal
    if sum(_width(ch, columns) for ch in text) <= limit:
        return text
    used = 0
    for i, ch in enumerate(text):
        used += _width(ch, columns)
        if used > limit - 1:
            return text[:i].rstrip() + "…"
    return text


def columns(text: str) -> int:
    """The terminal columns ``text`` takes (a Chinese character takes two), to pad it into a table."""
    return sum(_width(ch, True) for ch in text)


def counted(count: int, noun: str) -> str:
    """``1 chunk``, ``2 chunks``: a count with its noun, singular for one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b``): a file name holding a
    newline or an ANSI escape stays on its one line of terminal output and cannot restyle the terminal."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" else ch
                    for ch in text)


def terminal_text(text: str) -> str:
    """``text`` for a terminal: its lines and tabs kept, every other control character (an ANSI escape in a
    model's answer, which could clear the screen or restyle the terminal) written as an escape."""
    return "\n".join(one_line(line.replace("\t", "    ")) for line in text.split("\n"))
