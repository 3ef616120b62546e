"""Does ragguard's verdict predict a wrong answer? Measured on real labelled QA sets.

For a set of bench/data/ (questions with short gold answers written from
real Debian documents) this script:

1. installs the Debian package that holds the documents when it is missing
   (``apt-get install``) and builds a ragguard index over them (cached);
2. runs ``ragguard audit`` as shipped over the chosen split (resumable: an
   interrupted run continues where it stopped);
3. optionally re-scores the cached samples with the current checking code
   (``--rescore``: no generation, only embedding, clustering, detectors and
   grounding, so checking changes are measured on the same answers);
4. labels each voted answer right or wrong against the set's accepted
   answers (:func:`ragguard.core.reference.match_short`, the rule the audit
   uses for short references), and prints, for every signal ragguard records
   and for ``confidence``: AUROC and AUPRC for "the voted answer is wrong",
   accuracy of the most confident 50 % and 80 % of answers, and greedy vs
   voted accuracy; plus a cross-validated logistic combination of the signals.

Examples::

    python bench/trust.py --set faq --split dev
    python bench/trust.py --set reference --split test --limit 60
    python bench/trust.py --set faq --split dev --rescore --json out.json

Absolute times are not the point here; the figures are. The CPU is printed
with them because the tokens (and so the answers) depend on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragguard.core.reference import is_short, match_short  # noqa: E402

DATA = ROOT / "bench" / "data"
SETS: dict[str, dict[str, Any]] = {
    "faq": {
        "file": DATA / "debian_faq_qa.jsonl",
        "package": "debian-faq",
        "docs": Path("/usr/share/doc/debian/FAQ"),
        "include": ["*.en.html"],
    },
    "reference": {
        "file": DATA / "debian_reference_qa.jsonl",
        "package": "debian-reference-en",
        "docs": Path("/usr/share/debian-reference"),
        "include": [f"ch{n:02d}.en.html" for n in (1, 2, 3, 4, 5, 6, 8, 10)],
    },
    "zh": {"file": ROOT / "examples" / "faq.jsonl", "package": None, "docs": None, "include": []},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ragguard_cmd() -> list[str]:
    return [sys.executable, "-m", "ragguard"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def ensure_docs(spec: dict[str, Any]) -> None:
    if spec["docs"] is None or spec["docs"].is_dir():
        return
    if shutil.which("apt-get") is None:
        raise SystemExit(f"{spec['docs']} is missing: install the Debian package {spec['package']}")
    log(f"installing {spec['package']} (apt-get)")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", spec["package"]], check=True)


def ensure_index(name: str, spec: dict[str, Any], cache: Path) -> Path | None:
    if spec["docs"] is None:
        return None  # the bundled example index
    out = cache / f"index-{name}"
    if (out / "manifest.json").exists():
        return out
    cmd = [*ragguard_cmd(), "index", "build", str(spec["docs"]), "--out", str(out)]
    for pattern in spec["include"]:
        cmd += ["--include", pattern]
    log("building the index: " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True, env=env())
    return out


def load_set(name: str, split: str, limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in SETS[name]["file"].read_text(encoding="utf-8").splitlines() if line.strip()]
    if name == "zh":  # the Chinese questions of the example FAQ (their references are sentences)
        rows = [r for r in rows if any("\u4e00" <= ch <= "\u9fff" for ch in r["question"])]
        for r in rows:
            r.setdefault("answers", [r["reference"]])
    elif split != "all":
        rows = [r for r in rows if r.get("split") == split]
    return rows[:limit] if limit else rows


def run_audit(rows: list[dict[str, Any]], index: Path | None, out: Path, samples: int | None, config: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    questions = out / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": r["id"], "question": r["question"], "reference": r["reference"]},
                           ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    cmd = [*ragguard_cmd(), "audit", str(questions), "--out", str(out / "audit")]
    if (out / "audit" / "results.jsonl").exists():
        cmd.append("--resume")
    if index is not None:
        cmd += ["--index", str(index)]
    if samples:
        cmd += ["--samples", str(samples)]
    if config:
        cmd += ["--config", config]
    log("running: " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=False, env=env())


def read_results(audit_dir: Path) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    path = audit_dir / "results.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("status", "ok") == "ok" and "samples" in record:
            latest[str(record["id"])] = record
    return latest


def rescore(records: dict[str, dict[str, Any]], config: str | None) -> dict[str, dict[str, Any]]:
    """Re-check the cached samples with the current checking code (no generation).

    The samples keep their recorded log-probability summaries; clustering,
    detectors, grounding and the verdict are computed anew.
    """
    from ragguard.apps.check import checker_from_config, report_from_result
    from ragguard.config import load_config
    from ragguard.core.types import Passage, Sample
    from ragguard.generation.backends import build_embedder

    cfg = load_config(config)
    embedder = build_embedder(cfg.embedder)
    checker = checker_from_config(cfg, embedder)
    keys = ("logprob_mean", "logprob_min", "tokens")
    out: dict[str, dict[str, Any]] = {}
    for rid, record in records.items():
        samples = [Sample(text=s["text"], seed=s["seed"], greedy=s["greedy"], **{k: s.get(k) for k in keys})
                   for s in record["samples"]]
        passages = [Passage(p["doc_id"], p["chunk_id"], p["text"], p["score"]) for p in record["sources"]]
        new = report_from_result(record["question"], checker.check(record["question"], samples, passages)).to_dict()
        out[rid] = {**record, **{k: v for k, v in new.items() if k not in ("sources", "fingerprint", "timings")}}
    return out


def _greedy(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in record["samples"] if s.get("greedy")), None)


def _winning_members(record: dict[str, Any]) -> list[dict[str, Any]]:
    winner = next((c for c in record["clusters"] if c["representative"] == record["answer"]), None)
    if winner is None:
        return []
    return [record["samples"][i] for i in winner["members"]]


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def features(record: dict[str, Any]) -> dict[str, float | None]:
    """Risk-oriented signals (higher = more likely wrong), as ragguard records them."""
    greedy = _greedy(record) or {}
    winners = _winning_members(record)
    grounding = record.get("grounding") or {}
    winner_cluster = next((c for c in record["clusters"] if c["representative"] == record["answer"]), {})

    def neg(x: float | None) -> float | None:
        return None if x is None else -x

    def one_minus(x: float | None) -> float | None:
        return None if x is None else 1.0 - x

    return {
        "1 - confidence": one_minus(record.get("confidence")),
        "1 - agreement": one_minus(record.get("agreement")),
        "semantic_entropy": record.get("semantic_entropy"),
        "semantic_entropy_weighted": record.get("semantic_entropy_weighted"),
        "detector findings": float(len(record.get("contradictions", []))),
        "1 - support (embedding)": one_minus(winner_cluster.get("support")),
        "-logprob_min (greedy)": neg(greedy.get("logprob_min")),
        "-logprob_mean (greedy)": neg(greedy.get("logprob_mean")),
        "-logprob_mean (voted cluster)": neg(_mean([s.get("logprob_mean") for s in winners])),
        "1 - grounding support": one_minus(grounding.get("support")),
        "absent values": None if not grounding else float(len(grounding.get("absent", []))),
        "1 - top retrieval score": one_minus(record["sources"][0]["score"] if record.get("sources") else None),
    }


def label_wrong(record: dict[str, Any], variants: list[str]) -> bool:
    if all(is_short(v) for v in variants):
        return match_short(record["answer"], variants).label != "match"
    return record.get("reference_match") != "match"  # long references: the audit's own rule


def metrics(risk: list[float], wrong: list[bool]) -> dict[str, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, float | None] = {"auroc": None, "auprc": None}
    if 0 < sum(wrong) < len(wrong):
        out["auroc"] = float(roc_auc_score(wrong, risk))
        out["auprc"] = float(average_precision_score(wrong, risk))
    order = sorted(range(len(risk)), key=lambda i: (risk[i], i))  # least risky first
    for cover in (0.5, 0.8):
        kept = order[: max(1, round(cover * len(order)))]
        out[f"acc@{int(cover * 100)}%"] = 1.0 - sum(wrong[i] for i in kept) / len(kept)
    return out


def combine(table: list[dict[str, float | None]], wrong: list[bool], names: list[str], seed: int = 0) -> dict[str, Any]:
    """Cross-validated AUROC of a logistic regression over the given signals (missing -> median)."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = [n for n in names if any(row[n] is not None for row in table)]
    x = np.array([[math.nan if row[n] is None else row[n] for n in cols] for row in table], dtype=float)
    y = np.array(wrong, dtype=int)
    if len(set(y)) < 2 or min(np.bincount(y)) < 5:
        return {"signals": cols, "auroc": None}
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    risk = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    from sklearn.metrics import roc_auc_score

    return {"signals": cols, "auroc": float(roc_auc_score(y, risk))}


def report(records: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_id = {r["id"]: r for r in rows}
    ids = [i for i in by_id if i in records]
    wrong = [label_wrong(records[i], by_id[i].get("answers") or [by_id[i]["reference"]]) for i in ids]
    greedy_wrong = [
        match_short((_greedy(records[i]) or {"text": ""})["text"], by_id[i].get("answers") or [by_id[i]["reference"]]).label
        != "match"
        for i in ids
    ]
    table = [features(records[i]) for i in ids]
    signals: dict[str, Any] = {}
    for name in table[0] if table else []:
        pairs = [(row[name], w) for row, w in zip(table, wrong, strict=True) if row[name] is not None]
        if len(pairs) < len(table) * 0.5:
            continue
        signals[name] = {**metrics([p[0] for p in pairs], [p[1] for p in pairs]), "n": len(pairs)}
    flagged = [records[i]["verdict"] != "consistent" for i in ids]
    consistent_right = [not w for w, f in zip(wrong, flagged, strict=True) if not f]
    combo_names = [n for n in (table[0] if table else {}) if n != "1 - confidence"]
    return {
        "n": len(ids),
        "wrong": sum(wrong),
        "voted_accuracy": 1 - sum(wrong) / len(ids) if ids else None,
        "greedy_accuracy": 1 - sum(greedy_wrong) / len(ids) if ids else None,
        "flagged": sum(flagged),
        "consistent_accuracy": (sum(consistent_right) / len(consistent_right)) if consistent_right else None,
        "signals": signals,
        "combination": combine(table, wrong, combo_names) if ids else None,
    }


def print_report(name: str, split: str, result: dict[str, Any]) -> None:
    def f(x: float | None) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    print(f"\n{name}/{split}: {result['n']} questions, {result['wrong']} voted answers wrong | CPU: {cpu_name()}")
    print(f"voted accuracy {f(result['voted_accuracy'])}  greedy accuracy {f(result['greedy_accuracy'])}  "
          f"flagged {result['flagged']}  'consistent' right {f(result['consistent_accuracy'])}")
    print(f"{'signal (risk of a wrong answer)':34} {'AUROC':>6} {'AUPRC':>6} {'acc@50%':>8} {'acc@80%':>8} {'n':>5}")
    for sig, m in result["signals"].items():
        print(f"{sig:34} {f(m['auroc']):>6} {f(m['auprc']):>6} {f(m['acc@50%']):>8} {f(m['acc@80%']):>8} {m['n']:>5}")
    combo = result.get("combination") or {}
    print(f"{'logistic combination (5-fold CV)':34} {f(combo.get('auroc')):>6}   over: {', '.join(combo.get('signals', []))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="set_name", choices=sorted(SETS), default="faq")
    parser.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    parser.add_argument("--limit", type=int, default=None, help="first N questions of the split")
    parser.add_argument("--samples", type=int, default=None, help="answers per question (default: the config's)")
    parser.add_argument("--config", default=None, help="ragguard config (default: the embedded default)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("RAGGUARD_CACHE", Path.home() / ".cache" / "ragguard")) / "bench-trust")
    parser.add_argument("--audit-dir", type=Path, default=None, help="score an existing audit folder instead of running one")
    parser.add_argument("--rescore", action="store_true", help="re-check the cached samples with the current code")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    spec = SETS[args.set_name]
    rows = load_set(args.set_name, args.split, args.limit)
    if args.audit_dir is None:
        ensure_docs(spec)
        index = ensure_index(args.set_name, spec, args.cache)
        run_dir = args.cache / (f"{args.set_name}-{args.split}" + (f"-n{args.samples}" if args.samples else ""))
        run_audit(rows, index, run_dir, args.samples, args.config)
        audit_dir = run_dir / "audit"
    else:
        audit_dir = args.audit_dir
    records = read_results(audit_dir)
    if args.rescore:
        records = rescore(records, args.config)
    result = report(records, rows)
    print_report(args.set_name, args.split, result)
    if args.json:
        args.json.write_text(json.dumps({"set": args.set_name, "split": args.split, "cpu": cpu_name(), **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
