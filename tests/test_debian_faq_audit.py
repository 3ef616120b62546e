"""Audit the Debian FAQ's own questions against an index of the FAQ (real data, real models).

Slow: builds the index of the English HTML chapters of Debian's `debian-faq`
package, turns every "N.M. Question?" heading into an audit record whose
reference is the first paragraph of that section, and runs ``run_audit``
with the embedded generator and embedder. Prints questions per minute,
verdict counts and reference accuracy. ``RAGGUARD_DEBIAN_AUDIT_QUESTIONS``
sets how many questions (default 24; ``all`` for every one).
Skipped where the package is not installed (`make test-slow` installs it).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ragguard.html_text import html_to_text

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FAQ = Path("/usr/share/doc/debian/FAQ")


def faq_records() -> list[dict[str, str]]:
    """One audit record per question heading: id = section number, reference = its first paragraph."""
    records = []
    for page in sorted(FAQ.glob("*.en.html")):
        lines = html_to_text(page.read_text(encoding="utf-8")).splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^##+ (\d+\.\d+)\. (.+)$", line)
            if not (m and m.group(2).rstrip().endswith("?")):
                continue
            paragraph: list[str] = []
            for following in lines[i + 1 :]:
                if following.startswith("#"):
                    break
                if not following.strip():
                    if paragraph:
                        break
                    continue
                paragraph.append(following.strip())
            reference = " ".join(paragraph)
            if reference:
                records.append({"id": f"debian-{m.group(1)}", "question": m.group(2).strip(), "reference": reference,
                                "tags": [page.name.split(".")[0]]})
    return records


@pytest.fixture(scope="module")
def faq_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FAQ.is_dir():
        pytest.skip("debian-faq is not installed (apt-get install debian-faq)")
    from ragguard.embedders import SentenceTransformerEmbedder
    from ragguard.index import build_index

    src = tmp_path_factory.mktemp("faq-src")
    for page in FAQ.glob("*.en.html"):
        (src / page.name).write_bytes(page.read_bytes())
    out = tmp_path_factory.mktemp("faq") / "index"
    build_index([src], out, SentenceTransformerEmbedder())
    return out


def test_audit_of_the_debian_faq(faq_index: Path, tmp_path: Path) -> None:
    from ragguard.audit import run_audit
    from ragguard.pipeline import RagGuard

    records = faq_records()
    assert len(records) >= 60, "the FAQ's question headings were not found"
    wanted = os.environ.get("RAGGUARD_DEBIAN_AUDIT_QUESTIONS", "24")
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
