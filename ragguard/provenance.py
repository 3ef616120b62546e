"""What produced an answer: per-sample seeds, library versions and the bundled index's location.

Seeds derive from (base seed, question, sample index) rather than a running
counter, so a sample is the same whether its question is asked alone or
inside a batch.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path

from ragguard._version import __version__
from ragguard.errors import IndexLoadError

__all__ = ["derive_seed", "sample_seeds", "bundled_index_path", "library_versions"]

_VERSIONED = ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy", "peft", "bitsandbytes")


def derive_seed(base: int, question: str, index: int) -> int:
    """A 31-bit seed from (base seed, question, sample index).

    Deriving from the question (not from a running counter) makes a sample
    the same whether its question is asked alone or inside a batch.
    """
    digest = hashlib.sha256(f"{base}\0{question.strip()}\0{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def sample_seeds(base: int, question: str, n: int) -> list[int | None]:
    """``None`` (the greedy answer) followed by ``n - 1`` derived seeds."""
    return [None] + [derive_seed(base, question, i) for i in range(1, n)]


def bundled_index_path() -> Path:
    """The example index: inside the wheel, or ``indexes/handbook`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / "handbook", here.parent / "indexes" / "handbook"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise IndexLoadError(
        "the bundled example index is not installed: pass --index DIR (build one with `ragguard index build`)"
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an answer (read without importing them).

    Read once per process: every record's fingerprint names them, and reading the installed
    packages' metadata took about 50 ms a question (a tenth of an audit against a fast server).
    """
    return dict(_read_versions())


@functools.cache
def _read_versions() -> tuple[tuple[str, str], ...]:
    versions = {"python": platform.python_version(), "ragguard": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions.items())
