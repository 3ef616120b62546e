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

Modules: :mod:`~ragguard.retrieval.index.manifest` (file names, format, the
manifest check), :mod:`~ragguard.retrieval.index.sources` (reading, chunking,
embedding), :mod:`~ragguard.retrieval.index.write` (the atomic folder write),
:mod:`~ragguard.retrieval.index.build` (build, add, remove),
:mod:`~ragguard.retrieval.index.store` (:class:`KnowledgeIndex`, loading and
verifying) and :mod:`~ragguard.retrieval.index.retriever` (:class:`IndexRetriever`).
"""

from ragguard.retrieval.index.build import BuildSummary, build_index, remove_from_index, update_index
from ragguard.retrieval.index.manifest import FORMAT, FORMAT_VERSION
from ragguard.retrieval.index.retriever import IndexRetriever
from ragguard.retrieval.index.sources import chunking_for, collect_chunks, token_counter
from ragguard.retrieval.index.store import KnowledgeIndex

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
    "token_counter",
]
