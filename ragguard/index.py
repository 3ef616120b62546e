"""A FAISS knowledge index on disk: build, verify, load and search.

Layout of an index folder (nothing in it is ever unpickled):

* ``index.faiss``: FAISS's own binary format (inner product over unit vectors);
* ``chunks.jsonl``: one JSON object per vector, in vector order;
* ``manifest.json``: format version, embedder name and dimension, chunking
  settings, per-source SHA-256 hashes, counts and SHA-256 checksums of the two
  files above.

Builds are written to a temporary sibling folder and renamed into place, so
an interrupted build leaves the previous index intact. Loading checks the
format, the checksums and the embedder before anything is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragguard._version import __version__
from ragguard.chunking import Chunk, ChunkingSettings, chunk_document, iter_documents, sha256_bytes
from ragguard.errors import IndexLoadError, UsageError
from ragguard.protocols import Embedder
from ragguard.types import Passage

__all__ = ["FORMAT", "FORMAT_VERSION", "BuildSummary", "KnowledgeIndex", "build_index", "IndexRetriever"]

FORMAT = "ragguard-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
FAISS_FILE = "index.faiss"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise IndexLoadError("faiss is not installed: run `pip install faiss-cpu`") from exc
    return faiss


@dataclass
class BuildSummary:
    """What an index build did."""

    out: str
    documents: int
    chunks: int
    dimension: int
    embedder: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "documents": self.documents,
            "chunks": self.chunks,
            "dimension": self.dimension,
            "embedder": self.embedder,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def collect_chunks(
    sources: Sequence[str | Path], settings: ChunkingSettings
) -> tuple[list[Chunk], dict[str, str], list[dict[str, str]]]:
    """Read and chunk every source; return chunks, per-source hashes and skipped files."""
    chunks: list[Chunk] = []
    hashes: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for doc, path, reason in iter_documents(sources):
        if doc is None:
            skipped.append({"path": path, "reason": reason or "unreadable"})
            continue
        hashes[doc.doc_id] = doc.sha256
        chunks.extend(chunk_document(doc, settings))
    return chunks, hashes, skipped


def build_index(
    sources: Sequence[str | Path],
    out: str | Path,
    embedder: Embedder,
    settings: ChunkingSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildSummary:
    """Chunk, embed and write an index folder atomically.

    Raises:
        UsageError: when no source yields a readable document.
    """
    started = time.perf_counter()
    settings = settings or ChunkingSettings()
    chunks, hashes, skipped = collect_chunks(sources, settings)
    if not chunks:
        names = ", ".join(str(s) for s in sources)
        raise UsageError(f"no readable .md or .txt documents found in {names}: point index build at a folder of documents")
    if progress:
        progress(f"embedding {len(chunks)} chunks from {len(hashes)} documents with {embedder.name}")
    vectors = np.asarray(embedder.embed([c.text for c in chunks]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    faiss = _faiss()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)

    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.tmp-", dir=out_path.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; an index is meant to be shared
        faiss.write_index(index, str(tmp / FAISS_FILE))
        with open(tmp / CHUNKS, "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps({"doc_id": c.doc_id, "chunk_id": c.chunk_id, "text": c.text}, ensure_ascii=False))
                fh.write("\n")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ragguard_version": __version__,
            "embedder": {"name": embedder.name, "dimension": int(vectors.shape[1]), "normalized": True},
            "metric": "inner_product",
            "index_type": "flat",
            "chunking": settings.to_dict(),
            "counts": {"documents": len(hashes), "chunks": len(chunks)},
            "sources": dict(sorted(hashes.items())),
            "skipped": skipped,
            "files": {name: sha256_bytes((tmp / name).read_bytes()) for name in (FAISS_FILE, CHUNKS)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildSummary(
        out=str(out_path),
        documents=len(hashes),
        chunks=len(chunks),
        dimension=int(vectors.shape[1]),
        embedder=embedder.name,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


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


class KnowledgeIndex:
    """A verified, loaded index. Use :meth:`load`."""

    def __init__(self, path: Path, manifest: dict[str, Any], chunks: list[dict[str, str]], faiss_index: Any):
        self.path = path
        self.manifest = manifest
        self.chunks = chunks
        self._index = faiss_index

    @property
    def embedder_name(self) -> str:
        return str(self.manifest["embedder"]["name"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedder"]["dimension"])

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeIndex:
        """Load and verify an index folder.

        Raises:
            IndexLoadError: missing folder or file, foreign or newer format,
                checksum mismatch, or inconsistent counts.
        """
        root = Path(path)
        if not root.is_dir():
            raise IndexLoadError(
                f"index folder {str(root)!r} does not exist: build one with `ragguard index build SOURCE --out {root}`"
            )
        manifest = _read_manifest(root)
        for name, expected in manifest["files"].items():
            file = root / name
            if not file.is_file():
                raise IndexLoadError(f"index {str(root)!r} is missing {name}: rebuild it with `ragguard index build`")
            actual = sha256_bytes(file.read_bytes())
            if actual != expected:
                raise IndexLoadError(
                    f"index {str(root)!r} is damaged: {name} does not match its checksum in manifest.json; rebuild it"
                )
        chunks = []
        with open(root / CHUNKS, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                    chunks.append({"doc_id": record["doc_id"], "chunk_id": record["chunk_id"], "text": record["text"]})
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise IndexLoadError(f"index {str(root)!r}: chunks.jsonl line {lineno} is malformed; rebuild it") from None
        faiss = _faiss()
        try:
            index = faiss.read_index(str(root / FAISS_FILE))
        except RuntimeError as exc:
            raise IndexLoadError(f"index {str(root)!r}: index.faiss cannot be read ({exc}); rebuild it") from None
        if index.ntotal != len(chunks) or index.ntotal != manifest["counts"]["chunks"]:
            raise IndexLoadError(
                f"index {str(root)!r} is inconsistent: {index.ntotal} vectors, {len(chunks)} chunks; rebuild it"
            )
        if index.d != manifest["embedder"]["dimension"]:
            raise IndexLoadError(
                f"index {str(root)!r}: vectors have dimension {index.d}, manifest says "
                f"{manifest['embedder']['dimension']}; rebuild it"
            )
        return cls(root, manifest, chunks, index)

    def check_embedder(self, embedder: Embedder, dimension: int | None = None) -> None:
        """Refuse to search with an embedder other than the one that built the index."""
        if embedder.name != self.embedder_name:
            raise IndexLoadError(
                f"index {str(self.path)!r} was built with embedder {self.embedder_name!r} but the config uses "
                f"{embedder.name!r}: set embedder.model to match or rebuild the index"
            )
        if dimension is not None and dimension != self.dimension:
            raise IndexLoadError(
                f"index {str(self.path)!r} has dimension {self.dimension} but the embedder gives {dimension}: rebuild it"
            )

    def search_vector(self, vector: np.ndarray, k: int) -> list[Passage]:
        """Return the ``k`` chunks closest to a (unit) query vector, best first."""
        if k <= 0 or not self.chunks:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        scores, ids = self._index.search(query, min(k, len(self.chunks)))
        out = []
        for score, idx in zip(scores[0], ids[0], strict=True):
            if idx < 0:
                continue
            c = self.chunks[int(idx)]
            out.append(Passage(doc_id=c["doc_id"], chunk_id=c["chunk_id"], text=c["text"], score=float(score)))
        return out

    def info(self) -> dict[str, Any]:
        """A summary for ``ragguard index info``."""
        m = self.manifest
        return {
            "path": str(self.path),
            "format_version": m["format_version"],
            "ragguard_version": m.get("ragguard_version"),
            "embedder": m["embedder"],
            "metric": m["metric"],
            "index_type": m["index_type"],
            "chunking": m["chunking"],
            "documents": m["counts"]["documents"],
            "chunks": m["counts"]["chunks"],
            "bytes": sum((self.path / name).stat().st_size for name in m["files"]),
            "skipped": m.get("skipped", []),
        }


def _read_manifest(root: Path) -> dict[str, Any]:
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
    except (KeyError, TypeError):
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lacks required fields; rebuild the index") from None
    if set(files) != {FAISS_FILE, CHUNKS}:
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lists unexpected files {sorted(files)}; rebuild it")
    return manifest


class IndexRetriever:
    """A :class:`~ragguard.protocols.Retriever` over a loaded index and its embedder."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder):
        self.index = index
        self.embedder = embedder
        self._checked = False

    def search(self, query: str, k: int) -> list[Passage]:
        vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
        if not self._checked:
            self.index.check_embedder(self.embedder, int(vector.shape[0]))
            self._checked = True
        return self.index.search_vector(vector, k)
