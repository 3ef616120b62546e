"""Precision and recall of the offline contradiction detectors on labelled answer pairs.

Each line of the data file is one pair of answers to the same question::

    {"id": "en-pol-01", "lang": "en", "question": "...", "a": "...", "b": "...", "label": "polarity"}

``label`` is ``polarity``, ``quantity`` or ``entity`` when the two answers
contradict in that way, ``paraphrase`` or ``unrelated`` when they do not.
Every pair goes through ``ragguard.core.detectors.detect(a, b, question)``.

* Per kind (polarity, quantity, entity) and per language (en, zh, all): a
  pair is predicted positive when a finding of that kind comes back, and
  actually positive when its label is that kind. A kind the detectors never
  emit shows recall 0 and precision "n/a".
* "any contradiction": label in polarity/quantity/entity against "at least
  one finding of any kind".
* False-positive rate: the share of paraphrase pairs, and of unrelated
  pairs, with at least one finding.
* Misclassified pairs are listed with their findings: a contradiction whose
  kind was not found (missed), or a finding of a kind other than the label
  (spurious), so a developer can fix the detectors.

With ``--nli MODEL`` (a folder or hub id of an NLI checkpoint) the ``nli``
detector runs too, exactly as in ``ask`` (both directions, each answer read
with its question; flagged at P(contradiction) >= ``--nli-threshold``) on
pairs the rule-based detectors left alone; its findings count for "any".

Usage: python bench/contradictions.py [--data tests/data/contradiction_pairs.jsonl] [--nli MODEL] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from ragguard.core.detectors import Finding, detect  # noqa: E402
from ragguard.core.types import ENTITY, NLI, POLARITY, QUANTITY  # noqa: E402

KINDS = (POLARITY, QUANTITY, ENTITY)
NEGATIVE_LABELS = ("paraphrase", "unrelated")
LABELS = KINDS + NEGATIVE_LABELS
LANGS = ("en", "zh")
GROUPS = LANGS + ("all",)
DEFAULT_DATA = ROOT / "tests" / "data" / "contradiction_pairs.jsonl"


def load_pairs(path: Path) -> list[dict[str, str]]:
    """Read and check the JSONL file: required fields, known labels and languages, unique ids."""
    pairs: list[dict[str, str]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            missing = [k for k in ("id", "lang", "question", "a", "b", "label") if not isinstance(row.get(k), str)]
            if missing:
                raise SystemExit(f"{path}:{lineno}: missing or non-string field(s): {', '.join(missing)}")
            if row["label"] not in LABELS:
                raise SystemExit(f"{path}:{lineno}: unknown label {row['label']!r} (expected one of {', '.join(LABELS)})")
            if row["lang"] not in LANGS:
                raise SystemExit(f"{path}:{lineno}: unknown lang {row['lang']!r} (expected one of {', '.join(LANGS)})")
            if row["id"] in seen:
                raise SystemExit(f"{path}:{lineno}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            pairs.append(row)
    if not pairs:
        raise SystemExit(f"{path}: no pairs")
    return pairs


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _prf(tp: int, fp: int, fn: int) -> dict[str, object]:
    return {
        "tp": tp, "fp": fp, "fn": fn, "support": tp + fn,
        "precision": _ratio(tp, tp + fp),
        # A kind with no positive pairs in a group has no recall; one with positives but no hits has 0.
        "recall": _ratio(tp, tp + fn),
    }


def _finding_dict(f: Finding) -> dict[str, object]:
    return {"kind": f.kind, "score": f.score, "span_a": f.span_a, "span_b": f.span_b}


def nli_findings(pairs: list[dict[str, str]], nli: object, threshold: float) -> list[list[Finding]]:
    """The ``nli`` detector on each pair (one batched call for all of them)."""
    from ragguard.core.consistency import nli_statement
    from ragguard.core.detectors import first_sentence
    from ragguard.generation.nli import CONTRADICTION

    statements = []
    for p in pairs:
        a, b = nli_statement(p["question"], p["a"]), nli_statement(p["question"], p["b"])
        statements += [(a, b), (b, a)]
    probs = nli.predict(statements)  # type: ignore[attr-defined]
    out = []
    for k, p in enumerate(pairs):
        score = round(float(max(probs[2 * k, CONTRADICTION], probs[2 * k + 1, CONTRADICTION])), 6)
        found = score >= threshold
        out.append([Finding(NLI, score, first_sentence(p["a"]), first_sentence(p["b"]))] if found else [])
    return out


def evaluate(pairs: list[dict[str, str]], nli: object = None, nli_threshold: float = 0.5) -> dict[str, object]:
    results = []
    extra = nli_findings(pairs, nli, nli_threshold) if nli is not None else [[] for _ in pairs]
    for p, from_nli in zip(pairs, extra, strict=True):
        findings = detect(p["a"], p["b"], p["question"])
        if not findings:  # as in ask: a pair a rule already explains gets no nli finding
            findings = from_nli
        results.append((p, findings, {f.kind for f in findings}))

    def in_group(p: dict[str, str], group: str) -> bool:
        return group == "all" or p["lang"] == group

    per_kind: dict[str, dict[str, object]] = {}
    for kind in KINDS:
        per_kind[kind] = {}
        for g in GROUPS:
            rows = [(p, kinds) for p, _, kinds in results if in_group(p, g)]
            tp = sum(1 for p, kinds in rows if p["label"] == kind and kind in kinds)
            fp = sum(1 for p, kinds in rows if p["label"] != kind and kind in kinds)
            fn = sum(1 for p, kinds in rows if p["label"] == kind and kind not in kinds)
            per_kind[kind][g] = _prf(tp, fp, fn)

    any_: dict[str, object] = {}
    fpr: dict[str, dict[str, object]] = {label: {} for label in NEGATIVE_LABELS}
    for g in GROUPS:
        rows = [(p, kinds) for p, _, kinds in results if in_group(p, g)]
        tp = sum(1 for p, kinds in rows if p["label"] in KINDS and kinds)
        fp = sum(1 for p, kinds in rows if p["label"] not in KINDS and kinds)
        fn = sum(1 for p, kinds in rows if p["label"] in KINDS and not kinds)
        any_[g] = _prf(tp, fp, fn)
        for label in NEGATIVE_LABELS:
            flagged = sum(1 for p, kinds in rows if p["label"] == label and kinds)
            total = sum(1 for p, _ in rows if p["label"] == label)
            fpr[label][g] = {"flagged": flagged, "total": total, "rate": _ratio(flagged, total)}

    # Finding kinds outside KINDS (a future detector) still count for "any" and show up below.
    misclassified = []
    for p, findings, kinds in results:
        missed = p["label"] in KINDS and p["label"] not in kinds
        spurious = sorted(kinds - {p["label"]})
        if missed or spurious:
            misclassified.append({
                "id": p["id"], "lang": p["lang"], "label": p["label"],
                "predicted": sorted(kinds), "missed": missed, "spurious": spurious,
                "question": p["question"], "a": p["a"], "b": p["b"],
                "findings": [_finding_dict(f) for f in findings],
            })

    counts: dict[str, dict[str, int]] = {
        label: {g: sum(1 for p in pairs if p["label"] == label and in_group(p, g)) for g in GROUPS} for label in LABELS
    }
    return {
        "pairs": len(pairs),
        "counts": counts,
        "per_kind": per_kind,
        "any": any_,
        "false_positive_rate": fpr,
        "misclassified": misclassified,
    }


def _fmt(x: object) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def print_report(report: dict[str, object], data: Path) -> None:
    counts = report["counts"]
    print(f"data: {data}  ({report['pairs']} pairs)")
    print("pairs per label: " + ", ".join(
        f"{label} {c['en']}+{c['zh']}" for label, c in counts.items()) + "  (en+zh)")
    print()
    header = f"{'kind':<12}{'lang':<6}{'support':>8}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}"
    print(header)
    print("-" * len(header))
    sections = [(kind, report["per_kind"][kind]) for kind in KINDS] + [("any", report["any"])]
    for name, by_group in sections:
        for g in GROUPS:
            m = by_group[g]
            print(f"{name:<12}{g:<6}{m['support']:>8}{m['tp']:>5}{m['fp']:>5}{m['fn']:>5}"
                  f"{_fmt(m['precision']):>11}{_fmt(m['recall']):>8}")
        print("-" * len(header))
    print()
    print("false-positive rate (pairs with any finding / pairs):")
    for label, by_group in report["false_positive_rate"].items():
        cells = "  ".join(f"{g} {m['flagged']}/{m['total']} = {_fmt(m['rate'])}" for g, m in by_group.items())
        print(f"  {label:<11} {cells}")
    print()
    wrong = report["misclassified"]
    print(f"misclassified pairs: {len(wrong)}")
    for w in wrong:
        why = []
        if w["missed"]:
            why.append(f"missed {w['label']}")
        if w["spurious"]:
            why.append("spurious " + ",".join(w["spurious"]))
        print(f"  {w['id']:<11} label={w['label']:<10} predicted={','.join(w['predicted']) or '-':<18} ({'; '.join(why)})")
        print(f"      Q: {w['question']}")
        print(f"      a: {w['a']}")
        print(f"      b: {w['b']}")
        for f in w["findings"]:
            print(f"      -> {f['kind']} {f['score']:.2f}: \"{f['span_a']}\" vs \"{f['span_b']}\"")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL file of labelled pairs")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--nli", help="also run the nli detector with this NLI checkpoint (folder or hub id)")
    parser.add_argument("--nli-threshold", type=float, default=0.5, help="P(contradiction) that flags a pair")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"no such file: {args.data}")
    nli = None
    if args.nli:
        from ragguard.generation.nli import TransformersNLI

        nli = TransformersNLI(args.nli)
    report = evaluate(load_pairs(args.data), nli, args.nli_threshold)
    if args.json:
        print(json.dumps({"data": str(args.data), **report}, ensure_ascii=False, indent=2))
    else:
        print_report(report, args.data)


if __name__ == "__main__":
    main()
