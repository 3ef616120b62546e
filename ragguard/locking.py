"""A writer lock for a folder: one index build/add/remove, or one audit into an ``--out``, at a time.

The lock is a file next to the index (``.NAME.lock``) held with an
exclusive ``flock``. The kernel drops the lock when its process dies, so a
lock file left behind by a killed build (``kill -9``) is stale by
construction and the next writer simply takes it over. The file records the
holder's pid, host and start time for the refusal message.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ragguard.errors import UsageError

__all__ = ["WriterLock", "lock_path", "refuse_if_held"]


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


class WriterLock:
    """Context manager holding the writer lock of the folder ``target``.

    Args:
        target: the folder written (an index, an audit ``--out``).
        what: how the refusal names it ("index", "audit folder").
        wait: wait for a holder instead of refusing; called first with who holds it (a converted
            model: the second first run waits for the first one's conversion, then uses it).

    Raises:
        UsageError: another process (or another open of the lock in this process) holds it, and
            ``wait`` is not given; or the lock file cannot be written.
    """

    def __init__(self, target: str | Path, what: str = "index", wait: Callable[[str], None] | None = None) -> None:
        self.target = Path(target)
        self.what = what
        self.wait = wait
        # Beside the real folder: the same folder reached through a symbolic link takes the same lock.
        self.path = lock_path(self.target.resolve())
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        import fcntl

        if self.target.exists() and not self.target.is_dir():
            raise UsageError(f"{self.what} {str(self.target)!r} is a file, not a folder: choose another --out")
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(f"cannot write the {self.what} {str(self.target)!r} ({exc.strerror or exc}): "
                                 "choose a folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(fd)
                if self.wait is not None:
                    self.wait(holder)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    os.close(fd)
                    raise _held(self.what, self.target, holder) from None
            # The previous holder may have removed the file between our open and our lock: retry on a fresh one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked, so no other writer holds this inode
        except FileNotFoundError:
            pass
        os.close(self._fd)  # releases the flock
        self._fd = None


def refuse_if_held(target: str | Path, what: str = "index") -> None:
    """Refuse at once, as :class:`WriterLock` would, when another process holds ``target``'s lock; create nothing.

    A cheap check before slow setup (loading models) that ends in taking the lock: the lock itself is
    taken later, so a writer that starts in between is still refused then.
    """
    import fcntl

    path = lock_path(Path(target).resolve())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # no lock file (nobody writes it), or one we cannot open: WriterLock says why later
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _held(what, Path(target), _describe(fd)) from None
    finally:
        os.close(fd)


def _held(what: str, target: Path, holder: str) -> UsageError:
    return UsageError(f"{what} {str(target)!r} is being written by another process ({holder}): wait for it to "
                      "finish, then run this again")


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
