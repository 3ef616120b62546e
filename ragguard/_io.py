"""Reading files a user pointed ragguard at, with one-line errors that say what to do."""

from __future__ import annotations

from pathlib import Path

from ragguard.errors import UsageError

__all__ = ["read_user_text"]


def read_user_text(path: Path, what: str, hint: str, error: type[UsageError] = UsageError) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped), or ``error`` naming the file and the fix.

    Args:
        what: how to call the file in the message ("config file", "input file").
        hint: what to do when it does not exist.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist: {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(path)!r} cannot be read ({exc}): pass a readable UTF-8 text file") from None
