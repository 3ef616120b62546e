"""Audit the Debian FAQ's own questions against an index of the FAQ (real data, real models).

Slow: builds the index of the English HTML chapters of Debian's `debian-faq`
package, turns every "N.M. Question?" heading into an audit record whose
reference is the first paragraph of that section, and runs ``run_audit``
with the embedded generator and embedder. Prints questions per minute,
verdict counts and reference accuracy. ``RAGGUARD_DEBIAN_AUDIT_QUESTIONS``
sets how many questions (default 12; ``all`` for every one).
Skipped where the package is not installed (`make test-slow` installs it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_debian_faq import faq_index, faq_sections  # noqa: F401 - faq_index is a fixture

pytestmark = [pytest.mark.slow, pytest.mark.integration]



def faq_records() -> list[dict[str, object]]:
    """One audit record per question heading: id = section number, reference = its first paragraph."""
    records = []
    for page, section, question, following in faq_sections():
        paragraph: list[str] = []
        for line in following:
            if line.startswith("#"):
                break
            if not line.strip():
                if paragraph:
                    break
                continue
            paragraph.append(line.strip())
        if paragraph:
            records.append({"id": f"debian-{section}", "question": question, "reference": " ".join(paragraph),
                            "tags": [page.split(".")[0]]})
    return records


def test_audit_of_the_debian_faq(faq_index: Path, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    from ragguard.apps.audit import run_audit
    from ragguard.pipeline import RagGuard

    records = faq_records()
    assert len(records) >= 60, "the FAQ's question headings were not found"
    wanted = os.environ.get("RAGGUARD_DEBIAN_AUDIT_QUESTIONS", "12")
    chosen = records if wanted == "all" else records[:: max(1, len(records) // int(wanted))][: int(wanted)]
    questions = tmp_path / "debian-faq.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen), encoding="utf-8")

    guard = RagGuard.from_config(None, index=faq_index)
    started = time.perf_counter()
    result = run_audit(questions, tmp_path / "audit", guard)
    minutes = (time.perf_counter() - started) / 60
    s = result.summary
    print(
        f"\nDebian FAQ audit: {s['questions']} questions in {minutes:.1f} min ({s['questions'] / minutes:.2f} q/min); "
        f"verdicts {s['verdicts']}; reference {s['reference']}; errors {s['errors']}"
    )
    lines = (tmp_path / "audit" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(chosen) and s["errors"] == 0
    assert s["reference"]["with_reference"] == len(chosen)
    assert sum(s["verdicts"].values()) == len(chosen)
    assert (tmp_path / "audit" / "report.html").stat().st_size > 10_000
