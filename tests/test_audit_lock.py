"""One audit at a time per ``--out``: a second run is refused, a crashed run's lock does not block ``--resume``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fakes import WordEmbedder
from test_audit import TableGenerator, make_guard, read_lines, write_questions

from ragguard.apps.audit import run_audit
from ragguard.config import Config
from ragguard.errors import UsageError
from ragguard.locking import lock_path
from ragguard.pipeline import RagGuard


class GatedGenerator(TableGenerator):
    """A table generator that waits for ``release`` before its first answer (the first run holds the folder)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        self.entered.set()
        assert self.release.wait(30), "test never released the first run"
        return super().generate(messages, seeds)


def test_second_audit_into_the_same_out_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    gated = GatedGenerator()
    first = RagGuard(Config().replace("sampling", samples=3), gated, WordEmbedder(), None, None)
    errors: list[BaseException] = []

    def run_first() -> None:
        try:
            run_audit(q, out, first)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert gated.entered.wait(30)
        with pytest.raises(UsageError, match=r"audit folder .* another process \(pid \d+"):
            run_audit(q, out, make_guard())
        with pytest.raises(UsageError, match="another process"):
            run_audit(q, out, make_guard(), resume=True)
        alias = tmp_path / "alias"
        alias.symlink_to(out, target_is_directory=True)  # the same folder by another name
        with pytest.raises(UsageError, match="another process"):
            run_audit(q, alias, make_guard(), resume=True)
    finally:
        gated.release.set()
        thread.join(30)
    assert not errors
    ids = [r["id"] for r in read_lines(out) if r.get("status") != "invalid"]
    assert sorted(ids) == sorted(set(ids))  # every record once
    assert not lock_path(out).exists()  # released at the end of the run


def test_stale_lock_of_a_crashed_run_does_not_block_resume(tmp_path: Path) -> None:
    q = write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "out"
    run_audit(q, out, make_guard())
    # What a kill -9 leaves: the lock file with a dead pid, no process holding the flock.
    lock_path(out).write_text(json.dumps({"pid": 2**22 + 12345, "host": "gone", "since": "earlier"}), encoding="utf-8")
    result = run_audit(q, out, make_guard(), resume=True)
    assert result.ran == 0 and result.skipped == 3
    assert not lock_path(out).exists()


def test_an_out_that_is_a_file_or_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    import os

    from ragguard.locking import WriterLock

    q = write_questions(tmp_path / "q.jsonl")
    afile = tmp_path / "afile"
    afile.write_text("mine\n", encoding="utf-8")
    with pytest.raises(UsageError, match="audit folder .*afile' is a file, not a folder: choose another --out"):
        run_audit(q, afile, make_guard())
    assert afile.read_text(encoding="utf-8") == "mine\n"
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anyway: a path under a file fails for everyone
            locked = afile
        with pytest.raises(UsageError, match=r"cannot write the index .*: choose a folder you can write to"):
            with WriterLock(locked / "idx", what="index"):
                pass
    finally:
        (tmp_path / "ro").chmod(0o700)
