"""Item 8 of issue 20: what key-fact agreement merges on the labelled answer pairs of tests/data.

For each pair, "merged by facts" means :func:`ragguard.core.detectors.same_fact_pairs` pairs the
two answers and no detector separates them, so the checker raises their similarity to the
threshold. With ``--embedder`` the pair's cosine is computed too, to count the paraphrases that
were split before (cosine below the threshold and no same yes/no lead) and are joined now.

    python bench/fact_agreement.py [--embedder] [--threshold 0.8]

Measured (the 544 pairs of tests/data, embedded MiniLM, threshold 0.8): paraphrase 34 of 140 merged
by facts, 15 of them split before (together 67 -> 82 of 140), none split that was together; polarity,
quantity, entity and unrelated pairs: 0 merged by facts (together before = after: 59, 68, 31, 1).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from ragguard.core.detectors import detect, same_fact_pairs, same_lead_pairs

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def load_pairs() -> list[dict[str, str]]:
    rows = []
    for path in sorted(DATA.glob("contradiction_pairs*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def counts(pairs: list[dict[str, str]], cosines: list[float] | None = None, threshold: float = 0.8) -> dict:
    """Per label: pairs, pairs the facts merge (no finding), and with cosines the split-before/joined-now counts."""
    out: dict[str, Counter] = {}
    for n, p in enumerate(pairs):
        c = out.setdefault(p["label"], Counter())
        c["pairs"] += 1
        texts, q = [p["a"], p["b"]], p["question"]
        found = bool(detect(p["a"], p["b"], q))
        lead = bool(same_lead_pairs(texts, q)) and not found
        facts = bool(same_fact_pairs(texts, q)) and not found
        c["merged_by_facts"] += facts
        if cosines is not None:
            before = cosines[n] >= threshold or lead
            after = before or facts
            c["together_before"] += before
            c["together_after"] += after
            c["split_before_joined_now"] += after and not before
            c["joined_before_split_now"] += before and not after
    return {k: dict(v) for k, v in sorted(out.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", action="store_true", help="also compute cosines with the default embedder")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    pairs = load_pairs()
    cosines = None
    if args.embedder:
        import numpy as np

        from ragguard.generation.embedders import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder("embedded")
        a = np.asarray(embedder.embed([p["a"] for p in pairs]), dtype=np.float64)
        b = np.asarray(embedder.embed([p["b"] for p in pairs]), dtype=np.float64)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        cosines = (a * b).sum(axis=1).tolist()
    print(json.dumps(counts(pairs, cosines, args.threshold), indent=1))


if __name__ == "__main__":
    main()
