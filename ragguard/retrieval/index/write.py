"""Writing an index folder: into a temporary sibling, then swapped into place with renames."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragguard._io import json_line
from ragguard._version import __version__
from ragguard.errors import UsageError
from ragguard.generation.models import sha256_of
from ragguard.retrieval.ann import build_faiss, choose_type, default_params, faiss_module
from ragguard.retrieval.chunking import ChunkingSettings
from ragguard.retrieval.index.manifest import (
    CHUNKS,
    FAISS_FILE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    VECTORS,
    leftover_folders,
)
from ragguard.retrieval.index.sources import Progress

__all__ = ["write_index", "clear_leftovers", "check_out"]

log = logging.getLogger("ragguard")


def write_index(
    out: Path,
    chunks: Sequence[dict[str, Any]],
    vectors: np.ndarray,
    embedder_name: str,
    settings: ChunkingSettings,
    hashes: dict[str, str],
    skipped: list[dict[str, str]],
    requested_type: str,
    progress: Progress | None,
    roots: dict[str, str] | None = None,
) -> str:
    """Write a complete index into a temporary sibling folder and swap it into ``out``; return the index type.

    ``roots``: where each source was read from (:mod:`ragguard.retrieval.index.roots`).
    """
    kind = choose_type(requested_type, len(chunks))
    params = default_params(kind, len(chunks), int(vectors.shape[1]))
    if progress and kind != "flat":
        progress(f"building a {kind} index of {len(chunks)} vectors {params}")
    index = build_faiss(vectors, kind, params)
    faiss = faiss_module()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; an index is meant to be shared
        faiss.write_index(index, str(tmp / FAISS_FILE))
        names = [FAISS_FILE, CHUNKS]
        if kind == "ivfpq":
            np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            names.append(VECTORS)
        with open(tmp / CHUNKS, "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json_line(c))
                fh.write("\n")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ragguard_version": __version__,
            "embedder": {"name": embedder_name, "dimension": int(vectors.shape[1]), "normalized": True},
            "metric": "inner_product",
            "index_type": kind,
            "index_type_requested": requested_type,
            "index_params": params,
            "chunking": settings.to_dict(),
            "counts": {"sources": len(hashes), "documents": len({c["doc_id"] for c in chunks}), "chunks": len(chunks)},
            "sources": dict(sorted(hashes.items())),
            "skipped": skipped,
            **({"roots": roots} if roots is not None else {}),
            "files": {name: sha256_of(tmp / name) for name in names},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return kind


def _replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` into ``target`` with renames only (the old index survives a crash)."""
    if target.exists() and not (target / MANIFEST).exists() and any(target.iterdir()):
        raise UsageError(f"{str(target)!r} exists and is not a ragguard index: choose an empty or new --out folder")
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clear_leftovers(out: Path) -> None:
    """Remove temporary folders of writers that were killed (only called under the writer lock).

    A writer killed between the two renames of the swap (:func:`_replace_dir`) leaves no index at ``out``, a
    complete new one in ``.NAME.tmp-*`` (its manifest is written last) and the previous one in ``.NAME.old-*``.
    Then the new one (else the previous one) is put back at ``out`` first, and said, before the rest is removed.
    """
    leftovers = leftover_folders(out)
    if leftovers and not out.exists():
        whole = [p for p in leftovers if (p / MANIFEST).is_file()]
        # The finished new index wins over the previous one; between two of a kind, the newer.
        whole.sort(key=lambda p: (".tmp-" in p.name, p.stat().st_mtime))
        if whole:
            os.replace(whole[-1], out)
            leftovers.remove(whole[-1])
            kind = "the index it was writing" if ".tmp-" in whole[-1].name else "the index as it was before"
            log.warning("a writer of %s was stopped between its two renames: %s is back in place", out, kind)
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not an index."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} is a file, not an index folder: choose another --out")
    if out.is_dir() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UsageError(f"{str(out)!r} exists and is not a ragguard index: choose an empty or new --out folder")
