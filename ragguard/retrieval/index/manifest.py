"""The index folder's file names, format version and the manifest check that runs before anything is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragguard.errors import IndexLoadError

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "CHUNKS", "FAISS_FILE", "VECTORS", "read_manifest"]

FORMAT = "ragguard-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
FAISS_FILE = "index.faiss"
VECTORS = "vectors.npy"


def leftover_folders(out: Path) -> list[Path]:
    """The ``.NAME.tmp-*`` and ``.NAME.old-*`` folders that writers of index ``out`` left when they were stopped."""
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir()
                  if p.is_dir() and p.name.startswith((f".{out.name}.tmp-", f".{out.name}.old-")))


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of index folder ``root``, checked for format, version, required fields and file list.

    Raises:
        IndexLoadError: no manifest, not JSON, a foreign or newer format, or missing fields.
    """
    path = root / MANIFEST
    if not path.is_file():
        raise IndexLoadError(
            f"{str(root)!r} is not a ragguard index (no manifest.json): build one with `ragguard index build`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexLoadError(f"index {str(root)!r}: manifest.json is not valid JSON; rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexLoadError(f"{str(root)!r} is not a ragguard index (manifest format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IndexLoadError(
            f"index {str(root)!r} has format version {version!r}, newer than this ragguard supports "
            f"({FORMAT_VERSION}): upgrade ragguard or rebuild the index"
        )
    try:
        manifest["embedder"]["name"], manifest["embedder"]["dimension"], manifest["counts"]["chunks"]
        files = manifest["files"]
        manifest["sources"].items()
    except (KeyError, TypeError, AttributeError):
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lacks required fields; rebuild the index") from None
    if not {FAISS_FILE, CHUNKS} <= set(files) <= {FAISS_FILE, CHUNKS, VECTORS}:
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lists unexpected files {sorted(files)}; rebuild it")
    kind = manifest.get("index_type", "flat")
    if kind not in ("flat", "hnsw", "ivf", "ivfpq"):
        raise IndexLoadError(f"index {str(root)!r}: unknown index type {manifest.get('index_type')!r}; rebuild it")
    # Types too: a hand-edited manifest ("384" for 384, a missing ef_search) fails here with its field named,
    # not later as a KeyError or as "dimension 384, manifest says 384".
    params = manifest.get("index_params") or {}
    needed = {"hnsw": ("ef_search",), "ivf": ("nprobe",), "ivfpq": ("nprobe",)}.get(kind, ())
    fields = {"embedder.name": (manifest["embedder"]["name"], str),
              "embedder.dimension": (manifest["embedder"]["dimension"], int),
              "counts.chunks": (manifest["counts"]["chunks"], int),
              "files": (files, dict), "sources": (manifest["sources"], dict), "index_params": (params, dict),
              "roots": (manifest.get("roots", {}), dict)}
    if isinstance(params, dict):
        fields.update({f"index_params.{k}": (params.get(k), int) for k in (*needed, *params)})
    for name, (value, kind_of) in fields.items():
        if not isinstance(value, kind_of) or isinstance(value, bool) or (kind_of is int and value < 0):
            raise IndexLoadError(f"index {str(root)!r}: manifest.json field {name} is {value!r}, not "
                                 f"{'a whole number' if kind_of is int else kind_of.__name__} (edited by hand?); "
                                 "rebuild the index")
    return manifest
