"""Where each source of an index was read from, so that ``index add`` cannot mix two folders up.

Document ids name a source by its folder's (or file's) own name: ``x/docs`` and ``y/docs`` both give
``docs/…``. Within one command two such sources are refused
(:func:`ragguard.retrieval.loaders.check_distinct_sources`); across commands the manifest's ``roots``
remembers where each source came from, written relative to the index folder (so a checkout that moves
with its index still matches, and a bundled index names no machine's paths). ``index add`` then refuses:

* another folder with an indexed source's name while that source's folder still exists (its
  documents would silently replace the indexed ones); a source whose folder is gone was moved, and
  is taken from its new place;
* a folder or file inside an indexed source folder, or a folder that holds one (its files would be
  indexed twice, under two ids, and the older copy would go stale).

Indexes written before roots were recorded have none: nothing is checked for their sources until an
``index add`` records them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ragguard.errors import UsageError

__all__ = ["source_roots", "stored_roots", "check_roots", "kept_roots"]


def source_roots(sources: Sequence[str | Path]) -> dict[str, Path]:
    """``{id prefix: resolved folder or file}`` of each source (``docs/`` for a folder, ``faq.md`` for a file)."""
    from ragguard.retrieval.loaders import source_ids

    return {source_ids(s)[1]: Path(s).resolve() for s in sources}


def stored_roots(index: Path, roots: Mapping[str, Path]) -> dict[str, str]:
    """``roots`` as the manifest keeps them: relative to the index folder where one path can reach the other."""
    base = index.resolve()
    out: dict[str, str] = {}
    for ident, root in sorted(roots.items()):
        try:
            out[ident] = Path(os.path.relpath(root, base)).as_posix()
        except ValueError:  # another drive (Windows): only an absolute path reaches it
            out[ident] = root.as_posix()
    return out


def _read(index: Path, stored: Mapping[str, str]) -> dict[str, Path]:
    base = index.resolve()
    return {ident: Path(os.path.normpath(base / value)) for ident, value in stored.items() if isinstance(value, str)}


def check_roots(index: Path, stored: Mapping[str, str], sources: Sequence[str | Path]) -> list[str]:
    """Refuse sources that another indexed source's documents would clash with; return notes on moved sources.

    Raises:
        UsageError: naming the indexed source, where it was read from, and what to run instead.
    """
    known = _read(index, stored)
    notes: list[str] = []
    for ident, root in source_roots(sources).items():
        before = known.get(ident)
        if before is not None and before != root:
            if before.exists():
                raise UsageError(
                    f"index {str(index)!r} has source {ident!r} read from {str(before)!r}; {str(root)!r} is another "
                    f"{'folder' if ident.endswith('/') else 'file'} with that name, and adding it would replace that "
                    f"source's documents: remove the indexed one first (`ragguard index remove {index} {ident}`), "
                    "or index the two under different names"
                )
            notes.append(f"source {ident!r} was read from {str(before)!r}, which is gone: it is read from "
                         f"{str(root)!r} now")
        for other, place in known.items():
            if other == ident or not other.endswith("/"):
                continue
            if root.is_relative_to(place):
                raise UsageError(
                    f"{str(root)!r} is inside source {other!r} of index {str(index)!r} (read from {str(place)!r}), "
                    f"so {'its files are' if ident.endswith('/') else 'it is'} indexed there already: run "
                    f"`ragguard index add {index} {place}` "
                    "(--include chooses which files are read)"
                )
            if ident.endswith("/") and place.is_relative_to(root):
                raise UsageError(
                    f"{str(root)!r} holds source {other!r} of index {str(index)!r} (read from {str(place)!r}), whose "
                    f"files would be indexed twice: remove it first (`ragguard index remove {index} {other}`)"
                )
    return notes


def kept_roots(stored: Mapping[str, str], new: Mapping[str, str], paths: Iterable[str]) -> dict[str, str]:
    """The roots to record after an update: the new ones, and the old ones of sources that still have files."""
    paths = list(paths)
    roots = {**{k: v for k, v in stored.items() if isinstance(v, str)}, **new}
    return {ident: value for ident, value in sorted(roots.items())
            if any(p == ident or p.startswith(f"{ident}:") or (ident.endswith("/") and p.startswith(ident))
                   for p in paths)}
