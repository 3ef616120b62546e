"""Incremental updates (index add / remove), the writer lock and interrupted builds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ragguard.errors import IndexLoadError, UsageError
from ragguard.locking import WriterLock, lock_path
from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex, build_index, remove_from_index, update_index

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["payroll bank card certificate", "annual leave days", "年假", "VPN token", "expenses claims"]


def read(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


def assert_same_index(a: Path, b: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """Same chunks, vectors, manifest and search results."""
    assert (a / "chunks.jsonl").read_bytes() == (b / "chunks.jsonl").read_bytes()
    ia, ib = KnowledgeIndex.load(a), KnowledgeIndex.load(b)
    np.testing.assert_array_equal(ia.vectors(), ib.vectors())
    ma, mb = read(a), read(b)
    for key in ("sources", "counts", "skipped", "chunking", "index_type", "index_params", "embedder"):
        assert ma[key] == mb[key], key
    for q in QUERIES:
        ra = [(p.chunk_id, round(p.score, 6)) for p in IndexRetriever(ia, embedder).search(q, 3)]
        rb = [(p.chunk_id, round(p.score, 6)) for p in IndexRetriever(ib, embedder).search(q, 3)]
        assert ra == rb, q


def edit_docs(docs: Path) -> None:
    """One file changed, one deleted, one added (a FAQ table), one made unreadable."""
    (docs / "leave-annual.md").write_text("# Annual leave\n\nEvery employee gets 27 days of annual leave.\n",
                                          encoding="utf-8")
    (docs / "it-vpn.md").unlink()
    (docs / "faq.csv").write_text("question,answer\nWho signs expense claims?,Your line manager.\n", encoding="utf-8")
    (docs / "zh-leave-annual.md").write_bytes(b"\x00binary now")


def test_add_embeds_only_new_and_changed_sources_and_equals_a_rebuild(
    tmp_path: Path, tiny_docs: Path, make_embedder
) -> None:
    index = tmp_path / "index"
    build_index([tiny_docs], index, make_embedder())
    before = {c["source"]: c for c in KnowledgeIndex.load(index).chunks}
    edit_docs(tiny_docs)
    counting = make_embedder()
    summary = update_index(index, [tiny_docs], counting)
    assert summary.added == ["docs/faq.csv"]
    assert summary.changed == ["docs/leave-annual.md"]
    assert summary.removed == ["docs/it-vpn.md", "docs/zh-leave-annual.md"]
    embedded = [t for call in counting.calls for t in call]
    assert sorted(embedded) == sorted(["# Annual leave\nEvery employee gets 27 days of annual leave.",
                                       "# Who signs expense claims?\nYour line manager."])
    assert summary.embedded == 2 and summary.reused == 1
    after = {c["source"]: c for c in KnowledgeIndex.load(index).chunks}
    assert after["docs/payroll-bank-card.md"] == before["docs/payroll-bank-card.md"]  # untouched, same id
    assert read(index)["skipped"] == [{"path": "docs/zh-leave-annual.md", "reason": "binary file"}]
    build_index([tiny_docs], tmp_path / "rebuilt", make_embedder())
    assert_same_index(index, tmp_path / "rebuilt", make_embedder())
    assert read(index)["files"] == read(tmp_path / "rebuilt")["files"]  # byte-identical files (flat)


def test_add_puts_each_new_vector_on_its_own_chunk_when_an_added_source_sorts_after_a_changed_one(
    tmp_path: Path, tiny_docs: Path, make_embedder
) -> None:
    index = tmp_path / "index"
    build_index([tiny_docs], index, make_embedder())
    (tiny_docs / "leave-annual.md").write_text("# Annual leave\n\nEvery employee gets 27 days of annual leave.\n",
                                               encoding="utf-8")
    (tiny_docs / "zz-remote.md").write_text("Employees may work from home two days per week.\n", encoding="utf-8")
    summary = update_index(index, [tiny_docs], make_embedder())
    assert (summary.added, summary.changed) == (["docs/zz-remote.md"], ["docs/leave-annual.md"])
    build_index([tiny_docs], tmp_path / "rebuilt", make_embedder())
    assert_same_index(index, tmp_path / "rebuilt", make_embedder())
    top = IndexRetriever(KnowledgeIndex.load(index), make_embedder()).search("work from home two days per week", 1)
    assert top[0].doc_id == "docs/zz-remote.md"


def test_add_with_nothing_changed_writes_nothing(tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder) -> None:
    stamp = (tiny_index / "manifest.json").stat().st_mtime_ns
    counting = make_embedder()
    summary = update_index(tiny_index, [tiny_docs], counting)
    assert not summary.written and summary.embedded == 0 and counting.calls == []
    assert (tiny_index / "manifest.json").stat().st_mtime_ns == stamp


def test_add_of_another_folder_keeps_the_first(tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "travel.md").write_text("# Travel\n\nBook flights through the travel desk.", encoding="utf-8")
    update_index(tiny_index, [other], make_embedder())
    build_index([tiny_docs, other], tmp_path / "both", make_embedder())
    assert_same_index(tiny_index, tmp_path / "both", make_embedder())
    assert sorted(read(tiny_index)["sources"])[-1] == "other/travel.md"


def test_a_single_file_source_is_its_own_scope(tmp_path: Path, tiny_docs: Path, tiny_index: Path,
                                               make_embedder) -> None:
    single = tmp_path / "elsewhere" / "it-vpn.md"  # not inside the indexed folder (that is refused: see below)
    single.parent.mkdir()
    single.write_text((tiny_docs / "it-vpn.md").read_text(encoding="utf-8"), encoding="utf-8")
    update_index(tiny_index, [single], make_embedder())
    assert "it-vpn.md" in read(tiny_index)["sources"]
    single.write_text("# VPN\n\nUse the new VPN client.", encoding="utf-8")
    summary = update_index(tiny_index, [single], make_embedder())
    assert summary.changed == ["it-vpn.md"] and summary.removed == [] and summary.embedded == 1


def test_remove_drops_matching_sources_and_equals_a_rebuild(tmp_path: Path, tiny_docs: Path, tiny_index: Path,
                                                            make_embedder) -> None:
    summary = remove_from_index(tiny_index, "docs/*leave*")
    assert summary.removed == ["docs/leave-annual.md", "docs/zh-leave-annual.md"]
    for name in ("leave-annual.md", "zh-leave-annual.md"):
        (tiny_docs / name).unlink()
    build_index([tiny_docs], tmp_path / "rebuilt", make_embedder())
    assert_same_index(tiny_index, tmp_path / "rebuilt", make_embedder())
    with pytest.raises(UsageError, match="no source of index .* matches 'nothing/\\*'"):
        remove_from_index(tiny_index, "nothing/*")
    with pytest.raises(UsageError, match="matches every source"):
        remove_from_index(tiny_index, "docs")  # a folder prefix


def test_add_refuses_another_embedder(tiny_index: Path, tiny_docs: Path) -> None:
    class Other:
        name = "other-embedder"

        def embed(self, texts):  # type: ignore[no-untyped-def]
            return np.ones((len(texts), 16), dtype=np.float32)

    with pytest.raises(IndexLoadError, match="other-embedder"):
        update_index(tiny_index, [tiny_docs], Other())


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_update_like_a_rebuild(tmp_path: Path, tiny_docs: Path, make_embedder, kind: str) -> None:
    for i in range(60):  # enough chunks for IVF lists
        (tiny_docs / f"note-{i:02d}.md").write_text(f"# Note {i}\n\nNote {i} is about topic {i % 7}.", encoding="utf-8")
    index = tmp_path / "index"
    build_index([tiny_docs], index, make_embedder(), index_type=kind)
    edit_docs(tiny_docs)
    (tiny_docs / "note-03.md").unlink()
    update_index(index, [tiny_docs], make_embedder())
    assert read(index)["index_type"] == kind
    build_index([tiny_docs], tmp_path / "rebuilt", make_embedder(), index_type=kind)
    assert_same_index(index, tmp_path / "rebuilt", make_embedder())


# ------------------------------------------------------------------ the writer lock
def test_a_second_writer_is_refused(tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder) -> None:
    with WriterLock(tiny_index):
        for write in (lambda: build_index([tiny_docs], tiny_index, make_embedder()),
                      lambda: update_index(tiny_index, [tiny_docs], make_embedder()),
                      lambda: remove_from_index(tiny_index, "docs/it-*")):
            with pytest.raises(UsageError, match=f"is being written by another process \\(pid {os.getpid()} on "):
                write()
    KnowledgeIndex.load(tiny_index)  # readers never need the lock
    remove_from_index(tiny_index, "docs/it-*")  # free again
    assert not lock_path(tiny_index).exists()


def test_a_stale_lock_file_does_not_block(tmp_path: Path, tiny_docs: Path, make_embedder) -> None:
    out = tmp_path / "index"
    lock_path(out).write_text('{"pid": 999999, "host": "gone", "since": "yesterday"}', encoding="utf-8")
    build_index([tiny_docs], out, make_embedder())
    assert not lock_path(out).exists()


KILLED_BUILD = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
from ragguard.retrieval.index import build_index

class Slow(FakeEmbedder):
    def embed(self, texts):
        open({marker!r}, "w").close()
        time.sleep(60)
        return super().embed(texts)

build_index([{src!r}], {out!r}, Slow())
"""


def test_a_build_killed_partway_leaves_the_previous_index_intact(
    tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder
) -> None:
    before = (tiny_index / "chunks.jsonl").read_bytes()
    (tiny_docs / "new.md").write_text("# New\n\nA new document.", encoding="utf-8")
    marker = tmp_path / "embedding-started"
    script = KILLED_BUILD.format(tests=str(ROOT / "tests"), marker=str(marker), src=str(tiny_docs), out=str(tiny_index))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the build never started embedding"
        assert lock_path(tiny_index).exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (tiny_index / "chunks.jsonl").read_bytes() == before
    assert len(KnowledgeIndex.load(tiny_index).chunks) == 4
    # The dead writer's lock is stale: the next build takes it and succeeds.
    assert build_index([tiny_docs], tiny_index, make_embedder()).sources == 5
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name or p.suffix == ".lock"]


def test_an_index_of_format_1_still_loads_and_updates(tmp_path: Path, tiny_docs: Path, tiny_index: Path,
                                                     make_embedder) -> None:
    """Indexes written before format 2: chunking in characters, chunk records without metadata."""
    import hashlib

    lines = (tiny_index / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    old_lines = [json.dumps({k: json.loads(line)[k] for k in ("doc_id", "chunk_id", "text")}) for line in lines]
    (tiny_index / "chunks.jsonl").write_text("\n".join(old_lines) + "\n", encoding="utf-8")
    manifest = read(tiny_index)
    manifest.update(format_version=1, chunking={"chunk_chars": 1200, "overlap_chars": 150})
    manifest["counts"] = {"documents": 4, "chunks": 4}
    for key in ("index_type_requested", "index_params"):
        del manifest[key]
    manifest["files"]["chunks.jsonl"] = hashlib.sha256((tiny_index / "chunks.jsonl").read_bytes()).hexdigest()
    (tiny_index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    index = KnowledgeIndex.load(tiny_index)
    assert index.chunks[0]["source"] == index.chunks[0]["doc_id"] and index.chunks[0]["tags"] == []
    assert index.info()["sources"] == 4
    (tiny_docs / "it-vpn.md").write_text("# VPN\n\nUse the new VPN client.", encoding="utf-8")
    summary = update_index(tiny_index, [tiny_docs], make_embedder())
    assert summary.changed == ["docs/it-vpn.md"] and summary.embedded == 1
    assert read(tiny_index)["chunking"] == {"unit": "chars", "size": 1200, "overlap": 150, "tokenizer": None}
    assert read(tiny_index)["format_version"] == 2


def test_two_sources_with_one_name_are_refused_and_dot_is_named_by_its_folder(
    tmp_path: Path, make_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for side, text in (("x", "The gym opens at 6am."), ("y", "The library closes at 9pm.")):
        (tmp_path / side / "docs").mkdir(parents=True)
        (tmp_path / side / "docs" / "info.txt").write_text(text + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"would both give document ids 'docs/'"):
        build_index([tmp_path / "x" / "docs", tmp_path / "y" / "docs"], tmp_path / "idx", make_embedder())
    assert not (tmp_path / "idx").exists()
    # The same folder named twice, or by two spellings, is one source.
    build_index([tmp_path / "x" / "docs", tmp_path / "x" / ".." / "x" / "docs"], tmp_path / "idx", make_embedder())
    monkeypatch.chdir(tmp_path / "x" / "docs")
    build_index(["."], tmp_path / "dot", make_embedder())
    assert [c["doc_id"] for c in KnowledgeIndex.load(tmp_path / "dot").chunks] == ["docs/info.txt"]
    monkeypatch.chdir(tmp_path / "x")
    assert not update_index(tmp_path / "dot", ["docs"], make_embedder()).written  # the same folder: up to date


def test_a_writer_stopped_between_its_two_renames_loses_nothing(
    tmp_path: Path, tiny_docs: Path, make_embedder, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    index = tmp_path / "index"
    build_index([tiny_docs], index, make_embedder())
    chunks = (index / "chunks.jsonl").read_bytes()
    # What _replace_dir leaves when killed after its first rename: the old index moved aside, the new one whole.
    shutil.copytree(index, tmp_path / ".index.tmp-abc")
    os.replace(index, tmp_path / ".index.old-123")
    with pytest.raises(IndexLoadError, match=r"is missing, but a write that was stopped left a whole copy .*"
                                             r"`ragguard index add .* SOURCE...` puts it back first"):
        KnowledgeIndex.load(index)
    with caplog.at_level("WARNING", logger="ragguard"):
        summary = update_index(index, [tiny_docs], make_embedder())
    assert "the index it was writing is back in place" in caplog.text
    assert not summary.written and (index / "chunks.jsonl").read_bytes() == chunks
    assert not any(p.name.startswith((".index.tmp-", ".index.old-")) for p in tmp_path.iterdir())
    # Only the previous index left (killed before the new one was complete): it comes back.
    os.replace(index, tmp_path / ".index.old-456")
    (tmp_path / ".index.tmp-def").mkdir()  # unfinished: no manifest
    remove_from_index(index, "docs/it-*")
    assert KnowledgeIndex.load(index).manifest["counts"]["sources"] >= 1
    assert not any(p.name.startswith((".index.tmp-", ".index.old-")) for p in tmp_path.iterdir())


def test_another_folder_with_an_indexed_sources_name_is_refused_not_swapped_in(
        tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder) -> None:
    other = tmp_path / "team-b" / "docs"  # also named docs: its ids would be docs/... too
    other.mkdir(parents=True)
    (other / "b-handbook.md").write_text("# Team B\n\nStandup is at 10:00.", encoding="utf-8")
    before = read(tiny_index)
    assert before["roots"] == {"docs/": "../docs"}  # relative to the index folder: no machine's path
    with pytest.raises(UsageError, match=r"has source 'docs/' read from .*docs'; .*team-b/docs' is another folder"):
        update_index(tiny_index, [other], make_embedder())
    assert read(tiny_index) == before  # nothing removed


def test_a_single_file_with_an_indexed_files_name_from_another_folder_is_refused(
        tmp_path: Path, tiny_index: Path, make_embedder) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"# Readme\n\nFolder {folder} readme.", encoding="utf-8")
    update_index(tiny_index, [tmp_path / "x" / "README.md"], make_embedder())
    with pytest.raises(UsageError, match=r"has source 'README.md' read from .*x/README.md'.* another file"):
        update_index(tiny_index, [tmp_path / "y" / "README.md"], make_embedder())


def test_a_moved_source_folder_is_read_from_its_new_place(tmp_path: Path, tiny_docs: Path, tiny_index: Path,
                                                          make_embedder) -> None:
    moved = tmp_path / "new-home" / "docs"
    moved.parent.mkdir()
    tiny_docs.rename(moved)
    notes: list[str] = []
    summary = update_index(tiny_index, [moved], make_embedder(), progress=notes.append)
    assert summary.added == summary.changed == summary.removed == [] and summary.written
    assert any("which is gone: it is read from" in n for n in notes)
    assert read(tiny_index)["roots"] == {"docs/": "../new-home/docs"}


def test_a_folder_or_file_inside_an_indexed_folder_is_refused_not_indexed_twice(
        tmp_path: Path, tiny_docs: Path, tiny_index: Path, make_embedder) -> None:
    (tiny_docs / "sub").mkdir()
    (tiny_docs / "sub" / "extra.md").write_text("# Extra\n\nAn extra page.", encoding="utf-8")
    update_index(tiny_index, [tiny_docs], make_embedder())
    before = read(tiny_index)
    for inside in (tiny_docs / "sub", tiny_docs / "it-vpn.md"):
        with pytest.raises(UsageError, match=r"is inside source 'docs/' .* run `ragguard index add .*docs`"):
            update_index(tiny_index, [inside], make_embedder())
    with pytest.raises(UsageError, match=r"holds source 'docs/' .* remove it first"):
        update_index(tiny_index, [tmp_path], make_embedder())  # a folder holding the indexed one
    assert read(tiny_index) == before


def test_files_the_include_glob_leaves_out_are_kept_not_removed(tiny_docs: Path, tiny_index: Path,
                                                                make_embedder) -> None:
    before = read(tiny_index)["sources"]
    (tiny_docs / "it-vpn.md").write_text("# VPN\n\nUse the new VPN client.", encoding="utf-8")
    summary = update_index(tiny_index, [tiny_docs], make_embedder(), include=["it-*"])
    assert summary.changed == ["docs/it-vpn.md"] and summary.removed == []
    assert set(read(tiny_index)["sources"]) == set(before)
    (tiny_docs / "it-vpn.md").unlink()  # a file the glob does read, gone: removed
    assert update_index(tiny_index, [tiny_docs], make_embedder(), include=["it-*"]).removed == ["docs/it-vpn.md"]


def test_files_of_a_folder_that_cannot_be_read_now_are_kept_not_removed(tiny_docs: Path, tiny_index: Path,
                                                                         make_embedder, monkeypatch) -> None:
    (tiny_docs / "team").mkdir()
    (tiny_docs / "team" / "oncall.md").write_text("# Oncall\n\nThe rotation is weekly.", encoding="utf-8")
    update_index(tiny_index, [tiny_docs], make_embedder())
    assert "docs/team/oncall.md" in read(tiny_index)["sources"]
    scandir = os.scandir

    def locked(path):  # type: ignore[no-untyped-def]
        if isinstance(path, (str, os.PathLike)) and Path(path).name == "team":  # chmod 000 does not stop root, so the refusal is simulated
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", locked)
    summary = update_index(tiny_index, [tiny_docs], make_embedder())
    assert summary.removed == [] and "docs/team/oncall.md" in read(tiny_index)["sources"]
    assert [s["path"] for s in summary.skipped] == ["docs/team/"]
