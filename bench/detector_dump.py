"""Dump everything the offline contradiction detectors say about a fixed corpus, as canonical JSON.

Run it on two versions of the code and diff the outputs: identical files mean the detectors find
exactly the same things (kinds, scores, quoted spans, and every intermediate reading: stances,
lead stances, predicate clashes, quantities, entities, roles, first sentences).

The corpus, all read from the checkout that runs the script:

* every labelled pair of ``tests/data/contradiction_pairs*.jsonl``: ``detect`` both ways, with and
  without the question, ``detect_all`` and ``same_lead_pairs`` on the pair, and each answer's and
  question's readings;
* sample sets built from those files: each run of four consecutive pairs of one file (eight
  answers) under the first pair's question, so answers meet answers to other questions;
* ``examples/faq.jsonl``: each question with its reference and the paragraphs of
  ``examples/handbook/`` (seven per question, rotating), as a sample set;
* ``bench/data/*_qa.jsonl``: each question with its gold answers and reference as a sample set.

Usage::

    python bench/detector_dump.py --out /tmp/new.json
    git worktree add /tmp/det-old c6857b6   # the code before ragguard.core.detectors
    PYTHONPATH=/tmp/det-old python bench/detector_dump.py --out /tmp/old.json
    diff /tmp/old.json /tmp/new.json && echo identical

The script imports ``ragguard.core.detectors`` and falls back to the module it replaced,
``ragguard.core.contradictions``, so that the same script dumps both versions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

try:
    from ragguard.core import detectors as det
except ImportError:  # the code before the detectors package (for the before/after comparison)
    from ragguard.core import contradictions as det  # type: ignore[no-redef]


def _findings(found: Sequence[Any]) -> list[list[Any]]:
    return [[f.kind, repr(float(f.score)), f.span_a, f.span_b, f.explanation()] for f in found]


def _pairs(found: dict[tuple[int, int], Sequence[Any]]) -> dict[str, list[list[Any]]]:
    return {f"{i},{j}": _findings(fs) for (i, j), fs in sorted(found.items())}


def _quantities(q: dict[str, dict[float, str]]) -> dict[str, dict[str, str]]:
    # Keys as floats: 480 and 480.0 are the same value (and the same dict key) in Python.
    return {unit: {repr(float(v)): span for v, span in sorted(values.items())} for unit, values in sorted(q.items())}


def _reading(text: str, question: str) -> dict[str, Any]:
    return {
        "stance": list(det.stance(text, question)),
        "lead_stance": det.lead_stance(text, question),
        "quantities": _quantities(det.quantities(text)),
        "entities": sorted(det.entities(text, question)),
        "roles": sorted(det.roles(text, question).items()),
        "first_sentence": det.first_sentence(text),
    }


def _sample_set(texts: Sequence[str], question: str) -> dict[str, Any]:
    return {
        "question": question,
        "texts": list(texts),
        "detect_all": _pairs(det.detect_all(texts, question)),
        "same_lead_pairs": [list(p) for p in det.same_lead_pairs(texts, question)],
    }


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _paragraphs(folder: Path) -> list[str]:
    out = []
    for path in sorted(folder.glob("*.md")):
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            block = " ".join(block.split())
            if block and not block.startswith("#"):
                out.append(block)
    return out


def dump(root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The canonical dump of the corpus under ``root`` and how many items of each sort it holds."""
    out: dict[str, Any] = {"pairs": {}, "sample_sets": {}}
    counts = {"pairs": 0, "sample_sets": 0, "answer_pairs_in_sets": 0, "readings": 0}
    for path in sorted((root / "tests" / "data").glob("contradiction_pairs*.jsonl")):
        rows = _jsonl(path)
        for p in rows:
            q, a, b = p["question"], p["a"], p["b"]
            out["pairs"][f"{path.name}:{p['id']}"] = {
                "detect": _findings(det.detect(a, b, q)),
                "detect_reversed": _findings(det.detect(b, a, q)),
                "detect_no_question": _findings(det.detect(a, b)),
                "predicate_clash": det.predicate_clash(a, b),
                "set": _sample_set([a, b], q),
                "a": _reading(a, q),
                "b": _reading(b, q),
                "a_no_question": _reading(a, ""),
                "question": _reading(q, ""),
            }
            counts["pairs"] += 1
            counts["readings"] += 4
        for k in range(0, len(rows), 4):
            group = rows[k:k + 4]
            texts = [t for p in group for t in (p["a"], p["b"])]
            out["sample_sets"][f"{path.name}:{k}"] = _sample_set(texts, group[0]["question"])
            counts["sample_sets"] += 1
            counts["answer_pairs_in_sets"] += len(texts) * (len(texts) - 1) // 2
    paragraphs = _paragraphs(root / "examples" / "handbook")
    for n, row in enumerate(_jsonl(root / "examples" / "faq.jsonl")):
        texts = [row.get("reference") or ""] + [paragraphs[(7 * n + i) % len(paragraphs)] for i in range(7)]
        out["sample_sets"][f"faq.jsonl:{row['id']}"] = _sample_set(texts, row["question"])
        out["sample_sets"][f"faq.jsonl:{row['id']}:readings"] = [_reading(t, row["question"]) for t in texts]
        counts["sample_sets"] += 1
        counts["answer_pairs_in_sets"] += len(texts) * (len(texts) - 1) // 2
        counts["readings"] += len(texts)
    for path in sorted((root / "bench" / "data").glob("*_qa.jsonl")):
        for row in _jsonl(path):
            texts = [*row.get("answers", []), row["reference"]]
            out["sample_sets"][f"{path.name}:{row['id']}"] = _sample_set(texts, row["question"])
            counts["sample_sets"] += 1
            counts["answer_pairs_in_sets"] += len(texts) * (len(texts) - 1) // 2
    return out, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON dump")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose data files make the corpus")
    args = parser.parse_args(argv)
    data, counts = dump(args.root)
    args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{args.out}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) + f" (via {det.__name__})")


if __name__ == "__main__":
    main()
