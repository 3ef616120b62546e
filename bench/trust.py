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
    python bench/trust.py --set devref --split test --rescore   # the Developer's Reference set (measure only)
    python bench/trust.py --set faq --split dev --rescore --json out.json
    python bench/trust.py --set handbook+reference2+handbook2 --split test --calibrate faq:dev \
        --calibrate reference:dev --calibrate reference2:dev --calibrate handbook2:dev   # pooled sets

Absolute times are not the point here; the figures are. The CPU is printed
with them because the tokens (and so the answers) depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragguard.apps.calibrate import auroc_interval  # noqa: E402  (the same bootstrap interval `calibrate` prints)
from ragguard.core.calibration import METHODS  # noqa: E402

# How the shipped file and the figures in the README were fitted: answers without an answer (retrieval abstains)
# kept as wrong ones, and a set fitted from 2 right (or wrong) answers up. `ragguard calibrate` leaves the first out
# and wants 5 of each; a refit of the shipped file under those rules is a decision of its own.
AS_SHIPPED = {"keep_withheld": True, "min_per_class": 2}
from ragguard.core.reference import is_short, match_short  # noqa: E402
from ragguard.errors import UsageError  # noqa: E402

DATA = ROOT / "bench" / "data"
PACKS = ROOT / "bench" / "cache"  # committed cached audits without the documents' text (bench/trust_cache.py)


def sources(path: Path) -> list[str]:
    """The pages a set's questions come from: its index holds exactly these."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted({row["source"] for row in rows})


def handbook_set(file: str) -> dict[str, Any]:
    """A set written from debian-handbook sections: its index holds exactly the sections it asks about."""
    return {"file": DATA / file, "package": "debian-handbook", "docs": Path("/usr/share/doc/debian-handbook/html/en-US"),
            "include": sources(DATA / file)}


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
    # measure only: every row is in the test split (bench/data/README.md)
    "handbook": handbook_set("debian_handbook_qa.jsonl"),
    "reference2": {  # four other chapters of the same package, split half dev, half test
        "file": DATA / "debian_reference2_qa.jsonl",
        "package": "debian-reference-en",
        "docs": Path("/usr/share/debian-reference"),
        "include": [f"ch{n:02d}.en.html" for n in (7, 9, 11, 12)],
    },
    # 18 other sections of the handbook, split half dev, half test
    "handbook2": handbook_set("debian_handbook2_qa.jsonl"),
    # 20 more handbook sections, measure only: every row is in the test split
    "handbook3": handbook_set("debian_handbook3_qa.jsonl"),
    # 26 more handbook sections, split half dev, half test (its dev split is one of the dev sets since session 12)
    "handbook4": handbook_set("debian_handbook4_qa.jsonl"),
    # 23 further handbook sections, split half dev, half test (its dev split is one of the dev sets since session 13)
    "handbook5": handbook_set("debian_handbook5_qa.jsonl"),
    # measure only: 276 questions from the 9 chapters of the Debian Developer's Reference, every row test
    "devref": {
        "file": DATA / "debian_devref_qa.jsonl",
        "package": "developers-reference",
        "docs": Path("/usr/share/developers-reference"),
        "include": sources(DATA / "debian_devref_qa.jsonl"),
    },
    # measure only (session 15): 165 questions from the 12 chapters of the Debian Policy Manual, every row test
    "policy": {
        "file": DATA / "debian_policy_qa.jsonl",
        "package": "debian-policy",
        "docs": Path("/usr/share/doc/debian-policy/policy.html"),
        "include": sources(DATA / "debian_policy_qa.jsonl"),
    },
    # session 15, split half dev, half test: their dev splits joined the dev pool in session 16
    "kernel": {  # 125 questions from the nine chapters of the Debian Linux Kernel Handbook
        "file": DATA / "debian_kernelhandbook_qa.jsonl",
        "package": "debian-kernel-handbook",
        "docs": Path("/usr/share/doc/debian-kernel-handbook/kernel-handbook.html"),
        "include": sources(DATA / "debian_kernelhandbook_qa.jsonl"),
    },
    "maintguide": {  # 164 questions from the ten chapters of the Debian New Maintainers' Guide
        "file": DATA / "debian_maintguide_qa.jsonl",
        "package": "maint-guide",
        "docs": Path("/usr/share/doc/maint-guide/html"),
        "include": sources(DATA / "debian_maintguide_qa.jsonl"),
    },
    # session 16, split half dev, half test: the dev split is for the next round's dev pool
    "installguide": {  # 142 questions from chapters 1-8 of the Debian Installation Guide (amd64)
        "file": DATA / "debian_installguide_qa.jsonl",
        "package": "installation-guide-amd64",
        "docs": Path("/usr/share/doc/installation-guide-amd64/en"),
        "include": sources(DATA / "debian_installguide_qa.jsonl"),
    },
    # session 17, split half dev, half test: the test half was read once for session 17's design, the dev half
    # is for the next round's dev pool
    "securing": {  # 169 questions from chapters 1-12 of the Securing Debian Manual
        "file": DATA / "debian_securing_qa.jsonl",
        "package": "harden-doc",
        "docs": Path("/usr/share/doc/harden-doc/html/en-US"),
        "include": sources(DATA / "debian_securing_qa.jsonl"),
    },
    # session 18, split half dev, half test: the test half was read once for session 18's design, the dev half
    # is for the next round's dev pool
    "debmake": {  # 163 questions from the English Guide for Debian Maintainers (debmake-doc)
        "file": DATA / "debian_debmake_qa.jsonl",
        "package": "debmake-doc",
        "docs": Path("/usr/share/doc/debmake-doc/html"),
        "include": sources(DATA / "debian_debmake_qa.jsonl"),
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


def write_questions(rows: list[dict[str, Any]], out: Path) -> Path:
    """The audit's input file for ``rows`` (the same rows always give the same bytes: a resume checks its hash)."""
    out.mkdir(parents=True, exist_ok=True)
    questions = out / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": r["id"], "question": r["question"], "reference": r["reference"],
                            **({"answers": r["answers"]} if r.get("answers") else {})},
                           ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    return questions


def run_audit(rows: list[dict[str, Any]], index: Path | None, out: Path, samples: int | None, config: str | None) -> None:
    questions = write_questions(rows, out)
    # --batch 8, as every cached audit was made: the signals read here do not use the last digit of a
    # log-probability, which is all that batching changes (bench/audit_throughput.py).
    cmd = [*ragguard_cmd(), "audit", str(questions), "--out", str(out / "audit"), "--batch", "8"]
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
    detectors, grounding and the verdict are computed anew. A record with no
    samples (the audit abstained before generating) is kept as it was.
    """
    from ragguard.apps.check import checker_from_config, report_from_result
    from ragguard.config import load_config
    from ragguard.core.types import Passage, Sample
    from ragguard.generation.backends import build_embedder

    # Uncalibrated: the calibrator is fitted and measured on these records' plain signals.
    cfg = load_config(config).replace("consistency", calibration=None)
    embedder = build_embedder(cfg.embedder)
    checker = checker_from_config(cfg, embedder)
    keys = ("logprob_mean", "logprob_min", "tokens")
    out: dict[str, dict[str, Any]] = {}
    for rid, record in records.items():
        if not record["samples"]:
            out[rid] = record  # nothing to re-check; keep the abstention's own reason
            continue
        samples = [Sample(text=s["text"], seed=s["seed"], greedy=s["greedy"], **{k: s.get(k) for k in keys})
                   for s in record["samples"]]
        passages = [Passage(p["doc_id"], p["chunk_id"], p["text"], p["score"]) for p in record["sources"]]
        new = report_from_result(record["question"], checker.check(record["question"], samples, passages)).to_dict()
        out[rid] = {**record, **{k: v for k, v in new.items() if k not in ("sources", "fingerprint", "timings")}}
    return out


def _greedy(record: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in record["samples"] if s.get("greedy")), None)


def variants(row: dict[str, Any]) -> list[str]:
    return [row["reference"], *[a for a in row.get("answers") or [] if a != row["reference"]]]


def is_right(text: str, row: dict[str, Any], record: dict[str, Any]) -> bool:
    """The label: the audit's rule for short references, over every accepted answer of the set."""
    forms = variants(row)
    if all(is_short(v) for v in forms):
        return match_short(text, forms, row["question"]).label == "match"
    return record.get("reference_match") == "match"  # long references: the audit's own rule


def signal_table(record: dict[str, Any]) -> dict[str, float | None]:
    """Risk-oriented signals (higher = more likely wrong): the calibration features, each in its fixed direction."""
    from ragguard.apps.calibrate import RISK_DIRECTION
    from ragguard.core.calibration import features

    conf = record.get("confidence")
    out: dict[str, float | None] = {"1 - confidence": None if conf is None else 1.0 - conf}
    for name, value in features(record).items():
        out[name] = None if value is None else RISK_DIRECTION[name] * value
    return out


def metrics(risk: list[float], wrong: list[bool]) -> dict[str, float | None]:
    from ragguard.apps.calibrate import ranking

    out = ranking(risk, [not w for w in wrong])
    order = sorted(range(len(risk)), key=lambda i: (risk[i], i))  # least risky first
    for cover in (0.5, 0.8):
        kept = order[: max(1, round(cover * len(order)))]
        out[f"acc@{int(cover * 100)}%"] = 1.0 - sum(wrong[i] for i in kept) / len(kept)
    return out


def labelled(records: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bool]]:
    by_id = {r["id"]: r for r in rows}
    ids = [i for i in by_id if i in records]
    return [records[i] for i in ids], [is_right(records[i]["answer"], by_id[i], records[i]) for i in ids]


def report(records: dict[str, dict[str, Any]], rows: list[dict[str, Any]], method: str = "logistic",
           signals: list[str] | None = None) -> dict[str, Any]:
    from ragguard.apps.calibrate import fit_calibration

    by_id = {r["id"]: r for r in rows}
    recs, right = labelled(records, rows)
    wrong = [not r for r in right]
    greedy_right = [is_right((_greedy(r) or {"text": ""})["text"], by_id[str(r["id"])], r) for r in recs]
    table = [signal_table(r) for r in recs]
    per_signal: dict[str, Any] = {}
    for name in table[0] if table else []:
        pairs = [(row[name], w) for row, w in zip(table, wrong, strict=True) if row[name] is not None]
        if len(pairs) < len(table) * 0.5:
            continue
        per_signal[name] = {**metrics([p[0] for p in pairs], [p[1] for p in pairs]), "n": len(pairs)}
    flagged = [r["verdict"] != "consistent" for r in recs]
    consistent_right = [r for r, f in zip(right, flagged, strict=True) if not f]
    try:  # the calibrator, cross-validated on this set (what `ragguard calibrate` prints)
        combo = fit_calibration(recs, right, method=method, signals=signals, **AS_SHIPPED).figures["calibrated"]
    except UsageError as exc:  # too few records or one class
        combo = {"auroc": None, "note": str(exc)}
    return {
        "n": len(recs),
        "wrong": sum(wrong),
        "voted_accuracy": sum(right) / len(recs) if recs else None,
        "greedy_accuracy": sum(greedy_right) / len(recs) if recs else None,
        "flagged": sum(flagged),
        "consistent_accuracy": (sum(consistent_right) / len(consistent_right)) if consistent_right else None,
        "signals": per_signal,
        "combination": combo,
    }


def cross_set(fit_on: list[tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]],
              test_on: tuple[dict[str, dict[str, Any]], list[dict[str, Any]]], method: str,
              signals: list[str] | None = None) -> dict[str, Any]:
    """Fit the calibrator on some sets' records and measure it on another's (never seen by the fit)."""
    from ragguard.apps.calibrate import figures, fit_calibration
    from ragguard.core.calibration import features
    from ragguard.core.metrics import accuracy_at_coverage, ece_by_chance

    recs: list[dict[str, Any]] = []
    right: list[bool] = []
    for records, rows in fit_on:
        a, b = labelled(records, rows)
        recs += a
        right += b
    calibration = fit_calibration(recs, right, method=method, signals=signals, **AS_SHIPPED)
    test_recs, test_right = labelled(*test_on)
    conf = [calibration.probability(features(r)) for r in test_recs]
    interval = auroc_interval([1.0 - c for c in conf], [not r for r in test_right])
    kept = [(c, r) for c, r in zip(conf, test_right, strict=True) if calibration.threshold is not None
            and c >= calibration.threshold]
    return {"calibration": calibration, "fit_n": len(recs), "fit_right": sum(right),
            "test_n": len(test_recs), "test_right": sum(test_right),
            "test": {**figures(conf, test_right), "auroc_95": interval, "ece_by_chance": ece_by_chance(conf)},
            # right answers among the most confident 10 %, 20 %, ... (what abstaining below a threshold keeps)
            "test_most_confident": [{"coverage": p["coverage"], "kept": p["kept"],
                                     "right": round(p["accuracy"] * p["kept"])}
                                    for p in accuracy_at_coverage(conf, test_right)],
            "cv_on_fit": calibration.figures["calibrated"],
            "threshold": calibration.threshold,
            "test_precision_at_threshold": (sum(r for _, r in kept) / len(kept)) if kept else None,
            "test_coverage_at_threshold": len(kept) / len(test_recs) if test_recs else None}


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
    print(f"{'calibrator (5-fold CV on this set)':34} {f(combo.get('auroc')):>6} {f(combo.get('auprc')):>6}"
          + (f"   Brier {f(combo.get('brier'))} ECE {f(combo.get('ece'))}" if "ece" in combo else
             f"   ({combo.get('note', '')})"))


def unpack_if_packed(run_dir: Path) -> None:
    """Fill a missing cached audit from its committed pack (bench/cache, made by bench/trust_cache.py), if any."""
    pack = PACKS / f"{run_dir.name}.jsonl.gz"
    if (run_dir / "audit" / "results.jsonl").exists() or not pack.is_file():
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("trust_cache", ROOT / "bench" / "trust_cache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    this = sys.modules.get(__name__)
    if this is not None and getattr(this, "load_records", None) is load_records:
        module.trust = this  # this module's sets and index builder (run as a script too), not a second copy
    try:
        log(module.unpack_one(pack, run_dir.parent, force=False))
    except ValueError as exc:  # the package here lacks its passages: the audit is generated here instead
        log(f"not unpacked: {exc}")


def load_records(set_name: str, split: str, args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], list]:
    """A set's cached audit records (running the audit when missing) and its rows."""
    spec = SETS[set_name]
    rows = load_set(set_name, split, args.limit)
    if not rows:
        raise SystemExit(f"the {set_name} set has no {split!r} questions (handbook, handbook3 and devref have only test questions): "
                         "pick another --split")
    if args.audit_dir is not None and set_name == args.set_name and split == args.split:
        audit_dir = args.audit_dir
    else:
        ensure_docs(spec)
        index = ensure_index(set_name, spec, args.cache)
        run_dir = args.cache / (f"{set_name}-{split}" + (f"-n{args.samples}" if args.samples else ""))
        unpack_if_packed(run_dir)
        if not args.cached_only:
            run_audit(rows, index, run_dir, args.samples, args.config)
        audit_dir = run_dir / "audit"
    records = read_results(audit_dir)
    if args.rescore:
        records = rescore(records, args.config)
    return records, rows


def set_names(value: str) -> str:
    """``--set``: a set name, or several joined by ``+``."""
    unknown = [n for n in value.split("+") if n not in SETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown set {unknown[0]!r}: pick from {', '.join(sorted(SETS))}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="set_name", type=set_names, default="faq",
                        help=f"one of {', '.join(sorted(SETS))}, or several joined by '+' (their answers pooled)")
    parser.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    parser.add_argument("--limit", type=int, default=None, help="first N questions of the split")
    parser.add_argument("--samples", type=int, default=None, help="answers per question (default: the config's)")
    parser.add_argument("--config", default=None, help="ragguard config (default: the embedded default)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("RAGGUARD_CACHE", Path.home() / ".cache" / "ragguard")) / "bench-trust")
    parser.add_argument("--audit-dir", type=Path, default=None, help="score an existing audit folder instead of running one")
    parser.add_argument("--rescore", action="store_true", help="re-check the cached samples with the current code")
    parser.add_argument("--calibrate", action="append", default=[], metavar="SET:SPLIT",
                        help="fit the calibrator on these sets' audits (repeatable) and measure it on --set/--split")
    parser.add_argument("--method", choices=list(METHODS), default="logistic")
    parser.add_argument("--signals", default=None, help="comma-separated signals for the calibrator (default: all)")
    parser.add_argument("--write-calibration", type=Path, default=None,
                        help="with --calibrate: also write the fitted calibration.json here")
    parser.add_argument("--cached-only", action="store_true",
                        help="score the audits already in --cache as they are (run no audit, even when incomplete)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    if "+" in args.set_name and args.audit_dir is not None:
        raise SystemExit("--audit-dir scores one set: name one --set")
    records, rows = {}, []
    for name in args.set_name.split("+"):  # ids carry the set's prefix, so pooled sets never collide
        more, more_rows = load_records(name, args.split, args)
        records.update(more)
        rows += more_rows
    signals = [n.strip() for n in args.signals.split(",")] if args.signals else None
    result = report(records, rows, args.method, signals)
    print_report(args.set_name, args.split, result)
    out: dict[str, Any] = {"set": args.set_name, "split": args.split, "cpu": cpu_name(), **result}
    if args.calibrate:
        fit_on = []
        for spec in args.calibrate:
            name, _, split = spec.partition(":")
            if name not in SETS or split not in ("dev", "test", "all"):
                raise SystemExit(f"--calibrate {spec!r}: expected SET:SPLIT with SET in {sorted(SETS)}")
            fit_on.append(load_records(name, split, argparse.Namespace(**{**vars(args), "limit": None})))
        cross = cross_set(fit_on, (records, rows), args.method, signals)
        t, cv = cross["test"], cross["cv_on_fit"]
        print(f"\ncalibrator ({args.method}) fitted on {', '.join(args.calibrate)} ({cross['fit_n']} answers, "
              f"{cross['fit_right']} right), measured on {args.set_name}/{args.split} ({cross['test_n']} answers, "
              f"{cross['test_right']} right)")
        ci = t["auroc_95"]
        print(f"  on the set it was not fitted on: AUROC {t['auroc'] or float('nan'):.3f}"
              + (f" (95 % bootstrap {ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
              + f"  AUPRC {t['auprc'] or float('nan'):.3f}  Brier {t['brier']:.3f}  ECE {t['ece']:.3f}")
        if t["ece_by_chance"]:
            print(f"  ECE a perfectly calibrated confidence would show here by chance: median "
                  f"{t['ece_by_chance']['median']:.3f}, 95th percentile {t['ece_by_chance']['p95']:.3f}")
        top = {round(p["coverage"] * 100): p for p in cross["test_most_confident"]}
        print("  right answers among the most confident "
              + ", ".join(f"{c} %: {top[c]['right']}/{top[c]['kept']}" for c in (10, 20, 30, 50) if c in top))
        print(f"  cross-validated on its own data: AUROC {cv['auroc'] or float('nan'):.3f}  ECE {cv['ece']:.3f}")
        thr = cross["threshold"]
        kept = cross["test_coverage_at_threshold"]
        print("  threshold for precision 0.9: " + ("none reached on the fit data" if thr is None else
              f"{thr:.3f}; on this set it keeps no answer" if not kept else
              f"{thr:.3f}; on this set it keeps {kept:.0%} at precision {cross['test_precision_at_threshold']:.2f}"))
        calibration = cross.pop("calibration")
        out["calibrate"] = {"fit_on": args.calibrate, "method": args.method, **cross}
        if args.write_calibration:
            from dataclasses import replace

            from ragguard.config import load_config

            # The audits ran this config over their own index folders: the setup hash (config without the
            # index folder) is what the calibration holds for; records from before it was recorded lack it.
            fitted = {k: v for k, v in calibration.fitted_for.items() if k != "config_hash"}
            fitted["setup_hash"] = load_config(args.config).setup_hash()
            calibration = replace(calibration, fitted_for=fitted,
                                  data={**calibration.data, "fitted_on": args.calibrate, "cpu": cpu_name()})
            args.write_calibration.parent.mkdir(parents=True, exist_ok=True)
            args.write_calibration.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
            print(f"  wrote {args.write_calibration}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
