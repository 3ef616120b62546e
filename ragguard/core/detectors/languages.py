"""The registered languages: every detector reads the cues of all of them, in this order.

Order matters only where two languages' cues are tried in turn (the English yes/no openings are
tried before the Chinese ones) or joined into one pattern (alternatives in registration order).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from ragguard.core.detectors.lexicon import Lexicon
from ragguard.core.detectors.lexicon_en import EN
from ragguard.core.detectors.lexicon_zh import ZH
from ragguard.errors import ConfigError

__all__ = ["LEXICONS", "register_lexicon", "active", "compiled", "joined"]

LEXICONS: list[Lexicon] = [EN, ZH]

T = TypeVar("T")


def register_lexicon(lexicon: Lexicon) -> None:
    """Add a language: from now on every detector also reads ``lexicon``'s cues.

    Raises:
        ConfigError: A lexicon of that name is registered already.
    """
    taken = [lex.name for lex in LEXICONS]
    if lexicon.name in taken:
        raise ConfigError(f"a lexicon named {lexicon.name!r} is registered already ({', '.join(taken)}); "
                          "give the new one another name")
    LEXICONS.append(lexicon)


def active() -> tuple[Lexicon, ...]:
    """The registered lexicons, in registration order."""
    return tuple(LEXICONS)


def compiled(build: Callable[[tuple[Lexicon, ...]], T]) -> Callable[[], T]:
    """Turn ``build(lexicons)`` (patterns compiled from the lexicons) into a cached getter.

    The getter rebuilds when the registered lexicons change, so a language registered later
    reaches every detector.
    """
    cached = lru_cache(maxsize=4)(build)
    return lambda: cached(active())


def joined(fragments: list[str] | tuple[str, ...]) -> str:
    """Regex fragments of several lexicons as one alternation (empty fragments left out)."""
    return "|".join(f for f in fragments if f)
