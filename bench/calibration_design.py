"""Choose the calibrator's signals and method on the dev splits only (bench/trust.py's cached audits).

For each candidate (a signal subset and a method) it prints, on the two dev
sets: the 5-fold cross-validated AUROC and ECE on each, and the figures of a
calibrator fitted on one dev set and measured on the other. The test splits
are never read here; bench/trust.py --calibrate measures the chosen candidate
on them afterwards.

    python bench/calibration_design.py --cache ~/.cache/ragguard/bench-trust
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trust  # noqa: E402

from ragguard.core.calibration import METHODS  # noqa: E402

CANDIDATES: dict[str, list[str] | None] = {
    "all signals": None,
    "agreement + findings + support + logprob": [
        "agreement", "semantic_entropy_weighted", "findings", "findings_divergent", "embedding_support",
        "claim_support", "logprob_mean_greedy", "retrieval_top", "answer_tokens"],
    "agreement + findings + embedding support": ["agreement", "findings", "embedding_support"],
    "agreement only": ["agreement"],
    "overlap + anchored": ["passage_overlap", "anchored_support"],
    "agreement + overlap + anchored": ["agreement", "passage_overlap", "anchored_support"],
    "agreement + overlap + anchored + embedding": ["agreement", "passage_overlap", "anchored_support",
                                                   "embedding_support"],
    "agreement + findings + overlap + anchored": ["agreement", "findings", "passage_overlap", "anchored_support"],
    "agreement + findings + embedding + overlap + anchored": ["agreement", "findings", "embedding_support",
                                                              "passage_overlap", "anchored_support"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--rescore", action="store_true", help="re-check the cached samples with the current code")
    args = parser.parse_args()
    ns = argparse.Namespace(cache=args.cache, audit_dir=None, set_name=None, split=None, limit=None, samples=None,
                            config=None, cached_only=True, rescore=args.rescore)
    dev = {name: trust.load_records(name, "dev", ns) for name in ("faq", "reference")}
    print(f"CPU: {trust.cpu_name()}; dev sets: " + ", ".join(
        f"{n} {len(trust.labelled(*d)[0])} answers ({sum(trust.labelled(*d)[1])} right)" for n, d in dev.items()))
    print(f"{'candidate':54} {'method':9} {'CV faq':>14} {'CV ref':>14} {'faq->ref':>14} {'ref->faq':>14} {'mean':>6}")
    for label, signals in CANDIDATES.items():
        for method in METHODS:
            cells, aurocs = [], []
            for name in ("faq", "reference"):
                fig = trust.report(*dev[name], method, signals)["combination"]
                cells.append(f"{fig['auroc']:.3f}/{fig['ece']:.3f}")
                aurocs.append(fig["auroc"])
            for a, b in (("faq", "reference"), ("reference", "faq")):
                t = trust.cross_set([dev[a]], dev[b], method, signals)["test"]
                cells.append(f"{t['auroc']:.3f}/{t['ece']:.3f}")
                aurocs.append(t["auroc"])
            print(f"{label:54} {method:9} " + " ".join(f"{c:>14}" for c in cells) + f" {sum(aurocs) / 4:>6.3f}")
    print("cells: AUROC for a wrong answer / ECE (10 bins) of the calibrated confidence; mean: of the four AUROCs.")
    print("Shipped: agreement + findings + embedding + overlap + anchored, method mean (README: 'Calibrated"
          " confidence' says why not simply the highest mean here).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
