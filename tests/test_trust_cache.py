"""bench/trust_cache.py: cached trust audits packed without the documents' text come back exactly, or are refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_trust_bench import bench_module

PASSAGES = {"kernel-handbook.html/ch-scope.html#0-aaaa": "The kernel handbook covers Debian 10 (buster) onward.",
            "kernel-handbook.html/ch-bugs.html#1-bbbb": "Report bugs with reportbug against the linux package."}


@pytest.fixture(scope="module")
def cache_tool():  # type: ignore[no-untyped-def]
    return bench_module("trust_cache")


def _record(rid: str, chunk_ids: list[str]) -> dict:
    return {"id": rid, "status": "ok", "question": f"question {rid}?", "answer": "Debian 10 (buster).",
            "samples": [{"text": "Debian 10 (buster).", "seed": None, "greedy": True, "logprob_mean": -0.5}],
            "sources": [{"doc_id": c.split("#")[0], "chunk_id": c, "text": PASSAGES[c], "score": 0.7} for c in chunk_ids],
            "fingerprint": {"cpu": "AVX2"}, "reference_match": "match"}


def _cache(tmp: Path) -> tuple[Path, list[dict]]:
    records = [_record("kh-001", list(PASSAGES)), _record("kh-002", [next(iter(PASSAGES))]),
               {"id": "kh-003", "status": "error", "error": "model failed"}]
    audit = tmp / "cache" / "kernel-dev" / "audit"
    audit.mkdir(parents=True)
    lines = [json.dumps(r) for r in records] + ['{"id": "kh-004", "stat']  # a torn last line
    (audit / "results.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (audit / "audit.json").write_text(json.dumps({"input": "/elsewhere/questions.jsonl", "index_id": "sha256:old",
                                                  "setup_hash": "s"}), encoding="utf-8")
    return tmp / "cache", records


def _index(tmp: Path, passages: dict[str, str]) -> Path:
    index = tmp / "index-kernel"
    index.mkdir(parents=True, exist_ok=True)
    (index / "chunks.jsonl").write_text("".join(json.dumps({"chunk_id": c, "text": t}) + "\n"
                                                for c, t in passages.items()), encoding="utf-8")
    (index / "manifest.json").write_text('{"format": "ragguard-index"}', encoding="utf-8")
    return index


def _packs(cache_tool, cache: Path, tmp: Path) -> Path:  # type: ignore[no-untyped-def]
    """A folder holding the pack of ``cache``'s kernel dev audit."""
    packs = tmp / "packs"
    packs.mkdir()
    (packs / "kernel-dev.jsonl.gz").write_bytes(cache_tool.pack_run(cache / "kernel-dev", "kernel", "dev")[0])
    return packs


@pytest.mark.parametrize(("name", "parsed"), [("kernel-dev", ("kernel", "dev", "")),
                                              ("faq-test-n10", ("faq", "test", "-n10")),
                                              ("handbook2-all", ("handbook2", "all", "")),
                                              ("index-kernel", None), ("nosuchset-dev", None)])
def test_run_folders_are_read_by_set_and_split(cache_tool, name, parsed) -> None:  # type: ignore[no-untyped-def]
    assert cache_tool.parse_run_name(name) == parsed


def test_a_pack_holds_no_passage_text_and_the_same_records_give_the_same_bytes(cache_tool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache, records = _cache(tmp_path)
    data, header = cache_tool.pack_run(cache / "kernel-dev", "kernel", "dev")
    assert data == cache_tool.pack_run(cache / "kernel-dev", "kernel", "dev")[0]
    text = gzip.decompress(data).decode("utf-8")
    assert not any(p in text for p in PASSAGES.values())
    assert header["records"] == 3 and header["answered"] == 2 and header["torn_lines_dropped"] == 1
    assert header["questions"] == len(cache_tool.trust.load_set("kernel", "dev", None))
    assert header["cpu_numerics"] == ["AVX2"] and header["audit"]["index_id"] == "sha256:old"
    path = tmp_path / "kernel-dev.jsonl.gz"
    path.write_bytes(data)
    _, packed = cache_tool.read_pack(path)
    assert [r["id"] for r in packed] == ["kh-001", "kh-002", "kh-003"]
    assert all("text" not in s and len(s["text_sha256"]) == 64 for s in packed[0]["sources"])


def test_unpack_puts_every_passage_back_and_a_resume_matches_the_rebuilt_index(cache_tool, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache, records = _cache(tmp_path)
    packs = _packs(cache_tool, cache, tmp_path)
    target = tmp_path / "elsewhere"
    index = _index(target, PASSAGES)
    monkeypatch.setattr(cache_tool.trust, "ensure_docs", lambda spec: None)
    monkeypatch.setattr(cache_tool.trust, "ensure_index", lambda name, spec, cache: index)

    assert cache_tool.main(["unpack", "--packs", str(packs), "--cache", str(target)]) == 0
    run = target / "kernel-dev"
    back = [json.loads(line) for line in (run / "audit" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert back == records  # the torn line stays dropped: the audit asks that question again
    audit = json.loads((run / "audit" / "audit.json").read_text(encoding="utf-8"))
    from ragguard.pipeline import index_id

    assert audit["input"] == str(run / "questions.jsonl") and audit["index_id"] == index_id(str(index))
    assert audit["unpacked_from"]["index_id"] == "sha256:old" and audit["setup_hash"] == "s"
    assert len((run / "questions.jsonl").read_text(encoding="utf-8").splitlines()) == \
        len(cache_tool.trust.load_set("kernel", "dev", None))
    # A second unpack does not overwrite what is there.
    assert cache_tool.main(["unpack", "--packs", str(packs), "--cache", str(target)]) == 1


@pytest.mark.parametrize("change", ["missing", "changed"])
def test_unpack_refuses_a_split_whose_passages_the_index_here_lacks(cache_tool, tmp_path, monkeypatch, capsys, change) -> None:  # type: ignore[no-untyped-def]
    cache, _ = _cache(tmp_path)
    packs = _packs(cache_tool, cache, tmp_path)
    passages = dict(PASSAGES)
    first = next(iter(passages))
    if change == "missing":
        del passages[first]
    else:
        passages[first] += " (updated)"
    target = tmp_path / "elsewhere"
    index = _index(target, passages)
    monkeypatch.setattr(cache_tool.trust, "ensure_docs", lambda spec: None)
    monkeypatch.setattr(cache_tool.trust, "ensure_index", lambda name, spec, cache: index)

    assert cache_tool.main(["unpack", "--packs", str(packs), "--cache", str(target)]) == 1
    err = capsys.readouterr().err
    count = {"missing": "2 passage(s) missing from and 0 changed", "changed": "0 passage(s) missing from and 2 changed"}
    assert count[change] in err and "debian-kernel-handbook" in err and "regenerate this split" in err
    assert not (target / "kernel-dev" / "audit" / "results.jsonl").exists()


@pytest.mark.parametrize("content", [b"not gzip", gzip.compress(b'{"format": "something-else"}\n'),
                                     gzip.compress(b'{"format": "ragguard-trust-pack", "format_version": 1, '
                                                   b'"set": "nosuchset", "split": "dev"}\n')])
def test_a_file_that_is_not_a_trust_pack_is_refused_with_a_reason(cache_tool, tmp_path, content) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kernel-dev.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="kernel-dev.jsonl.gz"):
        cache_tool.read_pack(path)


def test_trust_reads_a_committed_pack_when_its_cache_lacks_the_split(cache_tool, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import argparse

    trust = cache_tool.trust
    cache, records = _cache(tmp_path)
    packs = _packs(cache_tool, cache, tmp_path)
    target = tmp_path / "elsewhere"
    index = _index(target, PASSAGES)
    monkeypatch.setattr(trust, "PACKS", packs)
    monkeypatch.setattr(trust, "ensure_docs", lambda spec: None)
    monkeypatch.setattr(trust, "ensure_index", lambda name, spec, cache: index)
    ns = argparse.Namespace(cache=target, audit_dir=None, set_name="kernel", split="dev", limit=None, samples=None,
                            config=None, cached_only=True, rescore=False)
    got, rows = trust.load_records("kernel", "dev", ns)
    assert sorted(got) == ["kh-001", "kh-002"] and got["kh-001"] == records[0]  # the error record is not scored
    assert len(rows) == len(trust.load_set("kernel", "dev", None))
