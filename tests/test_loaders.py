"""Reading sources: PDF, DOCX, FAQ tables, encodings, globs, front matter and languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragguard.retrieval.index import KnowledgeIndex, build_index
from ragguard.retrieval.loaders import decode_text, detect_language, iter_documents


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF whose pages carry the given lines as a text layer (Helvetica, one line each)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{p} 0 R" for p in page_ids).encode()
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(n_pages).encode() + b" >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        ops = ["BT /F1 12 Tf 72 720 Td 14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1") if lines else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_ids[i] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def read_all(*sources: Path, **kw) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    return {path: (document, reason) for document, path, reason in iter_documents(list(sources), **kw)}


def test_pdf_text_layer_is_read_page_by_page(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "policy.pdf").write_bytes(make_pdf([
        ["Travel policy", "Economy class is booked for flights under six hours."],
        ["Hotels are booked through the travel desk (ext. 4410)."],
    ]))
    (src / "scan.pdf").write_bytes(make_pdf([[]]))  # a page without text: what a scan looks like
    found = read_all(src)
    doc, reason = found["docs/policy.pdf"]
    assert reason is None
    assert "Economy class is booked for flights under six hours." in doc.text
    assert "Hotels are booked through the travel desk (ext. 4410)." in doc.text
    assert doc.text.index("Economy") < doc.text.index("Hotels")
    assert found["docs/scan.pdf"] == (None, "PDF has no text layer (a scan? run OCR first)")


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Claims are filed within 30 days of the expense.")
    document.add_heading("Limits", level=2)
    table = document.add_table(rows=2, cols=2)
    for r, (a, b) in enumerate([("Meal", "40 EUR"), ("Taxi", "60 EUR")]):
        table.rows[r].cells[0].text, table.rows[r].cells[1].text = a, b
    src = tmp_path / "docs"
    src.mkdir()
    document.save(str(src / "expenses.docx"))
    (src / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    found = read_all(src)
    doc, reason = found["docs/expenses.docx"]
    assert reason is None
    assert doc.text == ("# Expenses\n\nClaims are filed within 30 days of the expense.\n\n## Limits\n\n"
                        "Meal | 40 EUR\nTaxi | 60 EUR")
    document_, why = found["docs/broken.docx"]
    assert document_ is None and why.startswith("cannot read DOCX (")


def test_faq_tables_give_one_document_per_row(tmp_path: Path) -> None:
    src = tmp_path / "faq"
    src.mkdir()
    (src / "hr.csv").write_text(
        "Question,Answer,tags\n"
        "How many leave days do I get?,25 days a year.,leave;hr\n"
        "Who approves overtime?,,hr\n"
        '"Can I carry over leave, and how much?","Yes, up to five days.",leave\n',
        encoding="utf-8",
    )
    (src / "it.jsonl").write_text(
        '{"question": "How do I reset my password?", "answer": "Use the self-service portal.", "lang": "en"}\n'
        "not json\n"
        '{"q": "VPN 怎么连接？", "a": "使用 VPN 客户端和硬件令牌。"}\n',
        encoding="utf-8",
    )
    (src / "log.jsonl").write_text('{"event": "login"}\n', encoding="utf-8")
    found = read_all(src)
    docs = {k: d for k, (d, r) in found.items() if d is not None}
    assert sorted(docs) == ["faq/hr.csv:1", "faq/hr.csv:3", "faq/it.jsonl:1", "faq/it.jsonl:3"]
    assert docs["faq/hr.csv:1"].text == "# How many leave days do I get?\n\n25 days a year."
    assert docs["faq/hr.csv:1"].tags == ("hr", "leave") and docs["faq/hr.csv:1"].source == "faq/hr.csv"
    assert docs["faq/hr.csv:3"].text.endswith("Yes, up to five days.")
    assert docs["faq/it.jsonl:3"].lang == "zh" and docs["faq/it.jsonl:1"].lang == "en"
    assert docs["faq/hr.csv:1"].sha256 == docs["faq/hr.csv:3"].sha256  # the file's hash
    reasons = {k: r for k, (d, r) in found.items() if d is None}
    assert reasons == {
        "faq/hr.csv:2": "row has no question or no answer",
        "faq/it.jsonl:2": "row is not a JSON object",
        "faq/log.jsonl": "no question/answer rows (a FAQ table needs question and answer columns)",
    }


def test_a_csv_row_with_more_cells_than_the_header_is_reported_not_cut(tmp_path: Path) -> None:
    src = tmp_path / "faq"
    src.mkdir()
    (src / "cafe.csv").write_text(
        "question,answer,tags\n"
        "What does a coffee cost?,A coffee costs 1,20 EUR in the cafe.,food\n"  # an unquoted decimal comma
        '"Where is the cafe?","On the ground floor,\nnext to reception.",food\n'  # a quoted cell over two lines
        "When does it open?,At 8.,food\n",
        encoding="utf-8",
    )
    found = read_all(src)
    assert found["faq/cafe.csv:1"] == (None, "row (line 2) has 4 cells but the header 3: quote a cell that holds a "
                                             "comma; the row was not read")
    assert found["faq/cafe.csv:2"][0] is not None and found["faq/cafe.csv:3"][0] is not None


def test_faq_rows_are_searchable_and_stored_per_source(tmp_path: Path, fake_embedder) -> None:
    src = tmp_path / "faq"
    src.mkdir()
    (src / "qa.jsonl").write_text(
        '{"question": "Where is the payroll bank?", "answer": "Eastbridge Bank, Riverside branch."}\n'
        '{"question": "When is salary paid?", "answer": "On the last working day of the month."}\n',
        encoding="utf-8",
    )
    build_index([src], tmp_path / "index", fake_embedder)
    index = KnowledgeIndex.load(tmp_path / "index")
    assert [c["doc_id"] for c in index.chunks] == ["faq/qa.jsonl:1", "faq/qa.jsonl:2"]
    assert {c["source"] for c in index.chunks} == {"faq/qa.jsonl"}
    assert list(index.manifest["sources"]) == ["faq/qa.jsonl"]
    assert index.manifest["counts"] == {"sources": 1, "documents": 2, "chunks": 2}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café crème, déjà vu.".encode("latin-1"), "Café crème, déjà vu."),
        ("Un café.".encode("latin-1"), "Un café."),
        ("Zürich – „Grüße“ für 5 €".encode("cp1252"), "Zürich – „Grüße“ für 5 €"),
        ("员工每年享有十五天带薪年假，需要提前两周申请。".encode("gbk"), "员工每年享有十五天带薪年假，需要提前两周申请。"),
        ("Grüße aus Köln".encode("utf-16"), "Grüße aus Köln"),
        ("\ufeffWith a BOM".encode(), "With a BOM"),
        # UTF-16 without a byte-order mark (as some Windows tools save it) was refused as "binary file".
        ("Lockers are assigned by HR.\nAsk at desk 3.".encode("utf-16-le"), "Lockers are assigned by HR.\nAsk at desk 3."),
        ("Grüße aus Köln, 5\u00a0€".encode("utf-16-be"), "Grüße aus Köln, 5\u00a0€"),
        ("每人一年 25 天 (VPN 客户端)".encode("utf-16-le"), "每人一年 25 天 (VPN 客户端)"),  # 一 is 00 4E
    ],
)
def test_encodings_are_detected(data: bytes, expected: str) -> None:
    assert decode_text(data) == (expected, None)


def test_undecodable_and_binary_bytes_are_refused_with_a_reason() -> None:
    import random

    rng = random.Random(0)
    noise = bytes(rng.randrange(128, 256) for _ in range(300))
    assert decode_text(noise) == (None, "undecodable text (no encoding fits; save it as UTF-8)")
    assert decode_text(b"GIF89a\x00\x01\x02") == (None, "binary file")
    assert decode_text(bytes(range(1, 32)) * 10) == (None, "binary file")
    assert decode_text(b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x03\x00>\x00") == (None, "binary file")
    assert decode_text(b"\x00\x01\x00\x02binary") == (None, "binary file")  # NULs at even offsets only, not text


def test_bad_files_are_listed_in_the_build_summary_and_never_fatal(tmp_path: Path, fake_embedder) -> None:
    import random

    src = tmp_path / "docs"
    src.mkdir()
    (src / "good.md").write_text("# Good\n\nReadable.", encoding="utf-8")
    rng = random.Random(0)
    (src / "noise.txt").write_bytes(bytes(rng.randrange(128, 256) for _ in range(300)))
    (src / "blob.md").write_bytes(b"\x00\x01binary")
    (src / "empty.txt").write_bytes(b"")
    (src / "latin.txt").write_bytes("Un café.".encode("latin-1"))
    summary = build_index([src], tmp_path / "index", fake_embedder)
    assert summary.sources == 2  # good.md and the detected latin-1 file
    assert summary.skipped == [
        {"path": "docs/blob.md", "reason": "binary file"},
        {"path": "docs/empty.txt", "reason": "empty file"},
        {"path": "docs/noise.txt", "reason": "undecodable text (no encoding fits; save it as UTF-8)"},
    ]


def test_include_exclude_globs_and_hidden_files(tmp_path: Path, fake_embedder) -> None:
    src = tmp_path / "docs"
    for rel in ("a.md", "sub/b.md", "sub/deep/c.md", "notes.txt", ".git/config.md", "drafts/x.md"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(f"# {rel}\n\nText of {rel}.", encoding="utf-8")
    ids = lambda **kw: sorted(k for k, (d, _) in read_all(src, **kw).items() if d is not None)  # noqa: E731
    assert ids() == ["docs/a.md", "docs/drafts/x.md", "docs/notes.txt", "docs/sub/b.md", "docs/sub/deep/c.md"]
    assert ids(include=["*.md"]) == ["docs/a.md", "docs/drafts/x.md", "docs/sub/b.md", "docs/sub/deep/c.md"]
    assert ids(include=["sub/*"]) == ["docs/sub/b.md", "docs/sub/deep/c.md"]
    assert ids(exclude=["drafts/*", "*.txt"]) == ["docs/a.md", "docs/sub/b.md", "docs/sub/deep/c.md"]
    reasons = {k: r for k, (d, r) in read_all(src, exclude=["drafts/*"]).items() if d is None}
    assert reasons == {"docs/.git/config.md": "excluded: hidden",
                       "docs/drafts/x.md": "excluded: matches --exclude 'drafts/*'"}
    summary = build_index([src], tmp_path / "index", fake_embedder, include=["*.md"], exclude=["drafts/*"])
    assert summary.sources == 3 and summary.excluded == 3 and summary.skipped == []


def test_markdown_front_matter_sets_tags_and_language(tmp_path: Path) -> None:
    path = tmp_path / "policy.md"
    path.write_text("---\ntags: [hr, leave]\nlang: de\n---\n# Urlaub\n\nJeder bekommt 25 Tage.", encoding="utf-8")
    [(doc, _, reason)] = list(iter_documents([path]))
    assert reason is None
    assert doc.text == "# Urlaub\n\nJeder bekommt 25 Tage."
    assert doc.tags == ("hr", "leave") and doc.lang == "de"
    crlf = tmp_path / "windows.md"  # saved on Windows
    crlf.write_bytes(b"---\r\ntags: [hr]\r\nlang: de\r\n---\r\n# Urlaub\r\n\r\nJeder bekommt 25 Tage.")
    [(doc, _, _)] = list(iter_documents([crlf]))
    assert doc.tags == ("hr",) and doc.lang == "de" and not doc.text.startswith("---")


def test_broken_front_matter_is_kept_as_text_and_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken.md"
    broken.write_text("---\ntags: [hr, leave\nlang: de\n---\n# Urlaub\n\nJeder bekommt 25 Tage.", encoding="utf-8")
    prose = tmp_path / "prose.md"  # two rules around prose: not a front matter, no warning
    prose.write_text("---\nRead this first: then: the rest.\n---\n# Notes\n\nText.", encoding="utf-8")
    with caplog.at_level("WARNING", logger="ragguard"):
        docs = {doc.doc_id: doc for doc, _, _ in iter_documents([broken, prose])}
    assert docs["broken.md"].text.startswith("---\ntags: [hr, leave") and docs["broken.md"].tags == ()
    assert docs["prose.md"].text.startswith("---\nRead this first")
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("source 'broken.md': its front matter is not valid YAML (line 3: ")
    assert "its tags and lang are not read" in message


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Annual leave is 25 days.", "en"), ("员工每年享有十五天带薪年假。", "zh"), ("年次有給休暇は二十日です。", "ja"),
     ("연차 휴가는 25일입니다.", "ko"), ("Отпуск 25 дней.", "ru"), ("VPN 客户端需要硬件令牌才能连接。", "zh"), ("", "en")],
)
def test_language_is_guessed_from_the_script(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_a_symlinked_file_is_indexed_once_under_its_first_name(tmp_path: Path, fake_embedder) -> None:
    src = tmp_path / "faq"
    src.mkdir()
    (src / "uptodate.en.html").write_text("<h1>Up to date</h1><p>Keep Debian up to date with apt.</p>", encoding="utf-8")
    (src / "uptodate.html").symlink_to("uptodate.en.html")
    (src / "zz-link.html").symlink_to(src / "uptodate.en.html")  # an absolute link too
    (src / "other.md").write_text("# Other\n\nSomething else.", encoding="utf-8")
    items = read_all(src)
    assert sorted(k for k, (d, _) in items.items() if d is not None) == ["faq/other.md", "faq/uptodate.en.html"]
    assert items["faq/uptodate.html"][1] == "excluded: same file as faq/uptodate.en.html"
    assert items["faq/zz-link.html"][1] == "excluded: same file as faq/uptodate.en.html"
    # The same file passed again as its own source is read once too.
    again = list(iter_documents([src, src / "uptodate.html"]))
    assert sum(d is not None and "Keep Debian" in d.text for d, _, _ in again) == 1
    summary = build_index([src], tmp_path / "index", fake_embedder)
    assert summary.sources == 2 and summary.excluded == 2
    kb = KnowledgeIndex.load(tmp_path / "index")
    assert sorted({c["doc_id"] for c in kb.chunks}) == ["faq/other.md", "faq/uptodate.en.html"]


def test_a_file_name_that_is_not_utf8_is_skipped_with_the_reason_not_fatal(tmp_path: Path) -> None:
    import os

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# VPN\nUse the client.\n", encoding="utf-8")
    (Path(os.fsdecode(bytes(docs) + b"/caf\xe9.md"))).write_text("# Cafe\nOpen at nine.\n", encoding="utf-8")
    items = list(iter_documents([docs]))
    assert [(doc is not None, name, why) for doc, name, why in items] == [
        (False, "docs/caf\ufffd.md", "its name is not UTF-8: rename the file to index it"), (True, "docs/ok.md", None)]


def test_symlinked_folders_are_walked_and_loops_end(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "policies"
    shared.mkdir(parents=True)
    (shared / "travel.md").write_text("# Travel\n\nBook two weeks ahead.", encoding="utf-8")
    src = tmp_path / "docs"
    src.mkdir()
    (src / "own.md").write_text("# Own\n\nBooks are lent for three weeks.", encoding="utf-8")
    (src / "policies").symlink_to(shared)  # a symlinked docs folder: a common layout
    (src / "loop").symlink_to(".")  # leads back to the folder it is in
    items = read_all(src)
    assert sorted(k for k, (d, _) in items.items() if d is not None) == ["docs/own.md", "docs/policies/travel.md"]
    assert items["docs/loop/"] == (None, "excluded: link to docs/, a folder it is inside")


def test_unreadable_folders_broken_links_and_fifos_are_listed_not_dropped(tmp_path: Path, monkeypatch) -> None:
    import os

    src = tmp_path / "docs"
    (src / "locked").mkdir(parents=True)
    (src / "locked" / "pay.txt").write_text("Payroll runs on the 25th.", encoding="utf-8")
    (src / "ok.txt").write_text("Readable.", encoding="utf-8")
    (src / "dangling.md").symlink_to("nowhere.md")
    os.mkfifo(src / "pipe.txt")
    scandir = os.scandir

    def locked(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":  # chmod 000 does not stop root, so the refusal is simulated
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", locked)
    items = read_all(src)
    assert items == {
        "docs/dangling.md": (None, "broken symlink (to 'nowhere.md', which cannot be found)"),
        "docs/locked/": (None, "folder cannot be read (Permission denied); its files were not read"),
        "docs/ok.txt": (items["docs/ok.txt"][0], None),
        "docs/pipe.txt": (None, "not a regular file (a named pipe)"),
    }
    # A FIFO passed as a source by itself is reported too (reading it would wait for a writer forever).
    assert list(iter_documents([src / "pipe.txt"])) == [(None, "pipe.txt", "not a regular file (a named pipe)")]


def test_html_table_rows_are_lines_of_cells() -> None:
    from ragguard.retrieval.html_text import html_to_text

    page = ("<main><h2>Preise</h2><table><tr><th>Gericht</th><th>Preis</th></tr>\n"
            "<tr><td>Schnitzel</td><td>8,50 &euro;</td></tr><tr><td><p>Salat</p></td><td>4,00 &euro;</td></tr>"
            "<tr><td></td><td></td></tr></table><p>Guten Appetit.</p></main>")
    assert html_to_text(page) == "## Preise\n\nGericht | Preis\nSchnitzel | 8,50 €\nSalat | 4,00 €\n\nGuten Appetit."
    # DocBook's admonition: an icon's empty cell, then "Note", then the text in the next row.
    note = '<table><tr><td><img alt="[Note]" src="note.png"></td><th>Note</th></tr><tr><td><p>Read the manual.</p></td></tr></table>'
    assert html_to_text(note) == "Note\nRead the manual."
    # A table used for layout (headings and paragraphs in a cell) keeps its paragraphs, not one long row.
    layout = "<table><tr><td><h1>Bugs</h1><p>Report them upstream.</p><p>Add a test case.</p></td><td>Menu</td></tr></table>"
    assert html_to_text(layout) == "# Bugs\n\nReport them upstream.\n\nAdd a test case.\n\nMenu"


def test_html_pre_keeps_its_lines() -> None:
    from ragguard.retrieval.html_text import html_to_text

    page = ("<h1>API</h1><pre>\ncurl -X POST https://example.org/api \\\n"
            "    -d '{\"id\": 1}'\n</pre><p>Then   check the   reply.</p>")
    assert html_to_text(page) == ("# API\n\ncurl -X POST https://example.org/api \\\n    -d '{\"id\": 1}'\n\n"
                                  "Then check the reply.")


def test_an_empty_html_heading_leaves_no_bare_hashes() -> None:
    from ragguard.retrieval.html_text import html_to_text

    assert html_to_text('<h1>Debian FAQ</h1><h3 class="author"></h3><h2> </h2><p>Text.</p>') == "# Debian FAQ\n\nText."


def test_inline_data_uri_images_and_base64_blobs_are_not_indexed(tmp_path: Path) -> None:
    import base64

    blob = base64.b64encode(bytes(range(256)) * 12).decode()  # 4096 characters, no spaces
    src = tmp_path / "docs"
    src.mkdir()
    (src / "map.md").write_text(
        f"# Office map\n\nThe map is below.\n\n![Floor 2 map](data:image/png;base64,{blob})\n\n"
        f'<img src="data:image/png;base64,{blob}" alt="Fire exits">\n\n[logo]: data:image/png;base64,{blob}\n\n'
        "The map shows the fire exits.\n", encoding="utf-8")
    (src / "notes.txt").write_text(f"Logo: data:image/png;base64,{blob}\nKey: {blob}\nEnd of notes.\n", encoding="utf-8")
    (src / "page.html").write_text(f"<p>Icon <img src='data:image/gif;base64,{blob}' alt='x'> here.</p>"
                                   f"<p>data:image/gif;base64,{blob}</p>", encoding="utf-8")
    items = read_all(src)
    assert items["docs/map.md"][0].text == ("# Office map\n\nThe map is below.\n\nFloor 2 map\n\nFire exits\n\n\n"
                                            "The map shows the fire exits.\n")
    assert items["docs/notes.txt"][0].text == "Logo: \nKey: \nEnd of notes.\n"
    assert items["docs/page.html"][0].text == "Icon here."
