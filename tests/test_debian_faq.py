"""Real data nobody here wrote: the Debian FAQ (Debian package `debian-faq`).

Slow: builds an index of the FAQ's HTML with the embedded embedder and checks
that, for the FAQ's own questions, the section that answers each one is in
the top 3 results. Skipped where the package is not installed
(`apt-get install debian-faq`; `make test-slow` installs it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragguard.retrieval.html_text import html_to_text

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FAQ = Path("/usr/share/doc/debian/FAQ")


def faq_sections() -> list[tuple[str, str, str, list[str]]]:
    """(page, section number, question, the text lines after it) for every 'N.M. Question?' heading."""
    out = []
    for page in sorted(FAQ.glob("*.en.html")):
        lines = html_to_text(page.read_text(encoding="utf-8")).splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^##+ (\d+\.\d+)\. (.+)$", line)
            if m and m.group(2).rstrip().endswith("?"):
                out.append((page.name, m.group(1), m.group(2).strip(), lines[i + 1 :]))
    return out


def faq_questions() -> list[tuple[str, str]]:
    """(question, section number) for every 'N.M. Question?' heading."""
    return [(question, section) for _, section, question, _ in faq_sections()]


@pytest.fixture(scope="module")
def faq_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FAQ.is_dir():
        pytest.skip("debian-faq is not installed (apt-get install debian-faq)")
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.retrieval.index import build_index

    src = tmp_path_factory.mktemp("faq-src")
    for page in FAQ.glob("*.en.html"):  # the English pages only (the others are symlinks to them)
        (src / page.name).write_bytes(page.read_bytes())
    out = tmp_path_factory.mktemp("faq") / "index"
    summary = build_index([src], out, SentenceTransformerEmbedder())
    assert summary.documents >= 15 and summary.chunks >= 100
    return out


def test_debian_faq_sections_are_found_in_the_top_3(faq_index: Path) -> None:
    from ragguard.generation.embedders import SentenceTransformerEmbedder
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex
    from ragguard.retrieval.search import RetrievalOptions

    index = KnowledgeIndex.load(faq_index)
    embedder = SentenceTransformerEmbedder()
    questions = faq_questions()
    assert len(questions) >= 60
    rates = {}
    for mode in ("dense", "hybrid"):
        retriever = IndexRetriever(index, embedder, RetrievalOptions(mode=mode))
        hits = 0
        for question, section in questions:
            results = retriever.search(question, 3)
            if any(re.search(rf"(^|\n)##+ {re.escape(section)}\. ", r.text) for r in results):
                hits += 1
        rates[mode] = hits / len(questions)
        print(f"Debian FAQ ({mode}): {hits}/{len(questions)} questions have their section in the top 3 "
              f"({rates[mode]:.1%})")
    assert rates["dense"] >= 0.8
    assert rates["hybrid"] >= 0.8
