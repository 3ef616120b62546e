"""The audit's ``report.html``: one self-contained file that opens offline.

Inline CSS, inline JavaScript and inline SVG charts; no external request of
any kind. Every value from the results is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from ragguard.core.types import DIVERGENT

__all__ = ["render_report", "write_report"]

COLOURS = {"consistent": "#2e7d32", "inconsistent": "#b26a00", "contradiction": "#c62828", "abstain": "#1565c0",
           "invalid": "#6d4c41", "error": "#6d4c41"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d1d1f;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#666;font-size:12px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.charts{display:flex;gap:32px;flex-wrap:wrap}
table{border-collapse:collapse;width:100%;margin-top:8px}th,td{border-bottom:1px solid #eee;padding:6px 8px;
text-align:left;vertical-align:top}th{cursor:pointer;background:#fafafa;position:sticky;top:0}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
tr.q{cursor:pointer}tr.q:hover{background:#f5f9ff}tr.detail td{background:#fbfbfb}
.cluster{border-left:4px solid #999;margin:6px 0;padding:4px 10px}.cluster.win{border-color:#2e7d32}
.sample{margin:2px 0}.conflict{background:#ffe0e0}.src{color:#555;font-size:12px;white-space:pre-wrap}
.controls{display:flex;gap:8px;margin:8px 0}input,select{padding:4px 6px;font:inherit}
.warn{color:#b26a00}.hidden{display:none}
"""

JS = """
(function(){
  const rows=[...document.querySelectorAll('tr.q')];
  const text=document.getElementById('filter'), verdict=document.getElementById('verdict');
  function apply(){
    const t=text.value.toLowerCase(), v=verdict.value;
    let shown=0;
    rows.forEach(r=>{
      const ok=(!t||r.dataset.search.includes(t))&&(!v||r.dataset.verdict===v);
      r.classList.toggle('hidden',!ok);
      const d=document.getElementById('d-'+r.dataset.key);
      if(!ok&&d)d.classList.add('hidden');
      if(ok)shown++;
    });
    document.getElementById('shown').textContent=shown;
  }
  text.addEventListener('input',apply);verdict.addEventListener('change',apply);
  rows.forEach(r=>r.addEventListener('click',()=>{
    document.getElementById('d-'+r.dataset.key).classList.toggle('hidden');
  }));
  document.querySelectorAll('th[data-col]').forEach(th=>th.addEventListener('click',()=>{
    const col=th.dataset.col, num=th.dataset.num==='1';
    const asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
    const body=document.getElementById('rows');
    const pairs=rows.map(r=>[r,document.getElementById('d-'+r.dataset.key)]);
    pairs.sort((a,b)=>{let x=a[0].dataset[col],y=b[0].dataset[col];
      if(num){x=parseFloat(x)||0;y=parseFloat(y)||0;}
      return (x<y?-1:x>y?1:0)*(asc?1:-1);});
    pairs.forEach(([r,d])=>{body.appendChild(r);body.appendChild(d);});
  }));
  apply();
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bar_chart(title: str, data: dict[str, int], colours: dict[str, str] | None = None) -> str:
    width, bar_h, gap = 320, 22, 6
    top = max(data.values()) if data and max(data.values()) > 0 else 1
    parts = [f'<svg role="img" aria-label="{_e(title)}" width="{width + 120}" height="{len(data) * (bar_h + gap) + 24}">',
             f'<text x="0" y="14" font-size="13" font-weight="600">{_e(title)}</text>']
    for i, (label, count) in enumerate(data.items()):
        y = 22 + i * (bar_h + gap)
        w = int(width * count / top)
        colour = (colours or {}).get(label, "#5c6bc0")
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(label)}</text>')
        parts.append(f'<rect x="100" y="{y}" width="{w}" height="{bar_h}" fill="{colour}"></rect>')
        parts.append(f'<text x="{104 + w}" y="{y + 15}" font-size="12">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _detail(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f'<p class="warn">{_e(r.get("status"))}: {_e(r.get("error"))}</p>'
    conflicted = {i for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT for i in (c["a"], c["b"])}
    samples = r.get("samples", [])
    out = []
    for c in r.get("clusters", []):
        win = " win" if c.get("representative") == r.get("answer") and r.get("answer") else ""
        support = f", support {c['support']:.2f}" if c.get("support") is not None else ""
        out.append(f'<div class="cluster{win}"><b>cluster {c["id"]}</b> ({c["size"]} samples{support})')
        for m in c.get("members", []):
            s = samples[m] if m < len(samples) else {}
            cls = "sample conflict" if m in conflicted else "sample"
            tag = "greedy" if s.get("greedy") else f"seed {s.get('seed')}"
            out.append(f'<div class="{cls}">#{m} <small>({_e(tag)})</small> {_e(s.get("text"))}</div>')
        out.append("</div>")
    for c in r.get("contradictions", []):
        if c.get("kind") != DIVERGENT:
            out.append(f'<p class="warn">samples {c["a"]} and {c["b"]}: {_e(c["kind"])}: {_e(c["explanation"])}</p>')
    for w in r.get("warnings", []):
        out.append(f'<p class="warn">warning: {_e(w)}</p>')
    if r.get("reference"):
        out.append(f'<p><b>reference</b> ({_e(r.get("reference_match"))}): {_e(r["reference"])}</p>')
    for s in r.get("sources", []):
        out.append(f'<div class="src">{_e(s.get("doc_id"))} ({s.get("score", 0):.3f}): {_e(s.get("text", "")[:400])}</div>')
    return "".join(out)


def render_report(records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> str:
    """The report page as a string."""
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
    rows = []
    for i, r in enumerate(records):
        verdict = r.get("verdict") or r.get("status")
        colour = COLOURS.get(str(verdict), "#555")
        search = " ".join(str(x) for x in (r.get("id"), r.get("question"), r.get("answer"), " ".join(r.get("tags") or [])))
        conflicts = sum(1 for c in r.get("contradictions", []) if c.get("kind") != DIVERGENT)
        rows.append(
            f'<tr class="q" data-key="{i}" data-id="{_e(r.get("id"))}" data-verdict="{_e(verdict)}" '
            f'data-agreement="{r.get("agreement", "")}" data-confidence="{r.get("confidence", "")}" '
            f'data-line="{r.get("line", 0)}" data-search="{_e(search.lower())}">'
            f'<td>{_e(r.get("id"))}</td><td>{_e(r.get("question"))}</td>'
            f'<td><span class="badge" style="background:{colour}">{_e(verdict)}</span></td>'
            f'<td>{_fmt(r.get("agreement"))}</td><td>{_fmt(r.get("confidence"))}</td><td>{conflicts}</td>'
            f'<td>{_e(r.get("reference_match") or "")}</td><td>{_e(r.get("answer") or r.get("error") or "")}</td></tr>'
            f'<tr class="detail hidden" id="d-{i}"><td colspan="8">{_detail(r)}</td></tr>'
        )
    options = "".join(f'<option value="{v}">{v}</option>' for v in (*COLOURS,))
    verdict_counts = {**summary.get("verdicts", {}), "error": summary.get("errors", 0), "invalid": summary.get("invalid", 0)}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragguard audit</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>{CSS}</style></head><body>
<h1>ragguard audit</h1>
<div class="meta">input {_e(run.get("input"))} · config {_e(run.get("config_hash"))} · ragguard {_e(run.get("ragguard_version"))}</div>
<div class="cards">{"".join(f'<div class="card">{_e(k)}<b>{_e(v)}</b></div>' for k, v in cards)}</div>
<div class="charts">{_bar_chart("verdicts", verdict_counts, COLOURS)}{_bar_chart("agreement", summary.get("agreement_histogram", {}))}</div>
<h2>Questions (<span id="shown">{len(records)}</span> shown; click a row for its samples)</h2>
<div class="controls"><input id="filter" placeholder="filter by text, id or tag" size="40">
<select id="verdict"><option value="">all verdicts</option>{options}</select></div>
<table><thead><tr><th data-col="line" data-num="1">id</th><th>question</th><th data-col="verdict">verdict</th>
<th data-col="agreement" data-num="1">agreement</th><th data-col="confidence" data-num="1">confidence</th>
<th>conflicts</th><th>reference</th><th>answer</th></tr></thead>
<tbody id="rows">{"".join(rows)}</tbody></table>
<script>{JS}</script></body></html>
"""


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0%}"


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def write_report(path: Path, records: list[dict[str, Any]], summary: dict[str, Any], run: dict[str, Any]) -> None:
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(records, summary, run), encoding="utf-8")
    os.replace(tmp, path)
