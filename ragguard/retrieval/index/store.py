"""A loaded index: verified on load, searched by vector, summarised for ``ragguard index info``."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragguard.core.protocols import Embedder
from ragguard.core.types import Passage
from ragguard.errors import IndexLoadError
from ragguard.generation.models import sha256_of
from ragguard.retrieval.ann import Reranked, apply_search_params, faiss_module, recall_at_k
from ragguard.retrieval.index.manifest import CHUNKS, FAISS_FILE, MANIFEST, VECTORS, leftover_folders, read_manifest
from ragguard.retrieval.search import BM25Index

__all__ = ["KnowledgeIndex"]



def _rebuild(root: Path) -> str:
    """How to replace a damaged index: the same build again (its sources are listed in its manifest)."""
    return (f"rebuild it with `ragguard index build SOURCE --out {root}` from the documents it was built from "
            "(manifest.json lists them under 'sources')")

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
        if root.is_file():
            raise IndexLoadError(
                f"index {str(root)!r} is a file, not an index folder: pass the folder that holds manifest.json "
                f"(build one with `ragguard index build SOURCE --out DIR`)"
            )
        if not root.is_dir():
            left = [p.name for p in leftover_folders(root) if (p / MANIFEST).is_file()]
            if left:  # a writer stopped between the two renames of its swap (write.clear_leftovers puts it back)
                raise IndexLoadError(
                    f"index folder {str(root)!r} is missing, but a write that was stopped left a whole copy "
                    f"({left[0]}): `ragguard index add {root} SOURCE...` puts it back first")
            raise IndexLoadError(
                f"index folder {str(root)!r} does not exist: build one with `ragguard index build SOURCE --out {root}` "
                "(with the --config that will read it, so that it is built with that config's embedder)"
            )
        manifest = read_manifest(root)
        for name, expected in manifest["files"].items():
            file = root / name
            if not file.is_file():
                raise IndexLoadError(f"index {str(root)!r} is missing {name}; " + _rebuild(root))
            if sha256_of(file) != expected:
                raise IndexLoadError(
                    f"index {str(root)!r} is damaged: {name} does not match its checksum in manifest.json; " + _rebuild(root)
                )
        chunks = []
        with open(root / CHUNKS, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    record = json.loads(line.decode("utf-8"))
                    chunks.append({
                        "doc_id": record["doc_id"], "chunk_id": record["chunk_id"], "text": record["text"],
                        "source": record.get("source") or record["doc_id"], "lang": record.get("lang"),
                        "tags": list(record.get("tags") or []),
                    })
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
                    raise IndexLoadError(f"index {str(root)!r}: chunks.jsonl line {lineno} is malformed; " + _rebuild(root)) from None
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(root / FAISS_FILE))
        except RuntimeError as exc:
            raise IndexLoadError(f"index {str(root)!r}: index.faiss cannot be read ({exc}); " + _rebuild(root)) from None
        if index.ntotal != len(chunks) or index.ntotal != manifest["counts"]["chunks"]:
            raise IndexLoadError(
                f"index {str(root)!r} is inconsistent: {index.ntotal} vectors, {len(chunks)} chunks, manifest.json "
                f"says {manifest['counts']['chunks']}; " + _rebuild(root)
            )
        if index.d != manifest["embedder"]["dimension"]:
            raise IndexLoadError(
                f"index {str(root)!r}: vectors have dimension {index.d}, manifest says "
                f"{manifest['embedder']['dimension']}; " + _rebuild(root)
            )
        apply_search_params(index, manifest.get("index_type", "flat"), manifest.get("index_params") or {})
        vectors = None
        if VECTORS in manifest["files"]:
            try:
                vectors = np.load(root / VECTORS, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                why = "it holds Python objects, a pickle, which ragguard never loads" if "pickle" in str(exc) else exc
                raise IndexLoadError(f"index {str(root)!r}: vectors.npy cannot be read ({why}); " + _rebuild(root)) from None
            if vectors.shape != (index.ntotal, index.d) or vectors.dtype != np.float32:
                raise IndexLoadError(f"index {str(root)!r}: vectors.npy has shape {vectors.shape}; " + _rebuild(root))
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
                f"index {str(self.path)!r} has dimension {self.dimension} but the embedder gives {dimension}: use the "
                "embedder it was built with, or rebuild the index with this one"
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

    @functools.cached_property
    def by_chunk_id(self) -> dict[str, dict[str, Any]]:
        """Each chunk's record (text, ``source``, ``tags``, ``lang``) by its ``chunk_id`` (built on first use)."""
        return {str(c["chunk_id"]): c for c in self.chunks}

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
