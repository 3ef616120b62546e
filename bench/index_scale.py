"""How fast and how exact is the knowledge index, from a handbook to a million chunks?

Two measurements, each side by side in one run (absolute times on a shared
machine are noise; the ratios are the result):

1. Build throughput: ``build_index`` (read, chunk in embedder tokens, embed,
   write FAISS + chunk store + manifest) against a bare
   ``SentenceTransformer.encode`` of the very chunk texts the build made,
   with the same model already loaded. Interleaved, best of ``--repeats``.
   The ratio is encode time / build time (1.0 = ragguard adds nothing).
   Corpus: the English pages of the Debian FAQ (``debian-faq``) when
   installed, else ``examples/handbook``.

2. Index types on synthetic 384-d unit vectors (a mixture of 1,000 Gaussian
   clusters, as sentence embeddings are clustered, not uniform) at each
   ``--sizes`` value: build seconds, bytes per vector (the written
   ``index.faiss``), single-query latency p50/p95 on one thread, speed-up over
   flat (p50) and recall@10 against exact search, for flat, HNSW, IVF and
   IVF-PQ with the parameters ragguard picks for that size. Queries are
   held-out vectors from the same distribution.

Usage: python bench/index_scale.py [--sizes 10000,100000] [--queries 200] [--repeats 2]
       [--skip-build] [--skip-types] [--max-files 8]
       [--hnsw-ef 64,128,256] [--nprobe 16,32,64] [--rerank 10,50]
   (--sizes 10000,100000,1000000 needs about 6 GB of memory and a long while on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads slow FAISS
# training several-fold. Set before FAISS is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
FAQ = Path("/usr/share/doc/debian/FAQ")


def corpus(tmp: Path, max_files: int) -> Path:
    src = tmp / "corpus"
    src.mkdir()
    pages = sorted(FAQ.glob("*.en.html"))[:max_files] if FAQ.is_dir() else []
    for page in pages or sorted((ROOT / "examples" / "handbook").glob("*.md")):
        (src / page.name).write_bytes(page.read_bytes())
    return src


def build_throughput(repeats: int, max_files: int) -> None:
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.retrieval.index import KnowledgeIndex, build_index

    embedder = SentenceTransformerEmbedder()
    model = embedder._load()  # load once, outside both timings
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = corpus(tmp, max_files)
        build_index([src], tmp / "warm", embedder)  # warm-up (and the texts to encode)
        texts = [c["text"] for c in KnowledgeIndex.load(tmp / "warm").chunks]
        model.encode(texts[:64], batch_size=embedder.batch_size)
        raw, ours = [], []
        for r in range(repeats):
            started = time.perf_counter()
            model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
            raw.append(time.perf_counter() - started)
            shutil.rmtree(tmp / "out", ignore_errors=True)
            started = time.perf_counter()
            summary = build_index([src], tmp / "out", embedder)
            ours.append(time.perf_counter() - started)
            print(f"  repeat {r + 1}: encode {raw[-1]:.2f}s, build_index {ours[-1]:.2f}s", flush=True)
    print(f"build throughput ({summary.documents} documents, {len(texts)} chunks, {embedder.name}, "
          f"best of {repeats}):")
    print(f"  SentenceTransformer.encode: {min(raw):.2f}s ({len(texts) / min(raw):.1f} chunks/s)")
    print(f"  ragguard build_index:       {min(ours):.2f}s ({len(texts) / min(ours):.1f} chunks/s)")
    print(f"  of which embedding:         {summary.embed_seconds:.2f}s "
          f"({len(texts) / max(summary.embed_seconds, 1e-9):.1f} chunks/s, last repeat)")
    print(f"  ratio (encode time / build time): {min(raw) / min(ours):.3f}")


def synthetic(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).standard_normal((1000, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks, to bound temporary memory
        m = min(100_000, n - start)
        block = centres[rng.integers(0, 1000, m)] + 0.6 * rng.standard_normal((m, d)).astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def sweep(searcher: object, kind: str, queries: np.ndarray, truth: np.ndarray, values: list[int],
          flat_p50: float | None, threads: int, name: str) -> None:
    """Recall@10 and latency of a built index at other search settings (``ef_search`` for HNSW,
    ``nprobe`` for IVF and IVF-PQ, ``rerank`` for IVF-PQ): the speed/recall dials of the index
    parameters."""
    import faiss

    from ragguard.retrieval.ann import Reranked

    index = searcher.index if isinstance(searcher, Reranked) else searcher

    def setting(value: int | None = None) -> int:
        """Read (and with ``value``, set) the swept setting."""
        owner, attr = ((index.hnsw, "efSearch") if name == "ef_search"  # type: ignore[attr-defined]
                       else (searcher, "factor") if name == "rerank" else (index, "nprobe"))
        if value is not None:
            setattr(owner, attr, value)
        return int(getattr(owner, attr))

    saved = setting()
    faiss.omp_set_num_threads(1)
    for value in values:
        setting(value)
        times, hits = [], []
        for q, t in zip(queries, truth, strict=True):
            started = time.perf_counter()
            _, ids = searcher.search(q.reshape(1, -1), 10)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - started)
            hits.append(len(set(ids[0].tolist()) & set(t.tolist())) / 10)
        p50 = np.percentile(times, 50) * 1e3
        speed = f"{flat_p50 / p50:6.1f}x" if flat_p50 else "   n/a"
        print(f"      {kind:<6} {name} {value:>5}: p50 {p50:8.3f} ms  p95 {np.percentile(times, 95) * 1e3:8.3f} ms  "
              f"speed-up {speed}  recall@10 {np.mean(hits):.3f}", flush=True)
    setting(saved)
    faiss.omp_set_num_threads(threads)


def index_types(sizes: list[int], n_queries: int, d: int = 384, sweeps: dict[str, list[int]] | None = None) -> None:
    import faiss

    from ragguard.retrieval.ann import INDEX_TYPES, Reranked, build_faiss, default_params, exact_top_k

    rows = []
    threads = faiss.omp_get_max_threads()
    for n in sizes:
        vectors = synthetic(n, d, seed=1)
        queries = synthetic(n_queries, d, seed=2)
        truth = exact_top_k(vectors, queries, 10)
        flat_p50 = None
        for kind in INDEX_TYPES:
            if kind == "ivfpq" and n < 10_000:
                continue
            params = default_params(kind, n, d)
            faiss.omp_set_num_threads(threads)
            started = time.perf_counter()
            index = build_faiss(vectors, kind, params)
            build_s = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as tmp:
                faiss.write_index(index, f"{tmp}/i.faiss")
                size = Path(f"{tmp}/i.faiss").stat().st_size
            searcher = Reranked(index, vectors, params["rerank"]) if kind == "ivfpq" else index
            faiss.omp_set_num_threads(1)  # latency of one query on one core
            searcher.search(queries[:5], 10)
            times, found = [], []
            for q in queries:
                started = time.perf_counter()
                _, ids = searcher.search(q.reshape(1, -1), 10)
                times.append(time.perf_counter() - started)
                found.append(ids[0])
            faiss.omp_set_num_threads(threads)
            recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth,
                                                                                                     strict=True)]))
            p50, p95 = np.percentile(times, 50) * 1e3, np.percentile(times, 95) * 1e3
            flat_p50 = p50 if kind == "flat" else flat_p50
            rows.append((n, kind, build_s, size / n, p50, p95, flat_p50 / p50 if flat_p50 else 1.0, recall, params))
            print(f"  n={n:>9,} {kind:<6} build {build_s:7.1f}s  {size / n:7.1f} B/vector  p50 {p50:8.3f} ms  "
                  f"p95 {p95:8.3f} ms  speed-up {rows[-1][6]:6.1f}x  recall@10 {recall:.3f}  {params}", flush=True)
            for name, values in (sweeps or {}).items():
                if values and name in params and name != "nlist":
                    sweep(searcher, kind, queries, truth, values, flat_p50, threads, name)
            del index, searcher
        del vectors
    print("\nB/vector: the written index.faiss. IVF-PQ also keeps vectors.npy (4 x dim bytes a vector) on disk,"
          " memory-mapped; only the re-scored candidates' rows are read.")
    print("size       type    build s   B/vector   p50 ms   p95 ms  speed-up vs flat  recall@10")
    for n, kind, build_s, bpv, p50, p95, speed, recall, _ in rows:
        print(f"{n:>9,}  {kind:<6} {build_s:8.1f} {bpv:10.1f} {p50:8.3f} {p95:8.3f} {speed:12.1f}x {recall:12.3f}")


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated vector counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-files", type=int, default=8, help="Debian FAQ pages in the build corpus")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-types", action="store_true")
    parser.add_argument("--hnsw-ef", default="", help="also measure HNSW at these ef_search values, e.g. 64,128,256")
    parser.add_argument("--nprobe", default="", help="also measure IVF and IVF-PQ at these nprobe values, e.g. 16,32,64")
    parser.add_argument("--rerank", default="", help="also measure IVF-PQ at these re-scoring factors, e.g. 10,50")
    args = parser.parse_args()
    if not args.skip_build:
        build_throughput(args.repeats, args.max_files)
    if not args.skip_types:
        print("index types (synthetic 384-d clustered vectors, queries held out):")
        index_types([int(s) for s in args.sizes.split(",") if s.strip()], args.queries,
                    sweeps={"ef_search": ints(args.hnsw_ef), "nprobe": ints(args.nprobe), "rerank": ints(args.rerank)})


if __name__ == "__main__":
    main()
