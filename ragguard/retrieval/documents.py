"""What a loader reads and a chunker cuts: :class:`Document`, and the hash that identifies a source file.

Both :mod:`ragguard.retrieval.loaders` and :mod:`ragguard.retrieval.chunking`
build on this module, and neither imports the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Document", "sha256_bytes"]


@dataclass(frozen=True)
class Document:
    """A source text and where it came from.

    ``doc_id`` is a relative path (``folder/file.md``), or ``folder/faq.csv:N``
    for row N of a FAQ table; ``source`` is the file it came from and
    ``sha256`` that file's hash.
    """

    doc_id: str
    text: str
    sha256: str
    source: str = ""
    lang: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of ``data`` (a source file's identity in the index manifest)."""
    return hashlib.sha256(data).hexdigest()
