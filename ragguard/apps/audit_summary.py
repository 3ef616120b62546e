"""The figures of an audit (``summary.json``) and the comparison of two audits (``ragguard audit diff``)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ragguard.apps.audit_io import RESULTS, latest_per_id, read_json, read_results
from ragguard.core.metrics import (
    accuracy_at_coverage,
    auroc,
    brier_score,
    ece_by_chance,
    expected_calibration_error,
    histogram,
    reliability,
)
from ragguard.errors import UsageError

__all__ = ["DEFAULT_TOLERANCE", "VERDICTS", "aspect_change", "calibration_files", "calibration_summary", "calibration_use",
           "diff_audits", "figure_message", "given", "pairing_keys", "regression_report", "regressions", "recorded_weights",
           "summarize"]

VERDICTS = ("consistent", "inconsistent", "contradiction", "abstain")

# How far the consistent share or reference accuracy may drop before `audit diff` counts it as a regression.
# One percentage point: a seed change alone moves the share of a 2000-question audit by about that much
# (sampling noise of a share p over n questions is about sqrt(p(1-p)/n), 0.011 at p 0.63 and n 2000).
DEFAULT_TOLERANCE = 0.01


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures a team reads before shipping (see the module docstring)."""
    ok = [r for r in records if r.get("status") == "ok"]
    verdicts = {v: sum(1 for r in ok if r.get("verdict") == v) for v in VERDICTS}
    with_ref = [r for r in ok if r.get("reference_match")]
    # A confidence that is not a finite number (a hand-edited or foreign results file) is left out of
    # the confidence figures rather than turning them, and summary.json, into NaN.
    # An answer withheld (retrieval or the on_flagged policy abstained) has confidence 0 and no answer to be
    # right: counted as a wrong answer it would flatter how confidence ranks wrong answers.
    scored = [(c, r["reference_match"] == "match") for r in with_ref
              if given(r) and (c := _confidence(r)) is not None]
    confidences = [c for r in ok if (c := _confidence(r)) is not None]

    def accuracy(rows: list[dict[str, Any]]) -> float | None:
        rows = [r for r in rows if r.get("reference_match")]
        return round(sum(r["reference_match"] == "match" for r in rows) / len(rows), 6) if rows else None

    consistent = [r for r in ok if r.get("verdict") == "consistent"]
    flagged = [r for r in ok if r.get("verdict") in ("inconsistent", "contradiction")]
    # AUROC of (1 - confidence) for predicting a wrong answer: 1.0 means confidence ranks
    # every wrong answer below every right one, 0.5 means it tells nothing.
    auc = auroc([1.0 - c for c, _ in scored], [not right for _, right in scored]) if scored else None
    worst = sorted(ok, key=lambda r: (_confidence(r) or 0.0, r.get("line", 0)))[:5]
    return {
        "questions": len(records),
        "answered": len(ok),
        "invalid": sum(1 for r in records if r.get("status") == "invalid"),
        "errors": sum(1 for r in records if r.get("status") == "error"),
        "verdicts": verdicts,
        "consistent_share": round(verdicts["consistent"] / len(ok), 6) if ok else None,
        "contradiction_rate": round(verdicts["contradiction"] / len(ok), 6) if ok else None,
        "agreement_histogram": histogram([float(r.get("agreement", 0.0)) for r in ok]),
        "mean_confidence": round(sum(confidences) / len(confidences), 6) if confidences else None,
        "sampling": _sampling_summary(ok),
        "reference": {
            "with_reference": len(with_ref),
            "match": sum(1 for r in with_ref if r["reference_match"] == "match"),
            "mismatch": sum(1 for r in with_ref if r["reference_match"] == "mismatch"),
            "contradicts": sum(1 for r in with_ref if r["reference_match"] == "contradicts"),
            "accuracy": accuracy(ok),
            "accuracy_consistent": accuracy(consistent),
            "accuracy_flagged": accuracy(flagged),
            "auroc_confidence_wrong": None if auc is None else round(auc, 6),
        },
        "calibration": calibration_summary(ok),
        "calibrated": calibration_use(ok),
        "worst": [
            {"id": r["id"], "question": r.get("question"), "verdict": r.get("verdict"),
             "confidence": None if r.get("confidence") is None else _confidence(r)}
            for r in worst
        ],
        "invalid_records": [{"line": r["line"], "error": r["error"]} for r in records if r.get("status") == "invalid"],
        "error_records": [{"id": r["id"], "error": r["error"]} for r in records if r.get("status") == "error"],
    }


def calibration_use(answered: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether ``confidence`` is a calibrated probability in these answered records, from which file, and
    whether the file was fitted for the setup that produced them (``None``: no record is calibrated).

    A file fitted for another setup (other samples, prompt, model) still gives a number, but it is the
    probability for that setup: the report and ``summary.json`` say so, not only a log line.
    """
    calibrated = [r for r in answered if r.get("calibrated") is True]
    if not calibrated:
        return None
    infos = [r.get("calibration") if isinstance(r.get("calibration"), dict) else {} for r in calibrated]
    other = [i for i in infos if i.get("fitted_for_this_setup") is False]
    return {"records": len(calibrated), "answered": len(answered), "partial": len(calibrated) < len(answered),
            "files": sorted({_calibration_file(r.get("calibration")) for r in calibrated} - {""}),
            "fitted_for_another_setup": len(other),
            "mismatch": sorted({str(m) for i in other for m in i.get("mismatch") or []}),
            # Chinese questions under a calibration fitted on other languages only (each record warns too).
            "other_language": sum(1 for i in infos if i.get("fitted_on_languages"))}


def calibration_files(records: list[dict[str, Any]]) -> dict[str, str]:
    """The calibration files the answered records used: sha256 (the file path where none is recorded) -> file name."""
    out: dict[str, str] = {}
    for r in records:
        if r.get("status", "ok") == "ok" and r.get("calibrated") is True:
            info = r.get("calibration") if isinstance(r.get("calibration"), dict) else {}
            name = _calibration_file(r.get("calibration"))
            out[str(info.get("sha256") or name)] = Path(name).name if name else "?"
    return dict(sorted(out.items()))


def _files_text(files: dict[str, str]) -> str:
    if not files:
        return "none"
    return ", ".join(f"{name} (sha256 {key[:12]})" if len(key) == 64 else name for key, name in files.items())


def _calibration_file(value: Any) -> str:
    # The record names its calibration file; accept a plain path or an object that carries one.
    if isinstance(value, dict):
        value = value.get("file") or value.get("path")
    return "" if value is None else str(value)


def calibration_summary(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How far ``confidence`` can be read as the probability that the answer is right.

    Over the answered records that have a reference label (``reference_match``
    set: ``match`` counts as right, ``mismatch`` and ``contradicts`` as wrong),
    an answer given (not withheld: :func:`given`) and a finite confidence: the reliability table (10 equal-width bins, see
    :func:`ragguard.core.metrics.reliability`), the expected calibration error
    and Brier score, and the accuracy of the most confident answers at 10%,
    20%, ..., 100% coverage (ties in record order). ``None`` when no record
    is labelled. Every figure is a plain number or ``None``, never NaN.
    """
    candidates = [r for r in records if r.get("status", "ok") == "ok" and r.get("reference_match")]
    labelled = [(conf, r["reference_match"] == "match") for r in candidates
                if given(r) and (conf := _confidence(r)) is not None]
    if not labelled:
        return None
    conf, right = [c for c, _ in labelled], [k for _, k in labelled]
    ece, brier = expected_calibration_error(conf, right), brier_score(conf, right)
    return {
        "labelled": len(labelled),
        # withheld answers (answer ""): confidence 0 by rule, not a probability to check (see given)
        "no_answer_left_out": sum(1 for r in candidates if not given(r)),
        "bins": [{k: _round(v) for k, v in b.items()} for b in reliability(conf, right)],
        "ece": _round(ece),
        # what a perfectly calibrated confidence would show on this many answers, by chance alone
        "ece_by_chance": {k: _round(v) for k, v in (ece_by_chance(conf) or {}).items()} or None,
        "brier": _round(brier),
        "coverage": [{k: _round(v) for k, v in p.items()} for p in accuracy_at_coverage(conf, right)],
    }


def given(record: dict[str, Any]) -> bool:
    """Whether the record gives an answer: not a retrieval abstain, nor one withheld under ``on_flagged: abstain``.

    A withheld answer gets confidence 0 by rule (calibrated or not), so it says nothing of how far
    ``confidence`` is a probability: the calibration figures and ``ragguard calibrate`` leave it out.
    A record without an ``answer`` field at all (not one an audit writes) is not taken for a withheld one.
    """
    answer = record.get("answer")
    return answer is None or bool(str(answer).strip())


def accuracy_at(calibration: dict[str, Any] | None, coverage: float) -> float | None:
    """The accuracy at ``coverage`` (one of 0.1, ..., 1.0) in a :func:`calibration_summary`, or ``None``."""
    for point in (calibration or {}).get("coverage") or []:
        if abs(float(point["coverage"]) - coverage) < 1e-9:
            return point["accuracy"]
    return None


def _confidence(record: dict[str, Any]) -> float | None:
    """The record's confidence (0.0 when the field is missing, as before), or ``None`` when it is not a finite number."""
    try:
        number = float(record.get("confidence", 0.0))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def _sampling_summary(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Answers drawn per question (questions that generated), and with adaptive sampling why it stopped."""
    drawn = [len(r.get("samples") or []) for r in ok if r.get("samples")]
    out: dict[str, Any] = {"mean_drawn": round(sum(drawn) / len(drawn), 6) if drawn else None,
                           "total_drawn": sum(drawn)}
    adaptive = [r["adaptive"] for r in ok if isinstance(r.get("adaptive"), dict)]
    if adaptive:
        of = sum(int(a.get("of", 0)) for a in adaptive)
        out["adaptive"] = {
            "share_of_fixed_n": round(sum(int(a.get("drawn", 0)) for a in adaptive) / of, 6) if of else None,
            "stopped": {k: sum(1 for a in adaptive if a.get("stopped") == k) for k in ("agreed", "contradiction",
                                                                                      "all drawn")},
        }
    return out


def diff_audits(old: str | Path, new: str | Path, *, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Compare two audit folders: changed questions and the change of each summary figure.

    Questions are matched by the ``id`` their input gave them, and a row without one by its
    question text (see :func:`pairing_keys`). A question counts as changed when its
    verdict, its answer or its reference match differs. The figures include
    the calibration of ``confidence`` (``calibration.ece``, ``calibration.ece_by_chance``,
    ``calibration.brier``, ``calibration.accuracy_at_coverage_50`` and
    ``_80``; see :func:`calibration_summary`), computed from the records
    for an audit whose ``summary.json`` predates them, and the counts of ``errors`` and
    ``invalid`` rows. ``added`` and ``dropped`` hold the rows only one audit has,
    ``settings_changed`` the settings of ``audit.json`` that differ, ``input_files`` the questions file
    each run read, ``transitions`` how many paired rows went from each verdict (or status) to each
    other, and ``regressions`` what got worse (:func:`regressions`; ``regression`` holds the same per
    question, with the figure drops within ``tolerance``, see :func:`regression_report`). Each entry of
    ``changed`` has a ``kind``: ``verdict`` (its verdict or status changed), ``reference`` (same verdict,
    its reference match changed) or ``answer`` (only the answer's wording changed).
    """
    if not 0 <= tolerance <= 1:
        raise UsageError(f"--tolerance must be a fraction between 0 and 1, got {tolerance}")
    old_dir, new_dir = Path(old), Path(new)
    for d in (old_dir, new_dir):
        if not (d / RESULTS).is_file():
            raise UsageError(f"{d} is not an audit folder (no {RESULTS}): pass folders written by `ragguard audit`")
    before, after = (latest_per_id(read_results(d / RESULTS, repair=False)) for d in (old_dir, new_dir))  # read only
    paired_old, paired_new = pairing_keys(list(before.values())), pairing_keys(list(after.values()))
    both = [k for k in paired_new if k in paired_old]
    dropped = [_brief(r) for k, r in paired_old.items() if k not in paired_new]  # in input order
    added = [_brief(r) for k, r in paired_new.items() if k not in paired_old]
    changed = []
    for key in both:
        a, b = paired_old[key], paired_new[key]
        fields = [f for f in ("status", "verdict", "answer", "reference_match") if a.get(f) != b.get(f)]
        if fields:
            changed.append({
                "id": b.get("id"),
                # a row without an id is keyed by its line, which moved: the line it had in OLD
                **({"old_id": a.get("id")} if a.get("id") != b.get("id") else {}),
                "question": b.get("question") or a.get("question"),
                "changed": fields,
                "kind": _change_kind(fields),
                "old": {f: a.get(f) for f in ("verdict", "answer", "reference_match", "confidence", "status")},
                "new": {f: b.get(f) for f in ("verdict", "answer", "reference_match", "confidence", "status")},
            })
    s_old = read_json(old_dir / "summary.json") or summarize(list(before.values()))
    s_new = read_json(new_dir / "summary.json") or summarize(list(after.values()))
    figures = {}
    for key in ("consistent_share", "contradiction_rate", "mean_confidence"):
        figures[key] = _delta(s_old.get(key), s_new.get(key))
    figures["sampling.mean_drawn"] = _delta(s_old.get("sampling", {}).get("mean_drawn"),
                                            s_new.get("sampling", {}).get("mean_drawn"))
    for key in ("accuracy", "accuracy_consistent", "accuracy_flagged", "auroc_confidence_wrong"):
        figures[f"reference.{key}"] = _delta(s_old.get("reference", {}).get(key), s_new.get("reference", {}).get(key))
    # Audits written before the calibration figures existed: compute them from their records.
    cal_old = s_old["calibration"] if "calibration" in s_old else calibration_summary(list(before.values()))
    cal_new = s_new["calibration"] if "calibration" in s_new else calibration_summary(list(after.values()))
    def read(cal: dict[str, Any] | None, key: str) -> float | None:
        if key == "ece_by_chance":  # beside the ECE, what chance alone gives (None: a summary from before it)
            return ((cal or {}).get(key) or {}).get("median")
        return (cal or {}).get(key)

    for key in ("ece", "ece_by_chance", "brier"):
        figures[f"calibration.{key}"] = _delta(read(cal_old, key), read(cal_new, key))
    for coverage in (0.5, 0.8):
        figures[f"calibration.accuracy_at_coverage_{round(coverage * 100)}"] = _delta(accuracy_at(cal_old, coverage),
                                                                                  accuracy_at(cal_new, coverage))
    for verdict in VERDICTS:
        figures[f"verdicts.{verdict}"] = _delta(s_old.get("verdicts", {}).get(verdict), s_new.get("verdicts", {}).get(verdict))
    for key in ("errors", "invalid"):  # rows that were not measured: infrastructure errors, bad input rows
        figures[key] = _delta(s_old.get(key), s_new.get(key))
    runs = [read_json(d / "audit.json") or {} for d in (old_dir, new_dir)]
    setup = {key: {"old": runs[0].get(key), "new": runs[1].get(key)}
             for key in ("config_hash", "index_id", "input_sha256", "ragguard_version")
             if runs[0].get(key) is not None and runs[1].get(key) is not None and runs[0][key] != runs[1][key]}
    # The weights: the config names them by path, so a retrained adapter or a replaced checkpoint shows only here.
    weights = [recorded_weights(list(records.values())) for records in (before, after)]
    setup.update({key: {"old": weights[0][key], "new": weights[1][key]} for key in ("model_sha256", "adapter_sha256")
                  if weights[0][key] and weights[1][key] and weights[0][key] != weights[1][key]})
    # The calibration is in neither hash (a calibration must recognise the setup it was fitted for), and it
    # changes every confidence and the calibration figures: named from the records, which say which file they used.
    files = [calibration_files(list(records.values())) for records in (before, after)]
    if files[0] != files[1]:
        setup["calibration"] = {"old": _files_text(files[0]), "new": _files_text(files[1])}
    # The settings themselves (audit.json's "settings", section.key: value) where both runs recorded them.
    settings = [r.get("settings") if isinstance(r.get("settings"), dict) else None for r in runs]
    settings_changed = {} if None in settings else {
        k: {"old": settings[0].get(k), "new": settings[1].get(k)}
        for k in sorted(settings[0].keys() | settings[1].keys()) if settings[0].get(k) != settings[1].get(k)}
    pairs = [(paired_old[k], paired_new[k]) for k in both]
    report = regression_report(pairs, figures, tolerance)
    return {
        "old": str(old_dir),
        "new": str(new_dir),
        "setup_changed": setup,  # what differs between the two runs' audit.json: a change may come from there
        "settings_changed": settings_changed,
        "input_files": {"old": runs[0].get("input"), "new": runs[1].get("input")},
        "compared": len(both),
        "only_old": sorted(str(r["id"]) for r in dropped),
        "only_new": sorted(str(r["id"]) for r in added),
        "dropped": dropped,  # the same rows with what they hold, in input order
        "added": added,
        "changed": changed,
        "changed_counts": {kind: sum(1 for c in changed if c["kind"] == kind) for kind in ("verdict", "reference",
                                                                                             "answer")},
        "transitions": _transitions(pairs),
        "figures": figures,
        "regressions": _regression_messages(report),
        "regression": report,
    }


def _label(record: dict[str, Any]) -> str:
    """A row's verdict, or its status when it has none (``error``, ``invalid``)."""
    return str(record.get("verdict") or record.get("status"))


def _change_kind(fields: list[str]) -> str:
    if "status" in fields or "verdict" in fields:
        return "verdict"
    return "reference" if "reference_match" in fields else "answer"


def _transitions(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """How many paired rows went from each verdict (or status) in OLD to each in NEW, the unchanged ones included:
    most frequent first, ties by name."""
    counts = Counter((_label(a), _label(b)) for a, b in pairs)
    return [{"from": f, "to": t, "count": n} for (f, t), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def recorded_weights(records: list[dict[str, Any]]) -> dict[str, str | None]:
    """The model's and adapter's weight hashes in the fingerprint of the last answered record (``None``: not
    recorded). The config names weights by path, so these tell a retrained adapter at the same path apart."""
    fp = next((r["fingerprint"] for r in reversed(records)
               if r.get("status") == "ok" and isinstance(r.get("fingerprint"), dict)), {})
    return {"model_sha256": fp.get("model_sha256"), "adapter_sha256": fp.get("adapter_sha256")}


def regressions(pairs: list[tuple[dict[str, Any], dict[str, Any]]], figures: dict[str, dict[str, Any]],
                tolerance: float = 0.0) -> list[str]:
    """What got worse from OLD to NEW, one line per question and aspect (``audit diff --fail-on-regression``
    fails on any); a figure that dropped by ``tolerance`` or less is not listed (:func:`regression_report`)."""
    return _regression_messages(regression_report(pairs, figures, tolerance))


def regression_report(pairs: list[tuple[dict[str, Any], dict[str, Any]]], figures: dict[str, dict[str, Any]],
                      tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """What got worse from OLD to NEW, per question and per figure.

    A question regressed when it was answered in OLD and NEW could not measure it (``error``, ``invalid``:
    aspect ``status``), when it was ``consistent`` in OLD and NEW flags it (``inconsistent`` or
    ``contradiction``: aspect ``verdict``), or when its answer matched its reference in OLD and does not
    in NEW (``mismatch`` or ``contradicts``: aspect ``reference_match``); a question counts once, with
    all its aspects. A figure regressed when the consistent share or reference accuracy is lower in NEW
    (``within_tolerance`` when it dropped by ``tolerance`` or less: reported, not counted in ``failing``)
    or when OLD measured it and NEW does not (no question answered, no reference left).

    Returns:
        ``{"tolerance", "questions": [{"id", "aspects", "old", "new"}], "figures": [{"figure", "old",
        "new", "change", "within_tolerance"}], "failing"}``, ``failing`` the questions plus the figures
        beyond the tolerance: what ``--fail-on-regression`` fails on.
    """
    questions = []
    for a, b in pairs:
        aspects = []
        if a.get("status") == "ok" and b.get("status") in ("error", "invalid"):  # answered before, not measured now
            aspects.append("status")
        elif a.get("status") == "ok" and b.get("status") == "ok":
            if a.get("verdict") == "consistent" and b.get("verdict") in ("inconsistent", "contradiction"):
                aspects.append("verdict")
            if a.get("reference_match") == "match" and b.get("reference_match") in ("mismatch", "contradicts"):
                aspects.append("reference_match")
        if aspects:
            questions.append({
                "id": b.get("id"),
                **({"old_id": a.get("id")} if a.get("id") != b.get("id") else {}),
                "aspects": aspects,
                "old": {f: a.get(f) for f in ("status", "verdict", "reference_match")},
                "new": {f: b.get(f) for f in ("status", "verdict", "reference_match")},
            })
    dropped = []
    for key in ("consistent_share", "reference.accuracy"):
        v = figures[key]
        if v["old"] is not None and v["new"] is None:
            dropped.append({"figure": key, **v, "within_tolerance": False})
        elif v["change"] is not None and v["change"] < 0:
            # the change is rounded to 6 decimals, so a drop of exactly the tolerance is within it
            dropped.append({"figure": key, **v, "within_tolerance": -v["change"] <= tolerance})
    return {"tolerance": tolerance, "questions": questions, "figures": dropped,
            "failing": len(questions) + sum(1 for f in dropped if not f["within_tolerance"])}


_FIGURE_NAMES = {"consistent_share": "consistent share", "reference.accuracy": "reference accuracy"}


def figure_message(figure: dict[str, Any]) -> str:
    """``consistent share 0.633 -> 0.625 (-0.008)`` (three decimals: two hide a change of a few thousandths)."""
    name = _FIGURE_NAMES.get(figure["figure"], figure["figure"])
    if figure["new"] is None:
        return f"{name} {figure['old']:.3f} -> n/a (not measured in NEW)"
    return f"{name} {figure['old']:.3f} -> {figure['new']:.3f} ({figure['change']:+.3f})"


def aspect_change(aspect: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """How a question got worse in one aspect of :func:`regression_report` (``consistent -> contradiction``)."""
    if aspect == "status":
        return f"{old['verdict']} -> {new['status']}"
    if aspect == "verdict":
        return f"consistent -> {new['verdict']}"
    return f"reference match -> {new['reference_match']}"


def _regression_messages(report: dict[str, Any]) -> list[str]:
    """The plain lines of ``regressions`` in ``audit diff --json``, as before: one per question and aspect, then the
    figures beyond the tolerance."""
    found = [f"{q['id']}: {aspect_change(aspect, q['old'], q['new'])}" for q in report["questions"]
             for aspect in q["aspects"]]
    found.extend(figure_message(f) for f in report["figures"] if not f["within_tolerance"])
    return found


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record.get("id"), "line": record.get("line"), "question": record.get("question"),
            "status": record.get("status"), "verdict": record.get("verdict"),
            "reference_match": record.get("reference_match"), "error": record.get("error")}


def pairing_keys(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The records of one audit by the key that pairs them with another audit's.

    A question's own ``id`` is its key. A row without one is keyed ``line-N`` by its line in the
    results, and that moves when a row is inserted above it, so it is paired by its question text
    instead; the same question twice without an id pairs in order (the first with the first). An
    invalid row is paired by the id it gave (``record_id``) unless a valid row holds that id, else
    by its question text or, with neither, by its error in order.
    """
    def own_id(r: dict[str, Any]) -> str | None:
        rid = str(r.get("id"))
        return None if rid == f"line-{r.get('line')}" else rid  # the id a row without one gets (load_questions)

    ids = {own_id(r) for r in records} - {None}
    keys: dict[tuple[Any, ...], dict[str, Any]] = {}
    seen: dict[tuple[Any, ...], int] = {}
    for r in records:  # in file order: the input's, then questions no longer in it
        if own_id(r) is not None:
            keys[("id", own_id(r))] = r
            continue
        if r.get("record_id") not in (None, "") and str(r["record_id"]) not in ids:
            ids.add(str(r["record_id"]))  # a second invalid row with that id is paired by its question or error
            keys[("id", str(r["record_id"]))] = r
            continue
        question = r.get("question")
        base = ("question", question.strip()) if isinstance(question, str) and question.strip() else (
            "row", r.get("status"), r.get("error"))
        seen[base] = seen.get(base, 0) + 1
        keys[(*base, seen[base])] = r
    return keys


def _delta(old: Any, new: Any) -> dict[str, Any]:
    change = None if old is None or new is None else round(float(new) - float(old), 6)
    return {"old": old, "new": new, "change": change}
