"""Carry bench/trust.py's cached audits to another machine: pack them without the documents' text, unpack them there.

The trust rule (README, "Is the verdict worth trusting?") reads the eleven dev splits' cached audits, which take
7 to 9 hours to generate on two cores, and the cache lives outside the repository: a new machine starts without
it. ``pack`` writes each cached audit as one gzipped JSON-lines file that can be committed: its records as the
audit wrote them, except that every retrieved passage's text is replaced by its SHA-256 (the Debian documents'
text is not ours to commit; the questions, the model's answers and the signals are). ``unpack`` builds each set's
index from its Debian package (installing it when missing, as bench/trust.py does), fills every passage back in
from that index by its chunk id, checks each one against its hash, and writes the audit folder where
bench/trust.py looks for it. ``trust.py --cached-only`` (with or without ``--rescore``) and
``calibration_design.py`` then read the same records they would have read on the machine that generated them,
and ``trust.py`` without ``--cached-only`` resumes an unfinished split there.

A passage that the rebuilt index does not hold, or holds with other text (the Debian package changed), refuses
that split with the count and both package versions; the other splits are still unpacked.

The answers depend on the CPU that generated them (the header of each file names it): figures read from a pack
are that machine's, whatever machine reads them.

    python bench/trust_cache.py pack --cache /work/bench-cache/trust --out bench/cache
    python bench/trust_cache.py unpack --packs bench/cache --cache ~/.cache/ragguard/bench-trust
    python bench/trust_cache.py list --packs bench/cache
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trust  # noqa: E402

FORMAT = "ragguard-trust-pack"
FORMAT_VERSION = 1
SUFFIX = ".jsonl.gz"
SPLITS = ("dev", "test", "all")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_run_name(name: str) -> tuple[str, str, str] | None:
    """``kernel-dev`` -> ("kernel", "dev", ""), ``faq-test-n10`` -> ("faq", "test", "-n10"); None for other folders."""
    for split in SPLITS:
        for sep in (f"-{split}-n", f"-{split}"):
            head, found, tail = name.rpartition(sep)
            if not found or head not in trust.SETS:
                continue
            if sep.endswith("-n") and tail.isdigit():
                return head, split, f"-n{tail}"
            if not sep.endswith("-n") and tail == "":
                return head, split, ""
    return None


def package_version(package: str | None) -> str | None:
    """The installed version of a Debian package (None when it is not installed or there is no dpkg)."""
    if not package:
        return None
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def strip_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record with each retrieved passage's text replaced by its hash (nothing else changes)."""
    if not isinstance(record.get("sources"), list):
        return record
    sources = []
    for source in record["sources"]:
        source = dict(source)
        text = source.pop("text", None)
        if isinstance(text, str):
            source["text_sha256"] = text_hash(text)
        sources.append(source)
    return {**record, "sources": sources}


def pack_run(run_dir: Path, set_name: str, split: str) -> tuple[bytes, dict[str, Any]]:
    """One cached audit as a pack file's bytes (a header line, then its records) and the header."""
    lines = (run_dir / "audit" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    records, torn = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            records.append(strip_record(json.loads(line)))
        except json.JSONDecodeError:
            torn += 1  # a half-written last line of an interrupted run: the audit redoes that question
    audit_path = run_dir / "audit" / "audit.json"
    audit = json.loads(audit_path.read_text(encoding="utf-8")) if audit_path.exists() else None
    spec = trust.SETS[set_name]
    cpus = sorted({str(r["fingerprint"].get("cpu")) for r in records if isinstance(r.get("fingerprint"), dict)})
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "set": set_name, "split": split,
        "package": spec["package"], "package_version": package_version(spec["package"]),
        "cpu": trust.cpu_name(), "cpu_numerics": cpus, "records": len(records), "torn_lines_dropped": torn,
        "answered": sum(1 for r in records if r.get("status", "ok") == "ok" and "samples" in r),
        "questions": len(trust.load_set(set_name, split, None)), "audit": audit,
    }
    buffer = io.BytesIO()
    # mtime 0 and no file name: the same records always give the same bytes (a re-pack shows no diff)
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as out:
        for item in (header, *records):
            out.write((json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return buffer.getvalue(), header


def read_pack(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        header = json.loads(lines[0])
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, IndexError) as exc:
        raise ValueError(f"{path} is not a readable trust pack ({exc})") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a {FORMAT} file of version {FORMAT_VERSION}: "
                         f"got {header.get('format')!r} version {header.get('format_version')!r}")
    if header.get("set") not in trust.SETS or header.get("split") not in SPLITS:
        raise ValueError(f"{path} names an unknown set or split ({header.get('set')!r}, {header.get('split')!r})")
    return header, [json.loads(line) for line in lines[1:] if line.strip()]


def index_chunks(index: Path) -> dict[str, str]:
    chunks = {}
    with (index / "chunks.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                chunks[row["chunk_id"]] = row["text"]
    return chunks


def fill_records(records: list[dict[str, Any]], chunks: dict[str, str]) -> tuple[list[dict[str, Any]], int, int]:
    """The records with their passages' text put back from ``chunks``; and how many passages were missing or changed."""
    out, missing, changed = [], 0, 0
    for record in records:
        if not isinstance(record.get("sources"), list):
            out.append(record)
            continue
        sources = []
        for source in record["sources"]:
            source = dict(source)
            want = source.pop("text_sha256", None)
            text = chunks.get(source.get("chunk_id"))
            if text is None:
                missing += 1
            elif want is not None and text_hash(text) != want:
                changed += 1
            else:
                source["text"] = text
            sources.append(source)
        out.append({**record, "sources": sources})
    return out, missing, changed


def unpack_one(path: Path, cache: Path, force: bool) -> str:
    """Unpack one file into ``cache``; returns a line saying what was done (raises ValueError to refuse it)."""
    header, records = read_pack(path)
    name, split = header["set"], header["split"]
    run_dir = cache / path.name.removesuffix(SUFFIX)
    results = run_dir / "audit" / "results.jsonl"
    if results.exists() and results.stat().st_size and not force:
        raise ValueError(f"{results} already holds records: remove {run_dir} (or pass --force to replace it)")
    spec = trust.SETS[name]
    trust.ensure_docs(spec)
    index = trust.ensure_index(name, spec, cache)
    if index is None:  # the bundled example index (the Chinese questions)
        index = trust.ROOT / "indexes" / "handbook"
    filled, missing, changed = fill_records(records, index_chunks(index))
    if missing or changed:
        here = package_version(spec["package"])
        raise ValueError(
            f"{path.name}: {missing} passage(s) missing from and {changed} changed in the index built here from "
            f"{spec['package'] or 'the example documents'} {here or '(version unknown)'} (packed from "
            f"{header.get('package_version') or 'an unknown version'}): install that version of the package, or "
            "regenerate this split with bench/trust.py")
    (run_dir / "audit").mkdir(parents=True, exist_ok=True)
    rows = trust.load_set(name, split, None)
    questions = trust.write_questions(rows, run_dir)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in filled)
    results.write_text(text, encoding="utf-8")
    audit = header.get("audit")
    if audit:
        # A resume checks the input's hash, the settings and the index's manifest hash; the manifest names the
        # index's folder relative to the documents, so a rebuild elsewhere has another hash although every
        # passage above matched its recorded text.
        from ragguard.pipeline import index_id

        audit = {**audit, "input": str(questions), "index": str(index), "index_id": index_id(str(index)),
                 "unpacked_from": {"file": path.name, "index_id": audit.get("index_id"), "cpu": header.get("cpu")}}
        (run_dir / "audit" / "audit.json").write_text(json.dumps(audit, indent=2) + "\n", encoding="utf-8")
    return (f"{path.name}: {header['answered']} answered of {header['questions']} questions -> {run_dir} "
            f"(generated on {header.get('cpu')})")


def cmd_pack(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    runs = sorted(p for p in args.cache.iterdir() if (p / "audit" / "results.jsonl").is_file()) if args.cache.is_dir() else []
    if not runs:
        raise SystemExit(f"{args.cache} holds no cached audits (folders like kernel-dev/audit/results.jsonl)")
    for run_dir in runs:
        parsed = parse_run_name(run_dir.name)
        if parsed is None:
            trust.log(f"skipped {run_dir.name}: not a set-split folder of bench/trust.py")
            continue
        set_name, split, _ = parsed
        data, header = pack_run(run_dir, set_name, split)
        target = args.out / (run_dir.name + SUFFIX)
        target.write_bytes(data)
        print(f"{target}: {header['answered']} answered of {header['questions']} questions, {len(data) / 1024:.0f} KiB"
              + (f", {header['torn_lines_dropped']} torn line(s) dropped" if header["torn_lines_dropped"] else ""))
    return 0


def pack_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*" + SUFFIX)) if folder.is_dir() else []
    if not files:
        raise SystemExit(f"{folder} holds no trust packs (*{SUFFIX}): make them with `pack`")
    return files


def cmd_unpack(args: argparse.Namespace) -> int:
    failed = 0
    for path in pack_files(args.packs):
        if args.only and path.name.removesuffix(SUFFIX) not in args.only:
            continue
        try:
            print(unpack_one(path, args.cache, args.force))
        except ValueError as exc:
            failed += 1
            print(f"refused {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    for path in pack_files(args.packs):
        header, _ = read_pack(path)
        print(f"{path.name}: {header['answered']}/{header['questions']} answered, {header['package']} "
              f"{header.get('package_version')}, {header.get('cpu')} ({', '.join(header.get('cpu_numerics') or [])})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write each cached audit of --cache as OUT/<set>-<split>.jsonl.gz")
    p.add_argument("--cache", type=Path, required=True, help="bench/trust.py's --cache folder")
    p.add_argument("--out", type=Path, default=trust.PACKS)
    p.set_defaults(run=cmd_pack)
    u = sub.add_parser("unpack", help="rebuild the indexes and write the packed audits into --cache")
    u.add_argument("--packs", type=Path, default=trust.PACKS)
    u.add_argument("--cache", type=Path, required=True, help="bench/trust.py's --cache folder to fill")
    u.add_argument("--only", action="append", default=[], metavar="SET-SPLIT", help="unpack only these (repeatable)")
    u.add_argument("--force", action="store_true", help="replace an audit folder that already holds records")
    u.set_defaults(run=cmd_unpack)
    s = sub.add_parser("list", help="what each pack holds")
    s.add_argument("--packs", type=Path, default=trust.PACKS)
    s.set_defaults(run=cmd_list)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
