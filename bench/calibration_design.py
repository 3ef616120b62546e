"""Choose the calibrator's signals and method on the dev splits only (bench/trust.py's cached audits).

For each candidate (a signal subset and a method) it prints, for every dev
set, the AUROC and ECE of a calibrator fitted on the *other* dev sets and
measured on that one (leave one set out), and the mean of those AUROCs: the
score the shipped candidate is chosen by. A fitted candidate whose weight on
some signal points against that signal's fixed direction, when fitted on all
the dev splits, is marked and is not eligible: such a weight is fitted to
noise (README, Calibrated confidence). With --cv it also prints each dev
set's 5-fold cross-validated figures. The test splits are never read here;
bench/trust.py --calibrate measures the chosen candidate on them afterwards.

    python bench/calibration_design.py --cache ~/.cache/ragguard/bench-trust
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trust  # noqa: E402

from ragguard.apps.calibrate import against_direction, fit_calibration  # noqa: E402
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
    "grounding + retrieval": ["embedding_support", "passage_overlap", "anchored_support", "retrieval_top"],
    "agreement + findings + grounding + retrieval": ["agreement", "findings", "embedding_support", "passage_overlap",
                                                     "anchored_support", "retrieval_top"],
    # The shipped three plus one token-probability signal (issue 9's strongest kind on the held-out set).
    "agreement + overlap + anchored + logprob greedy": ["agreement", "passage_overlap", "anchored_support",
                                                        "logprob_mean_greedy"],
    "agreement + overlap + anchored + logprob voted": ["agreement", "passage_overlap", "anchored_support",
                                                       "logprob_mean_voted"],
    "agreement + overlap + anchored + weighted entropy": ["agreement", "passage_overlap", "anchored_support",
                                                          "semantic_entropy_weighted"],
    # Session 13: the question's coverage by the retrieved sentence that holds most of it (a reading of the
    # retrieval, not of the answer). Added after a look at three dev splits (faq, reference, handbook5).
    "overlap + anchored + coverage": ["passage_overlap", "anchored_support", "question_coverage"],
    "agreement + overlap + anchored + coverage": ["agreement", "passage_overlap", "anchored_support",
                                                  "question_coverage"],
    # Session 15: how many of the answer's added terms the question's key sentence holds (a count, where
    # anchored is a share that a long answer dilutes). Added after a look at the dev splits' right answers.
    "overlap + anchored + coverage + key sentence": ["passage_overlap", "anchored_support", "question_coverage",
                                                     "key_sentence_hits"],
    "overlap + coverage + key sentence": ["passage_overlap", "question_coverage", "key_sentence_hits"],
    "key sentence only": ["key_sentence_hits"],
}


DEV_SETS = ("faq", "reference", "reference2", "handbook2", "handbook4", "handbook5", "kernel", "maintguide", "installguide",
            "securing", "debmake")
SHIPPED = ("overlap + coverage + key sentence", "mean")  # ragguard/calibrations/embedded.json


def leave_one_out(dev: dict[str, tuple], method: str, signals: list[str] | None) -> dict[str, dict]:
    """Per dev set: the test figures of a calibrator fitted on all the other dev sets."""
    return {name: trust.cross_set([d for other, d in dev.items() if other != name], held, method, signals)["test"]
            for name, held in dev.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--rescore", action="store_true", help="re-check the cached samples with the current code")
    parser.add_argument("--sets", default=",".join(DEV_SETS), help="comma-separated sets whose dev splits to use")
    parser.add_argument("--cv", action="store_true", help="also print each dev set's 5-fold cross-validated figures")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    if len(names) < 2 or any(n not in trust.SETS for n in names):
        raise SystemExit(f"--sets {args.sets!r}: name at least two of {sorted(trust.SETS)}")
    ns = argparse.Namespace(cache=args.cache, audit_dir=None, set_name=None, split=None, limit=None, samples=None,
                            config=None, cached_only=True, rescore=args.rescore)
    dev = {name: trust.load_records(name, "dev", ns) for name in names}
    labelled = {n: trust.labelled(*d) for n, d in dev.items()}
    print(f"CPU: {trust.cpu_name()}; dev sets: " + ", ".join(
        f"{n} {len(right)} answers ({sum(right)} right)" for n, (_, right) in labelled.items()))
    every = [r for n in names for r in labelled[n][0]]  # all dev splits pooled: the fit that would ship
    every_right = [y for n in names for y in labelled[n][1]]
    print(f"{'candidate':54} {'method':9} " + " ".join(f"{'-> ' + n:>16}" for n in names) + f" {'mean':>6}")
    scores: dict[tuple[str, str], float] = {}
    per_set: dict[tuple[str, str], list[float]] = {}
    ineligible: set[tuple[str, str]] = set()
    for label, signals in CANDIDATES.items():
        for method in METHODS:
            held = leave_one_out(dev, method, signals)
            aurocs = [held[n]["auroc"] for n in names]
            scores[(label, method)] = sum(aurocs) / len(aurocs)
            per_set[(label, method)] = aurocs
            fitted = fit_calibration(every, every_right, method=method, signals=signals, **trust.AS_SHIPPED)
            against = against_direction(fitted)
            if against:
                ineligible.add((label, method))
            print(f"{label:54} {method:9} " + " ".join(f"{held[n]['auroc']:.3f}/{held[n]['ece']:.3f}".rjust(16)
                                                      for n in names) + f" {scores[(label, method)]:>6.3f}"
                  + (f"  not eligible, against its direction (fit on all): {', '.join(against)}"
                     if against else ""))
            if args.cv:
                cv = [trust.report(*dev[n], method, signals)["combination"] for n in names]
                print(f"{'  (5-fold CV on each set)':64} " + " ".join(
                    (f"{c['auroc']:.3f}/{c['ece']:.3f}" if c.get("auroc") is not None else "-").rjust(16) for c in cv))
    print("cells: AUROC for a wrong answer / ECE (10 bins) of a calibrator fitted on the other dev sets and measured"
          " on this one; mean: of those AUROCs.")
    best, keep = choose(scores, ineligible)
    if SHIPPED in per_set:  # how broad a lead is: on how many dev sets each leading candidate beats the shipped one
        leaders = sorted((k for k in scores if k not in ineligible), key=lambda k: -scores[k])[:5]
        print("beats the shipped design on (dev sets): " + "; ".join(
            f"{k[0]} ({k[1]}) {wins(per_set[k], per_set[SHIPPED])} of {len(names)}" for k in leaders if k != SHIPPED))
    print(f"best eligible: {best[0]} ({best[1]}) {scores[best]:.3f}; the rule (README, Calibrated confidence) ships "
          + (f"{SHIPPED[0]} ({SHIPPED[1]}), {scores[SHIPPED]:.3f}, the file shipped now, which is within 0.01"
             if keep else f"{best[0]} ({best[1]})"))
    return 0


def wins(candidate: list[float], shipped: list[float]) -> int:
    """On how many dev sets (same order) a candidate's held-out AUROC is above the shipped design's."""
    return sum(c > s for c, s in zip(candidate, shipped, strict=True))


def choose(scores: dict[tuple[str, str], float], ineligible: set[tuple[str, str]]) -> tuple[tuple[str, str], bool]:
    """The rule: the best eligible candidate, and whether the shipped one stays (eligible and within 0.01 of it)."""
    eligible = {k: v for k, v in scores.items() if k not in ineligible}
    if not eligible:
        raise SystemExit("no candidate is eligible: every fit has a weight against its signal's direction")
    best = max(eligible, key=lambda k: eligible[k])
    keep = SHIPPED in eligible and eligible[SHIPPED] >= eligible[best] - 0.01
    return best, keep


if __name__ == "__main__":
    raise SystemExit(main())
