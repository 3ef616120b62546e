"""A FAISS knowledge index on disk: build, update, verify, load and search.

Layout of an index folder (nothing in it is ever unpickled):

* ``index.faiss``: FAISS's own binary format (``faiss.write_index``), inner
  product over unit vectors; flat, HNSW, IVF or IVF-PQ;
* ``vectors.npy``: the float32 vectors, only for IVF-PQ (its codes are lossy,
  and updates, MMR and recall checks need the exact vectors); read with
  ``allow_pickle=False``;
* ``chunks.jsonl``: one JSON object per vector, in vector order (text, document,
  source file, language, tags);
* ``manifest.json``: format version, embedder name and dimension, metric, index
  type and parameters, chunking settings, per-source SHA-256 hashes, counts,
  skipped files and SHA-256 checksums of the files above.

Writers take a lock (:mod:`ragguard.locking`), build into a temporary sibling
folder and rename it into place, so an interrupted write leaves the previous
index intact. Loading checks the format, the checksums and the counts before
anything is used. Chunks are stored in source order (sorted source paths,
then document and chunk order), which makes an incremental update and a
full rebuild of the same sources write the same index.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from ragguard._version import __version__
from ragguard.core.protocols import Embedder
from ragguard.core.types import Passage
from ragguard.errors import IndexLoadError, UsageError
from ragguard.generation.models import sha256_of
from ragguard.locking import WriterLock
from ragguard.retrieval.ann import (
    Reranked,
    apply_search_params,
    build_faiss,
    choose_type,
    default_params,
    faiss_module,
    recall_at_k,
)
from ragguard.retrieval.chunking import Chunk, ChunkingSettings, TokenCounter, chunk_document
from ragguard.retrieval.search import BM25Index, RetrievalOptions, matches, mmr_select, reciprocal_rank_fusion

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BuildSummary",
    "KnowledgeIndex",
    "IndexRetriever",
    "build_index",
    "update_index",
    "remove_from_index",
    "collect_chunks",
    "chunking_for",
]

FORMAT = "ragguard-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
FAISS_FILE = "index.faiss"
VECTORS = "vectors.npy"
EMBED_BATCH = 512
Progress = Callable[[str], None]


@dataclass
class BuildSummary:
    """What a build, add or remove did."""

    out: str
    documents: int
    chunks: int
    dimension: int
    embedder: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    sources: int = 0
    index_type: str = "flat"
    excluded: int = 0
    embedded: int = 0
    reused: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    embed_seconds: float = 0.0
    written: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["embed_seconds"] = round(self.embed_seconds, 3)
        data["embed_rate"] = round(self.embedded / self.embed_seconds, 1) if self.embed_seconds > 0 else None
        return data


# ------------------------------------------------------------------ reading and chunking sources
def token_counter(embedder: Embedder) -> tuple[TokenCounter | None, str]:
    """The embedder's token counter and its name, or ``(None, "estimate")`` when it has none."""
    count = getattr(embedder, "count_tokens", None)
    if callable(count):
        return count, embedder.name
    return None, "estimate"


def chunking_for(embedder: Embedder, settings: ChunkingSettings | None = None) -> tuple[ChunkingSettings, TokenCounter | None]:
    """Settings completed for ``embedder`` (tokenizer name, size within its window) and the counter to use."""
    settings = settings or ChunkingSettings()
    if settings.unit != "tokens":
        return settings, None
    counter, name = token_counter(embedder)
    if settings.tokenizer is not None and settings.tokenizer != name:
        raise UsageError(
            f"the index chunks by {settings.tokenizer!r} tokens but the embedder counts {name!r} tokens: "
            "use the index's embedder or rebuild the index"
        )
    window = getattr(embedder, "max_tokens", None)
    size = settings.size
    if isinstance(window, int) and window > 16 and settings.tokenizer is None:
        size = min(size, window - 2)  # room for the [CLS]/[SEP] the embedder adds
    overlap = min(settings.overlap, size // 2)
    return dataclasses.replace(settings, size=size, overlap=overlap, tokenizer=name), counter


@dataclass
class _Scan:
    documents: dict[str, list[Any]]  # source -> documents in file order
    hashes: dict[str, str]
    skipped: list[dict[str, str]]
    excluded: int = 0


def _scan(sources: Sequence[str | Path], include: Sequence[str], exclude: Sequence[str]) -> _Scan:
    from ragguard.retrieval.loaders import EXCLUDED, iter_documents

    scan = _Scan({}, {}, [])
    for doc, path, reason in iter_documents(sources, include, exclude):
        if doc is None:
            if reason and reason.startswith(EXCLUDED):
                scan.excluded += 1
            else:
                scan.skipped.append({"path": path, "reason": reason or "unreadable"})
            continue
        source = doc.source or doc.doc_id
        scan.hashes[source] = doc.sha256
        scan.documents.setdefault(source, []).append(doc)
    scan.skipped.sort(key=lambda s: s["path"])
    return scan


def _chunk_sources(scan: _Scan, names: Sequence[str], settings: ChunkingSettings,
                   counter: TokenCounter | None) -> dict[str, list[Chunk]]:
    return {name: [c for doc in scan.documents[name] for c in chunk_document(doc, settings, counter)] for name in names}


def collect_chunks(
    sources: Sequence[str | Path],
    settings: ChunkingSettings,
    counter: TokenCounter | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[Chunk], dict[str, str], list[dict[str, str]]]:
    """Read and chunk every source; return chunks (in index order), per-source hashes and skipped files."""
    scan = _scan(sources, include, exclude)
    names = sorted(scan.hashes)
    by_source = _chunk_sources(scan, names, settings, counter)
    return [c for name in names for c in by_source[name]], dict(sorted(scan.hashes.items())), scan.skipped


def _no_documents(sources: Sequence[str | Path]) -> UsageError:
    names = ", ".join(str(s) for s in sources)
    return UsageError(
        f"no readable documents found in {names}: point the index at a folder of .md, .txt, .html, .pdf, "
        ".docx or FAQ .csv/.jsonl files"
    )


# ------------------------------------------------------------------ embedding
def _embed(embedder: Embedder, texts: Sequence[str], progress: Progress | None) -> tuple[np.ndarray | None, float]:
    """Unit float32 vectors for ``texts`` in order (longest first in batches, as sentence-transformers does)."""
    if not texts:
        return None, 0.0
    started = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    parts: list[np.ndarray] = []
    last = started
    done = 0
    for start in range(0, len(order), EMBED_BATCH):
        batch = [texts[i] for i in order[start : start + EMBED_BATCH]]
        parts.append(np.asarray(embedder.embed(batch), dtype=np.float32))
        done += len(batch)
        now = time.perf_counter()
        if progress and (now - last > 2 or done == len(texts)) and len(texts) > EMBED_BATCH:
            progress(f"embedded {done}/{len(texts)} chunks ({done / (now - started):.1f} chunks/s)")
            last = now
    stacked = np.concatenate(parts)
    vectors = np.empty_like(stacked)
    vectors[order] = stacked
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), time.perf_counter() - started


# ------------------------------------------------------------------ writing
def _write(
    out: Path,
    chunks: Sequence[dict[str, Any]],
    vectors: np.ndarray,
    embedder_name: str,
    settings: ChunkingSettings,
    hashes: dict[str, str],
    skipped: list[dict[str, str]],
    requested_type: str,
    progress: Progress | None,
) -> str:
    """Write a complete index into a temporary sibling folder and swap it into ``out``; return the index type."""
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
                fh.write(json.dumps(c, ensure_ascii=False))
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


def _clear_leftovers(out: Path) -> None:
    """Remove temporary folders of writers that were killed (only called under the writer lock)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.iterdir():
        if p.is_dir() and (p.name.startswith(f".{out.name}.tmp-") or p.name.startswith(f".{out.name}.old-")):
            shutil.rmtree(p, ignore_errors=True)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} is a file, not an index folder: choose another --out")
    if out.is_dir() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UsageError(f"{str(out)!r} exists and is not a ragguard index: choose an empty or new --out folder")


# ------------------------------------------------------------------ build, add, remove
def build_index(
    sources: Sequence[str | Path],
    out: str | Path,
    embedder: Embedder,
    settings: ChunkingSettings | None = None,
    progress: Progress | None = None,
    index_type: str = "auto",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> BuildSummary:
    """Read, chunk and embed ``sources`` and write an index folder atomically.

    Args:
        index_type: ``auto`` (by size), ``flat``, ``hnsw``, ``ivf`` or ``ivfpq``.
        include, exclude: shell globs on paths relative to each source folder.

    Raises:
        UsageError: no source yields a readable document, ``out`` is not an
            index folder, or another writer holds the index.
    """
    started = time.perf_counter()
    out_path = Path(out)
    choose_type(index_type, 0)  # validate before any work
    _check_out(out_path)
    with WriterLock(out_path):
        _clear_leftovers(out_path)
        scan = _scan(sources, include, exclude)
        settings, counter = chunking_for(embedder, settings)
        names = sorted(scan.hashes)
        if not names:
            raise _no_documents(sources)
        if progress:
            progress(f"read {sum(len(d) for d in scan.documents.values())} documents from {len(names)} files "
                     f"({len(scan.skipped)} skipped, {scan.excluded} excluded)")
        by_source = _chunk_sources(scan, names, settings, counter)
        chunks = [c for name in names for c in by_source[name]]
        if progress:
            progress(f"embedding {len(chunks)} chunks with {embedder.name}")
        vectors, embed_seconds = _embed(embedder, [c.text for c in chunks], progress)
        assert vectors is not None
        kind = _write(out_path, [c.to_record() for c in chunks], vectors, embedder.name, settings,
                      scan.hashes, scan.skipped, index_type, progress)
    return BuildSummary(
        out=str(out_path), documents=len({c.doc_id for c in chunks}), chunks=len(chunks),
        dimension=int(vectors.shape[1]), embedder=embedder.name, skipped=scan.skipped,
        seconds=time.perf_counter() - started, sources=len(names), index_type=kind, excluded=scan.excluded,
        embedded=len(chunks), added=names, embed_seconds=embed_seconds,
    )


def _in_scope(sources: Sequence[str | Path]) -> Callable[[str], bool]:
    """Whether an indexed path comes from one of ``sources`` (a folder's files, or the file itself)."""
    from ragguard.retrieval.loaders import source_ids

    prefixes, exact = [], set()
    for s in sources:
        _, ident = source_ids(s)
        (prefixes.append(ident) if ident.endswith("/") else exact.add(ident))

    def check(path: str) -> bool:
        base = path.split(":", 1)[0] if ":" in path else path  # rows of a FAQ table belong to its file
        return base in exact or any(base.startswith(p) for p in prefixes)

    return check


def update_index(
    out: str | Path,
    sources: Sequence[str | Path],
    embedder: Embedder,
    progress: Progress | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> BuildSummary:
    """Bring an index up to date with ``sources`` (``ragguard index add``).

    New and changed source files (by SHA-256) are chunked and embedded;
    unchanged ones keep their chunks and vectors; files that were indexed
    from these sources but are gone (or now unreadable) are removed; sources
    not named are left as they are. The result is the index a full build of
    the same sources writes.

    Raises:
        IndexLoadError: the index is damaged or built with another embedder.
        UsageError: another writer holds the index, or nothing would be left.
    """
    started = time.perf_counter()
    out_path = Path(out)
    with WriterLock(out_path):
        _clear_leftovers(out_path)
        old = KnowledgeIndex.load(out_path)
        old.check_embedder(embedder)
        settings, counter = chunking_for(embedder, ChunkingSettings.from_dict(old.manifest["chunking"]))
        scan = _scan(sources, include, exclude)
        in_scope = _in_scope(sources)
        before: dict[str, str] = old.manifest["sources"]
        removed = sorted(s for s in before if in_scope(s) and s not in scan.hashes)
        changed = sorted(s for s in scan.hashes if s in before and before[s] != scan.hashes[s])
        added = sorted(s for s in scan.hashes if s not in before)
        hashes = {s: h for s, h in before.items() if s not in removed}
        hashes.update(scan.hashes)
        skipped = sorted([s for s in old.manifest.get("skipped", []) if not in_scope(s["path"])] + scan.skipped,
                         key=lambda s: s["path"])
        summary = BuildSummary(out=str(out_path), documents=0, chunks=0, dimension=old.dimension,
                               embedder=embedder.name, skipped=scan.skipped, sources=len(hashes),
                               index_type=old.manifest["index_type"], excluded=scan.excluded,
                               added=added, changed=changed, removed=removed)
        if not hashes:
            raise UsageError(f"updating would leave index {str(out_path)!r} empty: build a new index instead")
        fresh = _chunk_sources(scan, added + changed, settings, counter)
        texts = [c.text for name in added + changed for c in fresh[name]]
        if progress:
            progress(f"{len(added)} new, {len(changed)} changed, {len(removed)} removed sources; "
                     f"embedding {len(texts)} chunks")
        new_vectors, summary.embed_seconds = _embed(embedder, texts, progress)
        summary.embedded = len(texts)
        by_source: dict[str, list[int]] = {}
        for i, c in enumerate(old.chunks):
            by_source.setdefault(c.get("source") or c["doc_id"], []).append(i)
        kept_ids = [i for name in sorted(hashes) if name not in fresh for i in by_source.get(name, [])]
        summary.reused = len(kept_ids)
        if not (added or changed or removed) and skipped == old.manifest.get("skipped", []):
            summary.written = False
            summary.chunks, summary.documents = len(old.chunks), old.manifest["counts"].get("documents", 0)
            summary.seconds = time.perf_counter() - started
            return summary
        old_vectors = old.vectors(kept_ids) if kept_ids else np.zeros((0, old.dimension), np.float32)
        reused = dict(zip(kept_ids, range(len(kept_ids)), strict=True))
        records: list[dict[str, Any]] = []
        rows: list[np.ndarray] = []
        offset = 0
        for name in sorted(hashes):
            if name in fresh:
                for c in fresh[name]:
                    records.append(c.to_record())
                    assert new_vectors is not None
                    rows.append(new_vectors[offset])
                    offset += 1
            else:
                for i in by_source.get(name, []):
                    records.append(old.chunks[i])
                    rows.append(old_vectors[reused[i]])
        vectors = np.stack(rows).astype(np.float32)
        requested = old.manifest.get("index_type_requested", old.manifest["index_type"])
        summary.index_type = _write(out_path, records, vectors, embedder.name, settings, hashes, skipped,
                                    requested, progress)
    summary.chunks, summary.documents = len(records), len({r["doc_id"] for r in records})
    summary.seconds = time.perf_counter() - started
    return summary


def remove_from_index(out: str | Path, pattern: str, progress: Progress | None = None) -> BuildSummary:
    """Remove every source whose path matches ``pattern`` (a shell glob, or a folder prefix).

    Raises:
        UsageError: nothing matches, or every source would go.
    """
    started = time.perf_counter()
    out_path = Path(out)
    with WriterLock(out_path):
        _clear_leftovers(out_path)
        old = KnowledgeIndex.load(out_path)
        prefix = pattern.rstrip("/") + "/"

        def hit(path: str) -> bool:
            base = path.split(":", 1)[0] if ":" in path else path
            return fnmatch(base, pattern) or base.startswith(prefix)

        before: dict[str, str] = old.manifest["sources"]
        removed = sorted(s for s in before if hit(s))
        if not removed:
            raise UsageError(f"no source of index {str(out_path)!r} matches {pattern!r}: "
                             f"`ragguard index info {out_path} --json` lists the sources")
        hashes = {s: h for s, h in before.items() if s not in removed}
        if not hashes:
            raise UsageError(f"{pattern!r} matches every source of {str(out_path)!r}: delete the folder instead")
        keep = [i for i, c in enumerate(old.chunks) if (c.get("source") or c["doc_id"]) in hashes]
        records = [old.chunks[i] for i in keep]
        skipped = [s for s in old.manifest.get("skipped", []) if not hit(s["path"])]
        if progress:
            progress(f"removing {len(removed)} sources ({len(old.chunks) - len(keep)} chunks)")
        requested = old.manifest.get("index_type_requested", old.manifest["index_type"])
        kind = _write(out_path, records, old.vectors(keep), old.embedder_name,
                      ChunkingSettings.from_dict(old.manifest["chunking"]), hashes, skipped, requested, progress)
    return BuildSummary(out=str(out_path), documents=len({r["doc_id"] for r in records}), chunks=len(records),
                        dimension=old.dimension, embedder=old.embedder_name, sources=len(hashes), index_type=kind,
                        removed=removed, reused=len(records), seconds=time.perf_counter() - started)


# ------------------------------------------------------------------ loading and searching
class KnowledgeIndex:
    """A verified, loaded index. Use :meth:`load`."""

    def __init__(self, path: Path, manifest: dict[str, Any], chunks: list[dict[str, Any]], faiss_index: Any,
                 vectors: np.ndarray | None = None):
        self.path = path
        self.manifest = manifest
        self.chunks = chunks
        self._index = faiss_index
        self._vectors = vectors
        self._bm25: BM25Index | None = None
        self._direct_map = False

    @property
    def embedder_name(self) -> str:
        return str(self.manifest["embedder"]["name"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedder"]["dimension"])

    @property
    def index_type(self) -> str:
        return str(self.manifest.get("index_type", "flat"))

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
            if sha256_of(file) != expected:
                raise IndexLoadError(
                    f"index {str(root)!r} is damaged: {name} does not match its checksum in manifest.json; rebuild it"
                )
        chunks = []
        with open(root / CHUNKS, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                    chunks.append({
                        "doc_id": record["doc_id"], "chunk_id": record["chunk_id"], "text": record["text"],
                        "source": record.get("source") or record["doc_id"], "lang": record.get("lang"),
                        "tags": list(record.get("tags") or []),
                    })
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    raise IndexLoadError(f"index {str(root)!r}: chunks.jsonl line {lineno} is malformed; rebuild it") from None
        faiss = faiss_module()
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
        apply_search_params(index, manifest.get("index_type", "flat"), manifest.get("index_params") or {})
        vectors = None
        if VECTORS in manifest["files"]:
            try:
                vectors = np.load(root / VECTORS, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise IndexLoadError(f"index {str(root)!r}: vectors.npy cannot be read ({exc}); rebuild it") from None
            if vectors.shape != (index.ntotal, index.d) or vectors.dtype != np.float32:
                raise IndexLoadError(f"index {str(root)!r}: vectors.npy has shape {vectors.shape}; rebuild it")
        return cls(root, manifest, chunks, index, vectors)

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

    def vectors(self, ids: Sequence[int] | None = None) -> np.ndarray:
        """The stored unit vectors of ``ids`` (all when ``None``), float32 rows."""
        ids_arr = np.arange(len(self.chunks)) if ids is None else np.asarray(ids, dtype=np.int64)
        if self._vectors is not None:
            return np.asarray(self._vectors[ids_arr], dtype=np.float32)
        if len(ids_arr) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.index_type in ("ivf", "ivfpq") and not self._direct_map:
            self._index.make_direct_map()
            self._direct_map = True
        if ids is None:
            return np.asarray(self._index.reconstruct_n(0, len(self.chunks)), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(ids_arr), dtype=np.float32)

    def dense_search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(id, cosine)`` of the ``k`` chunks closest to a query vector, best first; only ``allowed`` ids if given."""
        if k <= 0 or not self.chunks:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        if allowed is not None:
            if len(allowed) == 0:
                return []
            # A filter: score the allowed chunks exactly (a filtered ANN search can miss them all).
            scores = self.vectors(allowed) @ query[0]
            order = np.lexsort((allowed, -scores))[:k]
            return [(int(allowed[i]), float(scores[i])) for i in order]
        scores, ids = self.searcher.search(query, min(k, len(self.chunks)))
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    @property
    def searcher(self) -> Any:
        """What answers vector queries: the FAISS index, or IVF-PQ re-scored with the exact vectors."""
        rerank = int((self.manifest.get("index_params") or {}).get("rerank", 0))
        if self.index_type == "ivfpq" and self._vectors is not None and rerank > 1:
            return Reranked(self._index, self._vectors, rerank)
        return self._index

    def search_vector(self, vector: np.ndarray, k: int) -> list[Passage]:
        """Return the ``k`` chunks closest to a (unit) query vector, best first."""
        return [self.passage(i, s) for i, s in self.dense_search(vector, k)]

    def passage(self, idx: int, score: float) -> Passage:
        c = self.chunks[idx]
        return Passage(doc_id=c["doc_id"], chunk_id=c["chunk_id"], text=c["text"], score=float(score))

    @property
    def bm25(self) -> BM25Index:
        """The keyword index over the chunk texts (built on first use)."""
        if self._bm25 is None:
            self._bm25 = BM25Index([c["text"] for c in self.chunks])
        return self._bm25

    def info(self, recall_sample: int = 200) -> dict[str, Any]:
        """A summary for ``ragguard index info``; approximate types get ``recall_at_10`` against exact search."""
        m = self.manifest
        faiss_bytes = (self.path / FAISS_FILE).stat().st_size
        n = m["counts"]["chunks"]
        recall = None
        if self.index_type != "flat" and n and recall_sample > 0:
            recall = round(recall_at_k(self.searcher, self.vectors(), sample=recall_sample, k=10), 4)
        return {
            "path": str(self.path),
            "format_version": m["format_version"],
            "ragguard_version": m.get("ragguard_version"),
            "embedder": m["embedder"],
            "metric": m["metric"],
            "index_type": self.index_type,
            "index_params": m.get("index_params") or {},
            "chunking": m["chunking"],
            "sources": m["counts"].get("sources", len(m["sources"])),
            "documents": m["counts"]["documents"],
            "chunks": n,
            "languages": _count(c.get("lang") or "unknown" for c in self.chunks),
            "bytes": sum((self.path / name).stat().st_size for name in m["files"]),
            "faiss_bytes": faiss_bytes,
            "bytes_per_vector": round(faiss_bytes / n, 1) if n else None,
            "recall_at_10": recall,
            "recall_sample": min(recall_sample, n) if recall is not None else 0,
            "skipped": m.get("skipped", []),
            "source_list": sorted(m["sources"]),
        }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


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
        manifest["sources"].items()
    except (KeyError, TypeError, AttributeError):
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lacks required fields; rebuild the index") from None
    if not {FAISS_FILE, CHUNKS} <= set(files) <= {FAISS_FILE, CHUNKS, VECTORS}:
        raise IndexLoadError(f"index {str(root)!r}: manifest.json lists unexpected files {sorted(files)}; rebuild it")
    if manifest.get("index_type", "flat") not in ("flat", "hnsw", "ivf", "ivfpq"):
        raise IndexLoadError(f"index {str(root)!r}: unknown index type {manifest.get('index_type')!r}; rebuild it")
    return manifest


class IndexRetriever:
    """A :class:`~ragguard.core.protocols.Retriever` over a loaded index and its embedder.

    Args:
        options: filters, hybrid BM25 fusion and MMR (default: dense search only).
    """

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, options: RetrievalOptions | None = None):
        self.index = index
        self.embedder = embedder
        self.options = options or RetrievalOptions()
        self._checked = False

    def search(self, query: str, k: int) -> list[Passage]:
        opts = self.options
        vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
        if not self._checked:
            self.index.check_embedder(self.embedder, int(vector.shape[0]))
            self._checked = True
        if k <= 0:
            return []
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        allowed = None
        if opts.filtered:
            allowed = np.asarray([i for i, c in enumerate(self.index.chunks) if matches(c, opts)], dtype=np.int64)
            if len(allowed) == 0:
                return []
        wide = opts.mode == "hybrid" or opts.mmr_lambda is not None
        dense = self.index.dense_search(vector, max(k, opts.candidates) if wide else k, allowed)
        cosine = dict(dense)
        ids = [i for i, _ in dense]
        if opts.mode == "hybrid":
            keyword = self.index.bm25.search(query, max(k, opts.candidates), allowed)
            ids = reciprocal_rank_fusion([ids, keyword], opts.rrf_k)[: max(k, opts.candidates)]
        missing = [i for i in ids if i not in cosine]
        if missing:
            cosine.update(zip(missing, (self.index.vectors(missing) @ vector).tolist(), strict=True))
        if opts.mmr_lambda is not None:
            picked = mmr_select(vector, self.index.vectors(ids), k, opts.mmr_lambda)
            ids = [ids[p] for p in picked]
        return [self.index.passage(i, cosine[i]) for i in ids[:k]]
