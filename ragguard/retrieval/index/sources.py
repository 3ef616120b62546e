"""Reading, chunking and embedding the sources of an index."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragguard.core.protocols import Embedder
from ragguard.errors import UsageError
from ragguard.retrieval.chunking import Chunk, ChunkingSettings, TokenCounter, chunk_document

__all__ = ["Progress", "Scan", "token_counter", "chunking_for", "scan_sources", "chunk_sources", "collect_chunks",
           "no_documents", "embed_texts"]

# Chunks per embed call: small enough that the progress bar moves every few seconds on a CPU.
EMBED_BATCH = 256
Progress = Callable[[str], None]


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
class Scan:
    """The usable documents of a set of sources, their files' hashes, and what was skipped or excluded."""

    documents: dict[str, list[Any]]  # source -> documents in file order
    hashes: dict[str, str]
    skipped: list[dict[str, str]]
    excluded: int = 0


def scan_sources(sources: Sequence[str | Path], include: Sequence[str], exclude: Sequence[str]) -> Scan:
    """Read every file of ``sources`` (see :func:`ragguard.retrieval.loaders.iter_documents`)."""
    from ragguard.retrieval.loaders import EXCLUDED, check_distinct_sources, iter_documents

    check_distinct_sources(sources)
    scan = Scan({}, {}, [])
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


def chunk_sources(scan: Scan, names: Sequence[str], settings: ChunkingSettings,
                  counter: TokenCounter | None) -> dict[str, list[Chunk]]:
    """The chunks of each named source, in document order."""
    return {name: [c for doc in scan.documents[name] for c in chunk_document(doc, settings, counter)] for name in names}


def collect_chunks(
    sources: Sequence[str | Path],
    settings: ChunkingSettings,
    counter: TokenCounter | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[Chunk], dict[str, str], list[dict[str, str]]]:
    """Read and chunk every source; return chunks (in index order), per-source hashes and skipped files."""
    scan = scan_sources(sources, include, exclude)
    names = sorted(scan.hashes)
    by_source = chunk_sources(scan, names, settings, counter)
    return [c for name in names for c in by_source[name]], dict(sorted(scan.hashes.items())), scan.skipped


def no_documents(sources: Sequence[str | Path], skipped: Sequence[dict[str, str]] = ()) -> UsageError:
    """The error for sources that hold no readable document, with why the first files were passed over."""
    names = ", ".join(str(s) for s in sources)
    why = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3]) + (
        f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    return UsageError(
        f"no readable documents found in {names}" + (f" ({why})" if why else "")
        + ": point the index at a folder of .md, .txt, .html, .pdf, .docx or FAQ .csv/.jsonl files"
    )


def embed_texts(embedder: Embedder, texts: Sequence[str], progress: Progress | None) -> tuple[np.ndarray | None, float]:
    """Unit float32 vectors for ``texts`` in order (longest first in batches, as sentence-transformers does).

    ``progress`` a :class:`~ragguard.progress.ProgressBar` (as ``ragguard index build``
    passes): it counts the chunks embedded, with chunks per second and ETA,
    redrawn in place on a terminal. Any other callback gets a status line every
    few seconds.
    """
    from ragguard.progress import ProgressBar

    if not texts:
        return None, 0.0
    started = time.perf_counter()
    bar = progress if isinstance(progress, ProgressBar) else None
    if bar is not None:
        bar.total, bar.done, bar.started = len(texts), 0, bar.clock()  # type: ignore[operator]
        bar.counts.clear()
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    parts: list[np.ndarray] = []
    last = started
    done = 0
    for start in range(0, len(order), EMBED_BATCH):
        batch = [texts[i] for i in order[start : start + EMBED_BATCH]]
        parts.append(np.asarray(embedder.embed(batch), dtype=np.float32))
        done += len(batch)
        now = time.perf_counter()
        if bar is not None:
            bar.advance("", count=len(batch))
        elif progress and (now - last > 2 or done == len(texts)) and len(texts) > EMBED_BATCH:
            progress(f"embedded {done}/{len(texts)} chunks ({done / (now - started):.1f} chunks/s)")
            last = now
    if bar is not None:
        bar.close()
    stacked = np.concatenate(parts)
    vectors = np.empty_like(stacked)
    vectors[order] = stacked
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), time.perf_counter() - started
