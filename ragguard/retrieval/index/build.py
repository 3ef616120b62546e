"""Building an index, and updating it: add new and changed sources, remove others."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from ragguard._text import counted
from ragguard.core.protocols import Embedder
from ragguard.errors import UsageError
from ragguard.locking import WriterLock
from ragguard.retrieval.ann import choose_type
from ragguard.retrieval.chunking import ChunkingSettings
from ragguard.retrieval.index.roots import check_roots, kept_roots, source_roots, stored_roots
from ragguard.retrieval.index.sources import (
    Progress,
    chunk_sources,
    chunking_for,
    embed_texts,
    no_documents,
    scan_sources,
)
from ragguard.retrieval.index.store import KnowledgeIndex
from ragguard.retrieval.index.write import check_out, clear_leftovers, write_index

__all__ = ["BuildSummary", "build_index", "update_index", "remove_from_index"]


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
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["embed_seconds"] = round(self.embed_seconds, 3)
        data["embed_rate"] = round(self.embedded / self.embed_seconds, 1) if self.embed_seconds > 0 else None
        return data


UNKNOWN_WARN = 0.2  # share of unknown tokens in the chunks above which the embedder is said not to read them
_UNKNOWN_SAMPLE = 256  # chunks looked at (spread over the index)


def vocabulary_warning(embedder: Embedder, texts: Sequence[str]) -> str | None:
    """A warning when ``embedder``'s tokenizer reads much of ``texts`` as unknown tokens (its vocabulary lacks their script)."""
    read = getattr(embedder, "unknown_share", None)
    if read is None or not texts:
        return None
    step = max(1, len(texts) // _UNKNOWN_SAMPLE)
    share = read(list(texts[::step]))
    if share is None or share <= UNKNOWN_WARN:
        return None
    return (f"embedder {embedder.name} reads {share:.0%} of these documents' tokens as unknown (its vocabulary lacks "
            "their script), so search will barely tell them apart: build the index with an embedder for their "
            "language (for Chinese, configs/chinese-bge-small.yaml)")


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
    check_out(out_path)
    with WriterLock(out_path):
        clear_leftovers(out_path)
        scan = scan_sources(sources, include, exclude)
        settings, counter = chunking_for(embedder, settings)
        names = sorted(scan.hashes)
        if not names:
            raise no_documents(sources, scan.skipped)
        if progress:
            progress(f"read {counted(sum(len(d) for d in scan.documents.values()), 'document')} from "
                     f"{counted(len(names), 'file')} "
                     f"({len(scan.skipped)} skipped, {scan.excluded} excluded)")
        by_source = chunk_sources(scan, names, settings, counter)
        chunks = [c for name in names for c in by_source[name]]
        warning = vocabulary_warning(embedder, [c.text for c in chunks])
        if progress:
            progress(f"embedding {counted(len(chunks), 'chunk')} with {embedder.name}")
        vectors, embed_seconds = embed_texts(embedder, [c.text for c in chunks], progress)
        assert vectors is not None
        kind = write_index(out_path, [c.to_record() for c in chunks], vectors, embedder.name, settings,
                           scan.hashes, scan.skipped, index_type, progress,
                           roots=kept_roots({}, stored_roots(out_path, source_roots(sources)), names))
    return BuildSummary(
        out=str(out_path), documents=len({c.doc_id for c in chunks}), chunks=len(chunks),
        dimension=int(vectors.shape[1]), embedder=embedder.name, skipped=scan.skipped,
        seconds=time.perf_counter() - started, sources=len(names), index_type=kind, excluded=scan.excluded,
        embedded=len(chunks), added=names, embed_seconds=embed_seconds, warnings=[warning] if warning else [],
    )


def _in_scope(sources: Sequence[str | Path], include: Sequence[str] = (),
              exclude: Sequence[str] = ()) -> Callable[[str], bool]:
    """Whether an indexed path comes from one of ``sources`` (a folder's files, or the file itself) and is one
    that ``include``/``exclude`` let be read (a file the globs leave out is not gone: it stays as it is)."""
    from ragguard.retrieval.loaders import excluded_by, source_ids

    prefixes, exact = [], set()
    for s in sources:
        _, ident = source_ids(s)
        (prefixes.append(ident) if ident.endswith("/") else exact.add(ident))

    def check(path: str) -> bool:
        base = path.split(":", 1)[0] if ":" in path else path  # rows of a FAQ table belong to its file
        if base in exact:
            return True
        prefix = next((p for p in prefixes if base.startswith(p)), None)
        return prefix is not None and excluded_by(base[len(prefix):], include, exclude) is None

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
        clear_leftovers(out_path)
        old = KnowledgeIndex.load(out_path)
        old.check_embedder(embedder)
        settings, counter = chunking_for(embedder, ChunkingSettings.from_dict(old.manifest["chunking"]))
        stored = old.manifest.get("roots") or {}
        moved = check_roots(out_path, stored, sources)
        scan = scan_sources(sources, include, exclude)
        in_scope = _in_scope(sources, include, exclude)
        before: dict[str, str] = old.manifest["sources"]
        unread = [s["path"] for s in scan.skipped if s["path"].endswith("/")]  # folders that could not be listed
        removed = sorted(s for s in before if in_scope(s) and s not in scan.hashes
                         and not any(s.startswith(folder) for folder in unread))
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
        # Embedded in the order the records are written below (sources sorted), so each vector lands on its chunk.
        embedded_sources = sorted(added + changed)
        fresh = chunk_sources(scan, embedded_sources, settings, counter)
        texts = [c.text for name in embedded_sources for c in fresh[name]]
        warning = vocabulary_warning(embedder, texts)
        if warning:
            summary.warnings.append(warning)
        if progress:
            progress(f"{len(added)} new, {len(changed)} changed, {len(removed)} removed sources; "
                     f"embedding {counted(len(texts), 'chunk')}")
        new_vectors, summary.embed_seconds = embed_texts(embedder, texts, progress)
        summary.embedded = len(texts)
        by_source: dict[str, list[int]] = {}
        for i, c in enumerate(old.chunks):
            by_source.setdefault(c.get("source") or c["doc_id"], []).append(i)
        kept_ids = [i for name in sorted(hashes) if name not in fresh for i in by_source.get(name, [])]
        summary.reused = len(kept_ids)
        roots = kept_roots(stored, stored_roots(out_path, source_roots(sources)), hashes)
        if progress:
            for note in moved:
                progress(note)
        if not (added or changed or removed) and skipped == old.manifest.get("skipped", []) and roots == stored:
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
        summary.index_type = write_index(out_path, records, vectors, embedder.name, settings, hashes, skipped,
                                         requested, progress, roots=roots)
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
        clear_leftovers(out_path)
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
        stored = old.manifest.get("roots")
        kind = write_index(out_path, records, old.vectors(keep), old.embedder_name,
                           ChunkingSettings.from_dict(old.manifest["chunking"]), hashes, skipped, requested, progress,
                           roots=None if stored is None else kept_roots(stored, {}, hashes))
    return BuildSummary(out=str(out_path), documents=len({r["doc_id"] for r in records}), chunks=len(records),
                        dimension=old.dimension, embedder=old.embedder_name, sources=len(hashes), index_type=kind,
                        removed=removed, reused=len(records), seconds=time.perf_counter() - started)
