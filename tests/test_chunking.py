"""Reading documents and cutting them into chunks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragguard.errors import UsageError
from ragguard.retrieval.chunking import ChunkingSettings, chunk_document, estimate_tokens
from ragguard.retrieval.documents import Document, sha256_bytes
from ragguard.retrieval.loaders import iter_documents


def doc(text: str, doc_id: str = "handbook/a.md") -> Document:
    return Document(doc_id=doc_id, text=text, sha256=sha256_bytes(text.encode()))


SECTIONS = """# Handbook

## Annual leave

Every employee gets 25 days of annual leave per year.

## Sick leave

Report sickness to your manager before 10:00 on the first day.

## Payroll

Salaries are paid on the last working day of the month.
"""


def test_headings_stay_with_their_paragraph() -> None:
    chunks = chunk_document(doc(SECTIONS), ChunkingSettings(unit="chars", size=90, overlap=0))
    assert len(chunks) >= 3
    pairs = {
        "## Annual leave": "Every employee gets 25 days",
        "## Sick leave": "Report sickness to your manager",
        "## Payroll": "Salaries are paid on the last working day",
    }
    for heading, paragraph in pairs.items():
        holders = [c.text for c in chunks if heading in c.text]
        assert len(holders) == 1, heading
        assert paragraph in holders[0]
        # The heading comes right before its paragraph, not at the end of a chunk.
        assert holders[0].index(heading) < holders[0].index(paragraph)
    for c in chunks:
        assert not c.text.splitlines()[-1].startswith("#"), f"chunk ends with a heading: {c.text!r}"


def test_short_document_is_one_chunk() -> None:
    chunks = chunk_document(doc(SECTIONS), ChunkingSettings())
    assert len(chunks) == 1
    for line in ("# Handbook", "## Payroll", "Every employee gets 25 days of annual leave per year."):
        assert line in chunks[0].text


ENGLISH = "# Leave policy\n\n" + " ".join(
    f"Rule {i} says that leave request number {i} must be approved by a manager." for i in range(40)
)


@pytest.mark.parametrize(("chunk_chars", "overlap"), [(200, 0), (200, 90), (300, 150), (120, 60)])
def test_long_text_is_split_at_sentence_boundaries_below_chunk_chars(chunk_chars: int, overlap: int) -> None:
    chunks = chunk_document(doc(ENGLISH), ChunkingSettings(unit="chars", size=chunk_chars, overlap=overlap))
    assert len(chunks) > 3
    sentences = re.findall(r"Rule \d+ says that leave request number \d+ must be approved by a manager\.", ENGLISH)
    assert len(sentences) == 40
    for c in chunks:
        assert len(c.text) <= chunk_chars, f"{len(c.text)} > {chunk_chars}: {c.text!r}"
        assert c.text.endswith("manager."), f"chunk does not end at a sentence: {c.text[-30:]!r}"
        body = c.text.split("\n", 1)[1] if c.text.startswith(("# Leave policy\n", "Leave policy\n")) else c.text
        # Every chunk body is made of whole sentences only (no sentence cut in two).
        leftover = re.sub(r"Rule \d+ says that leave request number \d+ must be approved by a manager\.", "", body)
        assert leftover.strip() == "", f"partial sentence in chunk: {leftover!r}"
    # Nothing is lost: every sentence appears in some chunk.
    joined = "\n".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)


CHINESE = "# 年假规定\n\n" + "".join(f"员工第{i}年可以享受带薪年假十五天并且需要提前两周申请。" for i in range(30))


@pytest.mark.parametrize(("chunk_chars", "overlap"), [(100, 0), (100, 30), (160, 60)])
def test_chinese_without_spaces_is_split_at_full_stops(chunk_chars: int, overlap: int) -> None:
    assert " " not in CHINESE.split("\n\n", 1)[1]  # the body has no spaces at all
    chunks = chunk_document(doc(CHINESE, "handbook/zh.md"), ChunkingSettings(unit="chars", size=chunk_chars, overlap=overlap))
    assert len(chunks) > 3
    sentence = re.compile(r"员工第\d+年可以享受带薪年假十五天并且需要提前两周申请。")
    for c in chunks:
        assert len(c.text) <= chunk_chars, f"{len(c.text)} > {chunk_chars}: {c.text!r}"
        assert c.text.endswith("。")
        body = c.text.split("\n", 1)[1] if "年假规定\n" in c.text[:8] else c.text
        assert sentence.sub("", body).strip() == "", f"partial sentence in chunk: {c.text!r}"
    joined = "\n".join(c.text for c in chunks)
    assert all(f"员工第{i}年可以" in joined for i in range(30))


def test_chunks_after_the_first_carry_the_document_title() -> None:
    chunks = chunk_document(doc(ENGLISH), ChunkingSettings(unit="chars", size=200, overlap=0))
    assert chunks[0].text.startswith("# Leave policy\n")
    assert all(c.text.startswith("Leave policy\n") for c in chunks[1:])


def test_chunk_ids_are_stable_and_follow_the_text() -> None:
    settings = ChunkingSettings(unit="chars", size=200, overlap=0)
    first = chunk_document(doc(ENGLISH), settings)
    again = chunk_document(doc(ENGLISH), settings)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    assert all(c.chunk_id.startswith(f"handbook/a.md#{i}-") for i, c in enumerate(first))
    edited = chunk_document(doc(ENGLISH.replace("Rule 0 says", "Rule zero says")), settings)
    assert edited[0].chunk_id != first[0].chunk_id
    assert edited[-1].chunk_id == first[-1].chunk_id  # untouched chunks keep their ids
    moved = chunk_document(doc(ENGLISH, "handbook/b.md"), settings)
    assert moved[0].chunk_id != first[0].chunk_id


def test_iter_documents_reports_unusable_files_with_a_reason(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "good.md").write_text("# Good\n\nA readable document.", encoding="utf-8")
    (src / "sub" / "notes.txt").write_text("Nested notes.", encoding="utf-8")
    (src / "binary.md").write_bytes(b"# Title\n\x00\x01\x02\x03")
    (src / "empty.md").write_text("  \n\n", encoding="utf-8")
    (src / "latin1.txt").write_bytes("Café crème".encode("latin-1"))
    (src / "report.pdf").write_bytes(b"%PDF-1.4")
    (src / "Makefile").write_text("all:\n", encoding="utf-8")
    (src / "bom.md").write_bytes("\ufeff# BOM\n\nText.".encode())

    found = {path: (document, reason) for document, path, reason in iter_documents([src])}
    assert set(found) == {
        "docs/good.md", "docs/sub/notes.txt", "docs/binary.md", "docs/empty.md",
        "docs/latin1.txt", "docs/report.pdf", "docs/Makefile", "docs/bom.md",
    }
    reasons = {path: reason for path, (document, reason) in found.items() if document is None}
    assert reasons == {
        "docs/binary.md": "binary file",
        "docs/empty.md": "empty file",
        "docs/report.pdf": "cannot read PDF (PdfStreamError)",
        "docs/Makefile": "unsupported file type (none)",
    }
    good, reason = found["docs/good.md"]
    assert reason is None and good is not None
    assert good.doc_id == "docs/good.md"
    assert good.sha256 == sha256_bytes((src / "good.md").read_bytes())
    assert found["docs/sub/notes.txt"][0].text == "Nested notes."
    assert found["docs/bom.md"][0].text.startswith("# BOM")  # the BOM is not part of the text
    assert found["docs/latin1.txt"][0].text == "Café crème"  # the encoding is detected


def test_iter_documents_accepts_a_single_file(tmp_path: Path) -> None:
    path = tmp_path / "one.md"
    path.write_text("# One\n\nText.", encoding="utf-8")
    [(document, doc_id, reason)] = list(iter_documents([path]))
    assert doc_id == "one.md" and reason is None and document.text.startswith("# One")


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(UsageError, match="does not exist") as info:
        list(iter_documents([missing]))
    assert str(missing) in str(info.value)


def test_overlap_repeats_whole_sentences_from_the_previous_chunk() -> None:
    text = "# Policy\n\n" + "\n\n".join(f"Paragraph {i} opens here. It ends with fact {i}." for i in range(12))
    chunks = chunk_document(doc(text), ChunkingSettings(unit="chars", size=160, overlap=40))
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert len(after.text) <= 160
        title, first_line = after.text.split("\n")[:2]
        assert title == "Policy"
        # The carried overlap is a whole sentence that ended the previous chunk.
        assert first_line.startswith("It ends with fact ") and before.text.endswith(first_line)


# ------------------------------------------------------------------ chunking in tokens
def char_bigram_tokens(texts):  # type: ignore[no-untyped-def]
    """A stand-in tokenizer: every two characters of a word (or CJK run) are one token."""
    return [sum((len(w) + 1) // 2 for w in re.findall(r"\w+|[^\w\s]", t)) for t in texts]


@pytest.mark.parametrize("size", [30, 60, 120])
def test_token_chunks_fit_the_counter_the_embedder_gives(size: int) -> None:
    settings = ChunkingSettings(unit="tokens", size=size, overlap=size // 4)
    chunks = chunk_document(doc(ENGLISH), settings, char_bigram_tokens)
    assert len(chunks) > 3
    for c in chunks:
        assert char_bigram_tokens([c.text])[0] <= size, c.text
    joined = "\n".join(c.text for c in chunks)
    assert all(f"Rule {i} says" in joined for i in range(40))


def test_token_chunking_without_a_tokenizer_uses_the_estimate() -> None:
    from ragguard.retrieval.chunking import estimate_tokens

    assert estimate_tokens(["Hello, world!", "员工每年", ""]) == [4, 4, 0]
    chunks = chunk_document(doc(CHINESE, "handbook/zh.md"), ChunkingSettings(unit="tokens", size=60, overlap=20))
    assert len(chunks) > 3
    for c in chunks:
        assert estimate_tokens([c.text])[0] <= 60
        assert c.text.endswith("。")
        assert " " not in c.text.split("\n", 1)[1]  # Chinese sentences are joined without spaces, overlap included
    assert all(f"员工第{i}年可以" in "".join(c.text for c in chunks) for i in range(30))


def test_overlap_in_tokens_repeats_whole_sentences() -> None:
    chunks = chunk_document(doc(ENGLISH), ChunkingSettings(unit="tokens", size=60, overlap=20))
    sentence = re.compile(r"Rule \d+ says that leave request number \d+ must be approved by a manager\.")
    for before, after in zip(chunks, chunks[1:], strict=False):
        body = after.text.split("\n", 1)[1]
        first = sentence.match(body)
        assert first is not None and before.text.endswith(first.group(0))


def test_a_sentence_longer_than_a_chunk_is_cut_within_the_limit() -> None:
    long_zh = "# 说明\n\n" + "这是一段没有任何句号的很长的中文文本" * 20  # no sentence end at all
    long_en = "# Words\n\n" + " ".join(f"word{i}" for i in range(300))
    for text in (long_zh, long_en):
        chunks = chunk_document(doc(text), ChunkingSettings(unit="tokens", size=40, overlap=0))
        assert len(chunks) > 3
        assert all(len(re.findall(r"[\u4e00-\u9fff]|\w+|[^\w\s]", c.text)) <= 40 for c in chunks)
        body = "".join(c.text.split("\n", 1)[-1].replace(" ", "") for c in chunks)
        assert body.replace("#说明", "").replace("#Words", "") == text.split("\n\n", 1)[1].replace(" ", "")


def test_a_megabyte_line_is_cut_in_linear_time_into_the_longest_pieces_that_fit() -> None:
    words = [f"w{i % 97}" for i in range(60_000)]  # ~230,000 characters and no sentence end
    text = "# Log\n\n" + " ".join(words)
    counted = 0

    def counter(texts):
        nonlocal counted
        counted += sum(len(t) for t in texts)
        return estimate_tokens(texts)

    chunks = chunk_document(doc(text), ChunkingSettings(unit="tokens", size=50, overlap=0), counter=counter)
    # each cut counts a window about as long as the piece (the whole rest of the line once made this quadratic)
    assert counted < 40 * len(text)
    pieces = [c.text.split("\n", 1)[-1].split() for c in chunks]
    assert [w for p in pieces for w in p if w not in ("#", "Log")] == words
    body = [b for p in pieces if (b := [w for w in p if w not in ("#", "Log")])]
    assert all(len(p) <= 50 for p in body) and all(len(p) == 50 for p in body[:-1])  # the longest that fit


def test_settings_round_trip_and_read_format_1() -> None:
    s = ChunkingSettings(unit="tokens", size=128, overlap=16, tokenizer="m")
    assert ChunkingSettings.from_dict(s.to_dict()) == s
    assert ChunkingSettings.from_dict({"chunk_chars": 1200, "overlap_chars": 150}) == ChunkingSettings(
        unit="chars", size=1200, overlap=150)
    with pytest.raises(ValueError, match="unit"):
        ChunkingSettings(unit="words")
    with pytest.raises(ValueError, match="overlap"):
        ChunkingSettings(size=50, overlap=50)
