"""The audit's ``report.html``: one self-contained file that opens offline.

The page is rendered from ``templates/report.html.j2`` (inline CSS, inline
JavaScript, inline SVG charts; no external request of any kind) through the
shared, autoescaping environment of :mod:`ragguard.apps.templating`, so every
value from the results is HTML-escaped. This module prepares the template's
context: formatted numbers, chart geometry, one plain dict per table row, and
the data of the rows' details (samples, conflicts, reference, sources: see
:func:`_details`), which the page's script builds into a row when it is opened
or printed, so that the template only lays things out. The first :data:`PAGE`
rows are shown; the rest wait behind "show more".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragguard.apps.audit_summary import accuracy_at
from ragguard.core.types import DIVERGENT

__all__ = ["render_report", "report_context", "write_report", "stage_report"]

COLOURS = {"consistent": "#2e7d32", "inconsistent": "#a05e00", "contradiction": "#c62828", "abstain": "#1565c0",
           "invalid": "#6d4c41", "error": "#6d4c41"}

# The verdicts from the most to the least worrying: sorting the table by verdict puts the first on top.
# An error or invalid row has no verdict and sorts after them, whichever the direction.
SEVERITY = {"contradiction": 0, "inconsistent": 1, "abstain": 2, "consistent": 3}

# How many rows of the questions table are shown at first, and added by each "show more": the browser lays
# out every shown row, and at 10,000 rows loading and each sort took minutes on a laptop-class CPU.
PAGE = 1000

# The square plot area of the calibration charts, in pixels, and its margins.
PLOT, LEFT, TOP, BOTTOM = 220, 44, 26, 36


def render_report(records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> str:
    """The report page as a string."""
    from ragguard.apps.templating import render

    return render("report.html.j2", script_hash=_script_hash(), **report_context(records, summary, run))


def _script_hash() -> str:
    """The CSP source of the page's one inline script (``'sha256-...'``): only that script may run, so
    were escaping ever to fail, text injected from an answer could not. The script holds no data."""
    import base64
    import hashlib

    from ragguard.apps.templating import render

    digest = hashlib.sha256(render("report_script.js.j2").encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def write_report(path: Path, records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> None:
    """Write the report to ``path`` atomically (a temporary file, then a rename)."""
    from ragguard.apps.audit_io import publish

    publish([(stage_report(path, records, summary, run), path)])


def stage_report(path: Path, records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> Path:
    """The report, staged beside ``path`` for :func:`ragguard.apps.audit_io.publish` (a failed write leaves no
    temporary file)."""
    from ragguard.apps.audit_io import stage

    html = render_report(records, summary, run)
    return stage(path, lambda fh: fh.write(html))


def report_context(records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Everything ``report.html.j2`` shows, as plain strings, numbers, lists and dicts."""
    verdict_counts = {**summary.get("verdicts", {}), "error": summary.get("errors", 0), "invalid": summary.get("invalid", 0)}
    return {
        "run": {"input": _text(run.get("input")), "config_hash": _text(run.get("config_hash")),
                "version": _text(run.get("ragguard_version")), "name": _input_name(run.get("input")),
                "finished": _finished(summary.get("finished_at"))},
        "setup": _setup(records, run),
        "gate": _gate(summary.get("gates")),
        "partial": _partial(summary.get("partial")),
        "calibrated": summary.get("calibrated"),
        "drift": _drift(summary.get("calibration_drift")),
        "cards": _cards(summary),
        "charts": [_bar_chart("verdicts", verdict_counts, COLOURS, ("verdict", "questions")),
                   _bar_chart("agreement", summary.get("agreement_histogram", {}), None, ("agreement", "questions"))],
        "calibration": _calibration(summary.get("calibration")),
        "verdict_options": list(COLOURS),
        "references": any(r.get("reference_match") for r in records),
        "rows": [_row(i, r) for i, r in enumerate(records)],
        "details": _details(records),
        "page": PAGE,
    }


def _input_name(path: Any) -> str:
    """The question file's name without its folders, for the page's title."""
    return Path(str(path)).name if path not in (None, "") else ""


def _finished(stamp: Any) -> str:
    """``summary.json``'s ``finished_at`` (``2026-12-07T20:10:18Z``) as ``2026-12-07 20:10 UTC``; empty for a
    summary written before the time was recorded."""
    from datetime import datetime

    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return ""


def _setup(records: list[dict[str, Any]], run: dict[str, Any]) -> list[tuple[str, str]]:
    """What was audited, as (label, value): model and its file hash, adapter, index, samples and seed.

    From ``audit.json`` (``run``: its ``settings``, ``index``, ``index_id``) and the answered
    records' fingerprints, which name the model as loaded and the hash of its file; a value that
    differs between records (an audit resumed over another file) is listed with each of them.
    """
    settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
    prints = [r["fingerprint"] for r in records if r.get("status") == "ok" and isinstance(r.get("fingerprint"), dict)]

    def recorded(key: str, *fallbacks: Any) -> str:
        values = list(dict.fromkeys(str(f[key]) for f in prints if f.get(key) not in (None, "")))
        values = values or [str(v) for v in fallbacks if v not in (None, "")][:1]
        return ", ".join(values)

    model = recorded("model", settings.get("generator.model"))
    model_sha = recorded("model_sha256", run.get("model_sha256"))
    adapter = recorded("adapter", settings.get("generator.adapter")) or "none"
    adapter_sha = recorded("adapter_sha256", run.get("adapter_sha256"))
    index = _text(run.get("index")) or "none (no retrieval)"
    samples = settings.get("sampling.samples")
    if samples is not None and settings.get("sampling.adaptive"):
        samples = f"up to {samples} (adaptive)"
    setup = [("model", f"{model} (sha256 {model_sha})" if model_sha else model),
             ("adapter", f"{adapter} (sha256 {adapter_sha})" if adapter_sha else adapter),
             ("index", f"{index} ({run['index_id']})" if run.get("index_id") else index),
             ("samples", _text(samples)), ("seed", _text(settings.get("sampling.seed")))]
    return [(label, value) for label, value in setup if value]


def _partial(partial: Any) -> dict[str, Any] | None:
    """``summary.json``'s ``partial`` (a run that stopped early) for the banner, or ``None``."""
    if not isinstance(partial, dict):
        return None
    message = _text(partial.get("message"))
    return {"reason": _text(partial.get("reason")), "not_done": _text(partial.get("not_done")),
            "message": "" if message == "interrupted" else message}


def _gate(gates: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``--fail-under`` gate of ``summary.json`` for the header, or ``None`` when the run had none."""
    if not isinstance(gates, dict) or gates.get("fail_under") is None:
        return None
    return {"fail_under": f"{float(gates['fail_under']):.2f}", "passed": bool(gates.get("passed")),
            "failures": [_text(f) for f in gates.get("failures") or []],
            "inherited": bool(gates.get("inherited"))}


def _cards(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    ref = summary.get("reference", {})
    cards = [
        ("questions", summary.get("questions")),
        ("consistent share", _pct(summary.get("consistent_share"))),
        ("contradiction rate", _pct(summary.get("contradiction_rate"))),
        ("reference accuracy", _pct(ref.get("accuracy"))),
        ("AUROC (confidence)", "n/a" if ref.get("auroc_confidence_wrong") is None else f"{ref['auroc_confidence_wrong']:.2f}"),
        ("errors", summary.get("errors")),
        ("invalid records", summary.get("invalid")),
    ]
    sampling = summary.get("sampling") or {}
    if sampling.get("mean_drawn") is not None:
        drawn = f"{sampling['mean_drawn']:.1f}"
        share = (sampling.get("adaptive") or {}).get("share_of_fixed_n")
        cards.append(("answers per question", drawn if share is None else f"{drawn} ({share:.0%} of fixed N)"))
    return [(label, "" if value is None else value) for label, value in cards]


def _bar_chart(title: str, data: dict[str, int], colours: dict[str, str] | None = None,
               columns: tuple[str, str] = ("", "count")) -> dict[str, Any]:
    """A horizontal bar chart, with ``columns`` heading the table of its numbers that a screen reader reads."""
    width, bar_h, gap = 320, 22, 6
    top = max(data.values()) if data and max(data.values()) > 0 else 1
    bars = []
    for i, (label, count) in enumerate(data.items()):
        y = 22 + i * (bar_h + gap)
        w = int(width * count / top)
        bars.append({"label": label, "count": count, "y": y, "h": bar_h, "w": w, "text_y": y + 15, "count_x": 104 + w,
                     "colour": (colours or {}).get(label, "#5c6bc0")})
    # Room after the longest bar for its count, the widest one at 12 px (a digit is about 7 px wide).
    count_w = 8 * max((len(str(count)) for count in data.values()), default=1) + 4
    return {"title": title, "width": 104 + width + count_w, "height": len(data) * (bar_h + gap) + 24, "bars": bars,
            "columns": columns, "rows": [(b["label"], b["count"]) for b in bars]}


def _drift(drift: Any) -> str | None:
    """The sentence of ``summary.json``'s ``calibration_drift`` when it flags a signal (else nothing is shown)."""
    if not isinstance(drift, dict) or not drift.get("flagged") or not isinstance(drift.get("message"), str):
        return None
    return drift["message"]


def _calibration(cal: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reliability diagram and the accuracy-against-coverage curve, or ``None`` without labelled records."""
    if not cal or not cal.get("labelled"):
        return None
    bars = []
    for b in cal["bins"]:
        if not b["count"]:
            continue
        x, y = _xy(b["lower"], b["accuracy"])
        w = PLOT / len(cal["bins"]) - 2
        bars.append({"x": _px(x + 1), "y": _px(y), "w": _px(w), "h": _px(TOP + PLOT - y),
                     # how many answers the bar holds, over it: a bar of 1 answer says less than one of 500
                     "n": b["count"], "n_x": _px(x + 1 + w / 2), "n_y": _px(y - 3),
                     "tip": f"confidence {b['lower']:.1f}-{b['upper']:.1f}: {_answers(b['count'])}, "
                            f"mean confidence {b['mean_confidence']:.2f}, observed accuracy {b['accuracy']:.0%}"})
    points = []
    for p in cal["coverage"]:
        x, y = _xy(p["coverage"], p["accuracy"])
        points.append({"x": _px(x), "y": _px(y), "tip": f"coverage {p['coverage']:.0%} ({_answers(p['kept'])}, confidence "
                                                        f"at least {p['threshold']:.2f}): accuracy {p['accuracy']:.0%}"})
    bin_rows = [(f"{b['lower']:.1f}-{b['upper']:.1f}", b["count"], f"{b['mean_confidence']:.2f}", f"{b['accuracy']:.0%}")
                for b in cal["bins"] if b["count"]]
    point_rows = [(f"{p['coverage']:.0%}", p["kept"], f"{p['threshold']:.2f}", f"{p['accuracy']:.0%}")
                  for p in cal["coverage"]]
    at = [(f"{c:.0%}", _pct(accuracy_at(cal, c))) for c in (0.5, 0.8)]
    return {
        "labelled": cal["labelled"],
        "no_answer": cal.get("no_answer_left_out") or 0,
        "ece": _num(cal.get("ece")),
        "ece_by_chance": _num((cal.get("ece_by_chance") or {}).get("median")),
        "brier": _num(cal.get("brier")),
        "at": at,
        "reliability": {**_frame("reliability-diagram", "reliability diagram",
                                 "confidence", "observed accuracy"), "ideal": True, "bars": bars, "points": [],
                        "columns": ("confidence", "answers", "mean confidence", "observed accuracy"), "rows": bin_rows},
        "coverage": {**_frame("coverage-curve", "accuracy against coverage", "coverage (most confident first)",
                              "accuracy of answers kept"), "ideal": False, "bars": [], "points": points,
                     "columns": ("coverage", "answers kept", "confidence at least", "accuracy"), "rows": point_rows},
    }


def _frame(chart_id: str, title: str, x_label: str, y_label: str) -> dict[str, Any]:
    ticks = [{"label": f"{v:g}", "x": _px(_xy(v, v)[0]), "y": _px(_xy(v, v)[1])} for v in (0.0, 0.5, 1.0)]
    return {"id": chart_id, "title": title, "x_label": x_label, "y_label": y_label, "ticks": ticks,
            "width": LEFT + PLOT + 16, "height": TOP + PLOT + BOTTOM,
            "x0": LEFT, "y0": TOP + PLOT, "x1": LEFT + PLOT, "y1": TOP}


def _xy(x: float, y: float) -> tuple[float, float]:
    """Plot coordinates of the point (x, y) in [0, 1]^2 (SVG's y grows downwards)."""
    return LEFT + PLOT * min(1.0, max(0.0, x)), TOP + PLOT * (1.0 - min(1.0, max(0.0, y)))


def _px(value: float) -> float:
    return round(value, 1)


def _row(i: int, r: dict[str, Any]) -> dict[str, Any]:
    verdict = r.get("verdict") or r.get("status")
    return {
        "key": i,
        "id": _text(r.get("id")),
        "verdict": _text(verdict),
        "colour": COLOURS.get(str(verdict), "#555"),
        # The raw numbers for sorting, as the browser script parses them.
        "agreement_value": str(r.get("agreement", "")),
        "confidence_value": str(r.get("confidence", "")),
        "line": str(r.get("line", 0)),
        "severity": _text(SEVERITY.get(str(verdict))),
        "question": _text(r.get("question")),
        "question_lang": _lang(r.get("question")),
        "answer_lang": _lang(r.get("answer") or r.get("error")),
        "agreement": _fmt(r.get("agreement")),
        "confidence": _fmt(r.get("confidence")),
        "conflicts": sum(1 for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT),
        "reference_match": r.get("reference_match") or "",
        # An answered question's answer, else an error's message or an invalid row's reason.
        "answer": r.get("answer") or r.get("error") or "",
    }


def _details(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the opened rows show, for the page's script to render when a row is opened (or printed).

    One JSON object in a ``<script type="application/json">`` element, not HTML per row: at 10,000 rows
    the rows' details as markup made the page 35 MB and took minutes to load and sort. Its shape:

    * ``passages``: ``[doc_id, text]`` of every source passage the records cite (its first 400
      characters), each once however many rows cite it; ``warnings``: every warning text, each once;
    * ``rows``: one entry per table row, in input order (a row's ``data-key`` is its index), holding only
      what the row's cells do not already show: ``tags`` and ``reference`` (searched by the filter; a
      reference is shown in the detail with ``reference_lang``), and for an answered question ``answer``
      (1 when the answer cell holds its answer, shown whole in the detail), ``clusters`` (``id``,
      ``size``, ``support``, ``win``, ``members`` as ``[sample index, "greedy" or "seed N", text,
      conflicting (1/0)]``, with ``"zh"`` after them for a Chinese text), ``contradictions`` (``[a, b, kind,
      explanation]``), ``warnings`` (indices into ``warnings``) and ``sources`` (``[passage index,
      score]``); for an error or invalid row its ``status`` and ``error``.

    Empty fields are left out. Every value is text for the script's ``textContent``, never markup.
    """
    passages: dict[tuple[str, str], int] = {}
    warnings: dict[str, int] = {}
    rows = [_detail(r, passages, warnings) for r in records]
    return {"rows": rows, "passages": [list(key) for key in passages], "warnings": list(warnings)}


def _detail(r: dict[str, Any], passages: dict[tuple[str, str], int], warnings: dict[str, int]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    tags = [_text(t) for t in r.get("tags") or [] if t not in (None, "")]
    if tags:
        entry["tags"] = tags
    if r.get("reference") not in (None, ""):
        entry["reference"] = _text(r.get("reference"))
        if lang := _lang(r.get("reference")):
            entry["reference_lang"] = lang
    if r.get("status") != "ok":
        entry.update(status=_text(r.get("status")), error=_text(r.get("error")))
        return entry
    conflicted = {i for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT for i in (c["a"], c["b"])}
    samples = r.get("samples", [])
    clusters = []
    for c in r.get("clusters", []):
        members = []
        for m in c.get("members", []):
            s = samples[m] if m < len(samples) else {}
            lang = _lang(s.get("text"))
            member = [m, "greedy" if s.get("greedy") else f"seed {s.get('seed')}", _text(s.get("text")),
                      int(m in conflicted)]
            members.append(member + [lang] if lang else member)
        cluster = {"id": c["id"], "size": c["size"], "members": members}
        if c.get("support") is not None:
            cluster["support"] = f"{c['support']:.2f}"
        if r.get("answer") and c.get("representative") == r.get("answer"):
            cluster["win"] = 1
        clusters.append(cluster)
    sources = []
    for s in r.get("sources", []):
        key = (_text(s.get("doc_id")), (s.get("text") or "")[:400])
        sources.append([passages.setdefault(key, len(passages)), f"{s.get('score') or 0:.3f}"])
    fields = {
        "answer": 1 if r.get("answer") else 0,  # whole in the detail; its table cell shows three lines
        "clusters": clusters,
        "contradictions": [[c.get("a"), c.get("b"), _text(c.get("kind")), _text(c.get("explanation"))]
                           for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT],
        "warnings": [warnings.setdefault(_text(w), len(warnings)) for w in r.get("warnings", [])],
        "sources": sources,
    }
    entry.update((k, v) for k, v in fields.items() if v)
    return entry


def _lang(text: Any) -> str:
    """``zh`` for a text in Chinese characters (so that a screen reader picks a Chinese voice), else empty: the
    page is ``lang="en"``. The same test that ``ragguard calibrate`` uses to name a question's language."""
    from ragguard.core.grounding import has_cjk

    return "zh" if text and has_cjk(str(text)) else ""


def _answers(n: int) -> str:
    return "1 answer" if n == 1 else f"{n} answers"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0%}"


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"
