"""Building, verifying, loading and searching a FAISS index (with the FakeEmbedder)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ragguard.errors import IndexLoadError, UsageError
from ragguard.retrieval.index import FORMAT, FORMAT_VERSION, IndexRetriever, KnowledgeIndex, build_index

PAYROLL_QUERY = "Do employees without the payroll bank card need an employment certificate?"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(index: Path, manifest: dict) -> None:
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def leftovers(parent: Path) -> list[str]:
    """Temporary or old folders a build may leave next to its output."""
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


class OtherEmbedder:
    name = "other-embedder"

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return np.ones((len(texts), 16), dtype=np.float32)


# ------------------------------------------------------------------ build, load, search
def test_build_load_search_finds_the_payroll_chunk_first(tiny_index: Path, fake_embedder) -> None:
    index = KnowledgeIndex.load(tiny_index)
    results = IndexRetriever(index, fake_embedder).search(PAYROLL_QUERY, 3)
    assert len(results) == 3
    assert results[0].doc_id == "docs/payroll-bank-card.md"
    assert "employment certificate" in results[0].text
    assert results[0].score > results[1].score >= results[2].score
    assert results[0].chunk_id.startswith("docs/payroll-bank-card.md#0-")


def test_search_finds_the_chinese_document_for_a_chinese_query(tiny_index: Path, fake_embedder) -> None:
    results = IndexRetriever(KnowledgeIndex.load(tiny_index), fake_embedder).search("年假有几天？", 1)
    assert [r.doc_id for r in results] == ["docs/zh-leave-annual.md"]


def test_search_k_bounds(tiny_index: Path, fake_embedder) -> None:
    index = KnowledgeIndex.load(tiny_index)
    vector = fake_embedder.embed([PAYROLL_QUERY])[0]
    assert index.search_vector(vector, 0) == []
    assert len(index.search_vector(vector, 50)) == len(index.chunks) == 4
    # Scores are cosine similarities (unit vectors, inner product) whatever the query length.
    top = index.search_vector(vector * 7.0, 1)[0]
    expected = float(vector @ fake_embedder.embed([top.text])[0]) / float(np.linalg.norm(vector))
    assert top.score == pytest.approx(expected, abs=1e-5)


def test_manifest_fields(tiny_index: Path, tiny_docs: Path) -> None:
    manifest = read_manifest(tiny_index)
    assert manifest["format"] == FORMAT == "ragguard-index"
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert manifest["embedder"] == {"name": "fake-embedder", "dimension": 16, "normalized": True}
    assert manifest["metric"] == "inner_product"
    # FakeEmbedder has no tokenizer: chunks are measured in estimated tokens.
    assert manifest["chunking"] == {"unit": "tokens", "size": 250, "overlap": 40, "tokenizer": "estimate"}
    assert manifest["index_type"] == "flat" and manifest["index_type_requested"] == "auto"
    assert manifest["counts"] == {"sources": 4, "documents": 4, "chunks": 4}
    assert manifest["sources"] == {
        f"docs/{p.name}": sha256_file(p) for p in sorted(tiny_docs.iterdir())
    }
    assert list(manifest["sources"]) == sorted(manifest["sources"])
    assert manifest["files"] == {
        "index.faiss": sha256_file(tiny_index / "index.faiss"),
        "chunks.jsonl": sha256_file(tiny_index / "chunks.jsonl"),
    }
    assert manifest["skipped"] == []
    lines = (tiny_index / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [sorted(r) for r in records] == [["chunk_id", "doc_id", "lang", "source", "tags", "text"]] * 4
    assert [r["lang"] for r in records] == ["en", "en", "en", "zh"]
    assert all(r["source"] == r["doc_id"] and r["tags"] == [] for r in records)
    assert sorted(p.name for p in tiny_index.iterdir()) == ["chunks.jsonl", "index.faiss", "manifest.json"]


def test_info_summarises_the_index(tiny_index: Path) -> None:
    info = KnowledgeIndex.load(tiny_index).info()
    assert info["documents"] == 4 and info["chunks"] == 4
    assert info["embedder"]["name"] == "fake-embedder"
    assert info["bytes"] == sum((tiny_index / n).stat().st_size for n in ("index.faiss", "chunks.jsonl"))


def test_build_reports_skipped_files(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    (tiny_docs / "scan.pdf").write_bytes(b"%PDF")
    (tiny_docs / "photo.png").write_bytes(b"\x89PNG\r\n")
    (tiny_docs / "blank.md").write_text("\n", encoding="utf-8")
    summary = build_index([tiny_docs], tmp_path / "out", fake_embedder)
    assert summary.documents == 4 and summary.chunks == 4 and summary.dimension == 16
    expected = [{"path": "docs/blank.md", "reason": "empty file"},
                {"path": "docs/photo.png", "reason": "unsupported file type .png"},
                {"path": "docs/scan.pdf", "reason": "cannot read PDF (PdfStreamError)"}]
    assert summary.skipped == expected
    assert read_manifest(tmp_path / "out")["skipped"] == expected


def test_chunks_file_holds_one_chunk_per_line_for_any_reader(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    """A document holding U+2028 (common in text pasted from web pages) keeps one chunk per line of
    chunks.jsonl under ``str.splitlines``, and the chunk text reads back unchanged."""
    (tiny_docs / "pasted.md").write_text("# Pasted\n\nLine one\u2028line two\u2029line three.\n", encoding="utf-8")
    summary = build_index([tiny_docs], tmp_path / "out", fake_embedder)
    lines = (tmp_path / "out" / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == summary.chunks
    assert any("line two\u2029line three" in json.loads(line)["text"] for line in lines)
    assert any("\u2028" in p.text for p in KnowledgeIndex.load(tmp_path / "out").search_vector(
        fake_embedder.embed(["Pasted line one"])[0], 10))


# ------------------------------------------------------------------ refusals
def test_missing_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-index"
    with pytest.raises(IndexLoadError, match="does not exist") as info:
        KnowledgeIndex.load(missing)
    assert str(missing) in str(info.value)


def test_a_file_passed_as_the_index_is_called_a_file(tmp_path: Path) -> None:
    file = tmp_path / "chunks.jsonl"
    file.write_text("{}\n", encoding="utf-8")
    with pytest.raises(IndexLoadError, match="is a file, not an index folder") as info:
        KnowledgeIndex.load(file)
    assert "does not exist" not in str(info.value)


def test_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "index.faiss").write_bytes(b"x")
    with pytest.raises(IndexLoadError, match="no manifest.json"):
        KnowledgeIndex.load(tmp_path / "plain")


def test_truncated_faiss_file_is_refused_by_its_checksum(tiny_index: Path) -> None:
    data = (tiny_index / "index.faiss").read_bytes()
    (tiny_index / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match="index.faiss does not match its checksum") as refused:
        KnowledgeIndex.load(tiny_index)
    # what to do, in the same line: the build command for this folder, and where its sources are listed
    assert f"`ragguard index build SOURCE --out {tiny_index}`" in str(refused.value)
    assert "manifest.json lists them under 'sources'" in str(refused.value)


def test_truncated_faiss_file_with_a_matching_checksum_is_refused(tiny_index: Path) -> None:
    path = tiny_index / "index.faiss"
    path.write_bytes(path.read_bytes()[:40])
    manifest = read_manifest(tiny_index)
    manifest["files"]["index.faiss"] = sha256_file(path)
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match="index.faiss cannot be read"):
        KnowledgeIndex.load(tiny_index)


def test_altered_chunks_are_refused_by_their_checksum(tiny_index: Path) -> None:
    path = tiny_index / "chunks.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("25 days", "45 days"), encoding="utf-8")
    with pytest.raises(IndexLoadError, match="chunks.jsonl does not match its checksum"):
        KnowledgeIndex.load(tiny_index)


def test_missing_chunks_file_is_refused(tiny_index: Path) -> None:
    (tiny_index / "chunks.jsonl").unlink()
    with pytest.raises(IndexLoadError, match="missing chunks.jsonl"):
        KnowledgeIndex.load(tiny_index)


def test_newer_format_version_is_refused(tiny_index: Path) -> None:
    manifest = read_manifest(tiny_index)
    manifest["format_version"] = 99
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match="format version 99, newer than"):
        KnowledgeIndex.load(tiny_index)


def test_manifest_of_another_format_is_refused(tiny_index: Path) -> None:
    manifest = read_manifest(tiny_index)
    manifest["format"] = "langchain-faiss"
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match="not a ragguard index"):
        KnowledgeIndex.load(tiny_index)


def test_manifest_that_is_not_json_is_refused(tiny_index: Path) -> None:
    (tiny_index / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexLoadError, match="not valid JSON"):
        KnowledgeIndex.load(tiny_index)


def test_count_mismatch_is_refused(tiny_index: Path) -> None:
    manifest = read_manifest(tiny_index)
    manifest["counts"]["chunks"] = 5
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match="inconsistent"):
        KnowledgeIndex.load(tiny_index)


def test_index_of_another_embedder_is_refused(tiny_index: Path, fake_embedder) -> None:
    index = KnowledgeIndex.load(tiny_index)
    index.check_embedder(fake_embedder, 16)  # the builder's embedder is accepted
    with pytest.raises(IndexLoadError) as info:
        index.check_embedder(OtherEmbedder())
    assert "'fake-embedder'" in str(info.value) and "'other-embedder'" in str(info.value)
    with pytest.raises(IndexLoadError, match="dimension 16 but the embedder gives 384"):
        index.check_embedder(fake_embedder, 384)
    with pytest.raises(IndexLoadError, match="other-embedder"):
        IndexRetriever(index, OtherEmbedder()).search(PAYROLL_QUERY, 2)


# ------------------------------------------------------------------ building
def test_no_readable_documents_is_a_usage_error(tmp_path: Path, fake_embedder) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.pdf").write_bytes(b"%PDF")
    (src / "b.md").write_text("   ", encoding="utf-8")
    with pytest.raises(UsageError, match=r"no readable documents found in \S+ \(src/a.pdf: [^;]+; src/b.md: empty file\)"):
        build_index([src], tmp_path / "out", fake_embedder)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_rebuild_replaces_the_folder_atomically(tmp_path: Path, tiny_docs: Path, tiny_index: Path, fake_embedder) -> None:
    (tiny_index / "stale.txt").write_text("from the old build", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "only.md").write_text("# Only\n\nOne document about expenses.", encoding="utf-8")
    summary = build_index([other], tiny_index, fake_embedder)
    assert summary.documents == 1
    assert sorted(p.name for p in tiny_index.iterdir()) == ["chunks.jsonl", "index.faiss", "manifest.json"]
    assert list(read_manifest(tiny_index)["sources"]) == ["other/only.md"]
    assert len(KnowledgeIndex.load(tiny_index).chunks) == 1
    assert leftovers(tmp_path) == []


def test_building_into_a_non_index_folder_is_refused(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.md").write_text("do not delete", encoding="utf-8")
    with pytest.raises(UsageError, match="is not a ragguard index"):
        build_index([tiny_docs], target, fake_embedder)
    assert [p.name for p in target.iterdir()] == ["thesis.md"]
    assert (target / "thesis.md").read_text(encoding="utf-8") == "do not delete"
    assert leftovers(tmp_path) == []


def test_building_into_an_empty_folder_is_allowed(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    build_index([tiny_docs], target, fake_embedder)
    assert (target / "manifest.json").is_file()
    assert leftovers(tmp_path) == []


def test_rebuilding_the_same_sources_is_byte_identical(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build_index([tiny_docs], a, fake_embedder)
    build_index([tiny_docs], b, fake_embedder)
    assert (a / "chunks.jsonl").read_bytes() == (b / "chunks.jsonl").read_bytes()
    assert (a / "index.faiss").read_bytes() == (b / "index.faiss").read_bytes()
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma["sources"] == mb["sources"] and ma["files"] == mb["files"]
    # And again in place.
    before = (a / "chunks.jsonl").read_bytes()
    build_index([tiny_docs], a, fake_embedder)
    assert (a / "chunks.jsonl").read_bytes() == before
    assert read_manifest(a)["sources"] == ma["sources"]


def test_manifest_sources_are_sorted_whatever_the_source_order(tmp_path: Path, tiny_docs: Path, fake_embedder) -> None:
    files = [tiny_docs / "zh-leave-annual.md", tiny_docs / "leave-annual.md"]
    build_index(files, tmp_path / "a", fake_embedder)
    build_index(files[::-1], tmp_path / "b", fake_embedder)
    expected = {"leave-annual.md": sha256_file(files[1]), "zh-leave-annual.md": sha256_file(files[0])}
    for out in ("a", "b"):
        sources = read_manifest(tmp_path / out)["sources"]
        assert sources == expected and list(sources) == ["leave-annual.md", "zh-leave-annual.md"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["embedder"].update(dimension="384"), "field embedder.dimension is '384', not a whole number"),
    (lambda m: m["counts"].update(chunks=None), "field counts.chunks is None, not a whole number"),
    (lambda m: m.update(index_type="hnsw", index_params={"efSearch": "lots"}),
     "field index_params.ef_search is None, not a whole number"),
    (lambda m: m.update(index_params=[1]), "field index_params is \\[1\\], not dict"),
])
def test_a_hand_edited_manifest_names_the_field(tiny_index: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    manifest = read_manifest(tiny_index)
    edit(manifest)
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match=message + r" \(edited by hand\?\); rebuild the index"):
        KnowledgeIndex.load(tiny_index)


def test_chunks_that_are_not_utf8_and_a_wrong_count_are_refused_in_one_line(tiny_index: Path) -> None:
    path = tiny_index / "chunks.jsonl"
    original, manifest = path.read_bytes(), read_manifest(tiny_index)
    path.write_bytes(original.replace(b"25 days", b"25 d\xe9ys"))
    manifest["files"]["chunks.jsonl"] = sha256_file(path)  # the checksum updated too
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match=r"chunks.jsonl line \d+ is malformed"):
        KnowledgeIndex.load(tiny_index)
    path.write_bytes(original)
    manifest["files"]["chunks.jsonl"] = sha256_file(path)
    manifest["counts"]["chunks"] += 1
    write_manifest(tiny_index, manifest)
    with pytest.raises(IndexLoadError, match=r"is inconsistent: (\d+) vectors, \1 chunks, manifest.json says \d+"):
        KnowledgeIndex.load(tiny_index)
