"""The index commands: build with globs and types, add, remove, info and search options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ragguard.generation.embedders
from ragguard.apps.cli import app
from ragguard.locking import WriterLock


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def fake_st(monkeypatch: pytest.MonkeyPatch, make_embedder):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: make_embedder())


def one_error_line(result, code: int) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ragguard: error: "), result.stderr
    return lines[0]


def test_build_with_globs_and_type_then_add_and_remove(runner: CliRunner, tiny_docs: Path, tmp_path: Path) -> None:
    (tiny_docs / "draft.md").write_text("# Draft\n\nNot ready.", encoding="utf-8")
    out = tmp_path / "index"
    result = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(out), "--exclude", "draft*",
                                 "--index-type", "hnsw", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sources"] == 4 and summary["excluded"] == 1 and summary["index_type"] == "hnsw"
    assert summary["embedded"] == 4 and summary["embed_rate"] > 0
    assert "read 4 documents from 4 files (0 skipped, 1 excluded)" in result.stderr

    (tiny_docs / "it-vpn.md").write_text("# VPN\n\nThe VPN now needs the new client.", encoding="utf-8")
    result = runner.invoke(app, ["index", "add", str(out), str(tiny_docs), "--exclude", "draft*", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["changed"] == ["docs/it-vpn.md"] and summary["embedded"] == 1 and summary["reused"] == 3
    assert "0 new, 1 changed, 0 removed sources; embedding 1 chunk" in result.stderr

    result = runner.invoke(app, ["index", "add", str(out), str(tiny_docs), "--exclude", "draft*"])
    assert result.exit_code == 0 and "is up to date" in result.stdout

    result = runner.invoke(app, ["index", "remove", str(out), "docs/zh-*"])
    assert result.exit_code == 0, result.output
    assert "removed: docs/zh-leave-annual.md" in result.stdout

    info = json.loads(runner.invoke(app, ["index", "info", str(out), "--json"]).stdout)
    assert info["sources"] == 3 and info["index_type"] == "hnsw" and info["recall_at_10"] == 1.0
    human = runner.invoke(app, ["index", "info", str(out)]).stdout
    assert "recall@10: 1.000 against exact search (3 stored vectors)" in human
    assert "bytes/vector" in human


def test_remove_without_a_match_exits_2(runner: CliRunner, tiny_index: Path) -> None:
    line = one_error_line(runner.invoke(app, ["index", "remove", str(tiny_index), "nope/*"]), 2)
    assert "matches 'nope/*'" in line


def test_add_to_a_missing_index_exits_3(runner: CliRunner, tiny_docs: Path, tmp_path: Path) -> None:
    line = one_error_line(runner.invoke(app, ["index", "add", str(tmp_path / "none"), str(tiny_docs)]), 3)
    assert "does not exist" in line


def test_a_second_writer_exits_2(runner: CliRunner, tiny_docs: Path, tiny_index: Path) -> None:
    with WriterLock(tiny_index):
        line = one_error_line(runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(tiny_index)]), 2)
    assert "is being written by another process" in line


def test_unknown_index_type_exits_2(runner: CliRunner, tiny_docs: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(tmp_path / "o"), "--index-type", "lsh"])
    assert "index type 'lsh' is unknown" in one_error_line(result, 2)


def test_json_outputs_are_one_line_for_any_reader(runner: CliRunner, tiny_docs: Path, tmp_path: Path) -> None:
    """A chunk holding U+2028 (pasted from a web page) keeps `index search --json` and `index info --json` one
    line under str.splitlines, as ask --json and the JSONL files are."""
    (tiny_docs / "pasted.md").write_text("# Pasted\n\nParking\u2028is on level 2\u2029of the garage.\n",
                                         encoding="utf-8")
    built = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(tmp_path / "idx"), "--json"])
    assert built.exit_code == 0, built.output
    outputs = []
    for args in (["search", str(tmp_path / "idx"), "parking garage level", "--json", "-k", "5"],
                 ["info", str(tmp_path / "idx"), "--json"]):
        result = runner.invoke(app, ["index", *args])
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 1
        outputs.append(result.stdout)
    assert any("\u2028" in r["text"] for r in json.loads(outputs[0])["results"])


def test_search_options(runner: CliRunner, tiny_index: Path) -> None:
    def ids(*extra: str) -> list[str]:
        result = runner.invoke(app, ["index", "search", str(tiny_index), "annual leave 年假", "--json", *extra])
        assert result.exit_code == 0, result.output
        return [r["doc_id"] for r in json.loads(result.stdout)["results"]]

    assert ids("--lang", "zh") == ["docs/zh-leave-annual.md"]
    assert ids("--lang", "zh-CN") == ids("--lang", "ZH_tw") == ["docs/zh-leave-annual.md"]  # by the primary language
    assert ids("--source", "docs/it-*") == ["docs/it-vpn.md"]
    assert ids("--mode", "hybrid", "-k", "2")[0] in ("docs/leave-annual.md", "docs/zh-leave-annual.md")
    assert len(ids("--mmr", "0.5", "-k", "3")) == 3
    assert ids("--tag", "none") == []
    bad = runner.invoke(app, ["index", "search", str(tiny_index), "x", "--mode", "sparse"])
    assert "option 'mode' has bad value 'sparse'" in one_error_line(bad, 2)


def test_build_shows_an_embedding_bar_with_rate_and_eta(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for n in range(300):  # more chunks than one embed call takes
        (src / f"doc{n:03d}.md").write_text(f"# Doc {n}\n\nText number {n} about leave.", encoding="utf-8")
    result = runner.invoke(app, ["index", "build", str(src), "--out", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    bars = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(bars) == 2  # one line per embed call (not a terminal: plain lines)
    assert bars[0].startswith("[#################---] 256/300  85% | ") and " chunks/s | ETA " in bars[0]
    assert bars[1].startswith("[####################] 300/300 100% | ") and bars[1].endswith("ETA 0s")
    assert "embedding 300 chunks with fake-embedder" in result.stderr  # other messages stay plain lines


def test_an_interrupted_write_says_the_index_is_as_it_was(runner: CliRunner, tiny_docs: Path, tiny_index: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.retrieval.index as index_module

    before = {p.name: p.read_bytes() for p in tiny_index.iterdir()}

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "update_index", interrupted)
    result = runner.invoke(app, ["index", "add", str(tiny_index), str(tiny_docs)])
    assert result.exit_code == 130
    assert f"interrupted; {str(tiny_index)!r} is as it was before this run" in result.stderr
    assert {p.name: p.read_bytes() for p in tiny_index.iterdir()} == before


def test_a_search_that_matches_nothing_says_so_and_names_the_filters(runner: CliRunner, tiny_index: Path) -> None:
    result = runner.invoke(app, ["index", "search", str(tiny_index), "leave", "--lang", "zz", "--tag", "nosuch"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no chunk matches --lang zz, --tag nosuch: check the filters" in result.stderr


def test_build_and_add_warn_when_the_embedder_cannot_read_the_documents(
        runner: CliRunner, tiny_docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_embedder) -> None:  # type: ignore[no-untyped-def]
    class Blind(make_embedder):  # type: ignore[misc, valid-type]
        def unknown_share(self, texts: list[str]) -> float:
            return 0.6

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: Blind())
    out = tmp_path / "idx"
    built = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(out)])
    assert built.exit_code == 0, built.stderr
    assert "warning: embedder fake-embedder reads 60% of these documents' tokens as unknown" in built.stderr
    (tiny_docs / "new.md").write_text("Parking is free for visitors.\n", encoding="utf-8")
    added = runner.invoke(app, ["index", "add", str(out), str(tiny_docs), "--json"])
    assert added.exit_code == 0, added.stderr
    assert "chinese-bge-small" in json.loads(added.stdout)["warnings"][0]


def test_summaries_say_1_chunk_not_1_chunks(runner: CliRunner, tmp_path: Path) -> None:
    doc = tmp_path / "vpn.md"
    doc.write_text("# VPN\n\nUse the client.", encoding="utf-8")
    (tmp_path / "bad.md").write_bytes(b"\x00\x01binary")
    out = tmp_path / "index"
    result = runner.invoke(app, ["index", "build", str(doc), str(tmp_path / "bad.md"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ": 1 chunk from 1 document in 1 file (" in result.stdout and "; 1 file skipped, 0 excluded" in result.stdout
    result = runner.invoke(app, ["index", "add", str(out), str(doc)])
    assert "is up to date: 1 chunk from 1 document" in result.stdout
    info = runner.invoke(app, ["index", "info", str(out)]).stdout
    assert "contents:  1 chunk from 1 document in 1 file, " in info and "skipped:   1 file at build time" in info


def test_a_file_name_with_a_newline_or_an_escape_stays_on_one_line(runner: CliRunner, tiny_docs: Path,
                                                                    tmp_path: Path) -> None:
    (tiny_docs / "new\nline.md").write_text("# Lockers\n\nLockers are assigned by facilities.", encoding="utf-8")
    (tiny_docs / "red\x1b[31m.md").write_text("", encoding="utf-8")  # empty: listed as skipped
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", "build", str(tiny_docs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped docs/red\\x1b[31m.md: empty file" in result.stderr and "\x1b" not in result.stderr
    (tiny_docs / "new\nline.md").write_text("# Lockers\n\nLockers are assigned by HR.", encoding="utf-8")
    result = runner.invoke(app, ["index", "add", str(out), str(tiny_docs)])
    assert "  changed: docs/new\\nline.md" in result.stdout.splitlines()
    result = runner.invoke(app, ["index", "search", str(out), "who assigns lockers", "-k", "1"])
    assert result.stdout.splitlines()[0].split()[1].startswith("docs/new\\nline.md#")
