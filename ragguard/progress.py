"""A progress bar for long runs (audits, embedding an index), on stderr, with rate, ETA and live counts.

On a terminal it redraws one line in place::

    [########------------]  14/36  39% | 2.4 q/min | ETA 9m10s | consistent 9, inconsistent 2, contradiction 3

Elsewhere (CI logs, files) it prints plain lines: one per finished item, or with
``every`` at most one every that many seconds (the first and the last item always
get theirs, and :meth:`ProgressBar.close` prints the last state when items went
unreported, as after an interrupt), so a 10 000-question log stays short.

A run that continues earlier work (a resumed audit) is started with
:meth:`ProgressBar.start` and the items already done: the position and counts
shown are overall (``1401/1997``), the rate and ETA those of this run.

Items often finish together (an audit batch of 8 questions, 512 chunks
embedded in one call): :meth:`ProgressBar.advance_many` counts the whole batch
before it reports, so the rate and ETA of every line are those of the batches
completed so far, not a ramp of per-item artefacts ("1/5 ... ETA 2m00s" for the
first item of a batch that ended at once).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import IO

from ragguard._text import one_line

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressBar:
    """Counts finished items by label and reports rate and ETA.

    Args:
        total: items to do in this run.
        stream: where to write (default stderr).
        live: redraw in place; default: when ``stream`` is a terminal.
        unit: what an item is called in the rate ("q" for questions).
        per: the rate's time unit, ``"min"`` or ``"s"`` (chunks per second).
        width: characters of the bar.
        clock: time source (tests pass a fake one).
        every: when not ``live``, the least seconds between two plain lines (``0``: a line per item).
    """

    def __init__(
        self,
        total: int,
        stream: IO[str] | None = None,
        *,
        live: bool | None = None,
        unit: str = "q",
        per: str = "min",
        width: int = 20,
        clock: object = time.perf_counter,
        every: float = 0.0,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.unit = unit
        self.per = per
        self.width = width
        self.clock = clock
        self.every = every
        self.done = 0
        self.before = 0  # items done by earlier runs: shown in the position, not in the rate
        self.counts: Counter[str] = Counter()
        self.started = clock()  # type: ignore[operator]
        self._drawn = False
        self._printed_at: float | None = None  # when the last plain line was written
        self._unshown: tuple[str, str] | None = None  # the last item, when it went without a line

    def start(self, total: int, *, done_before: int = 0, counts_before: Mapping[str, int] | None = None) -> None:
        """Begin a run of ``total`` items now.

        Args:
            done_before: items earlier runs finished (a resumed audit's questions already done): the
                position reads ``done_before + done`` of ``done_before + total``, while the rate and ETA
                count this run's items only.
            counts_before: the labels of those items, added to the live counts.
        """
        self.total, self.done, self.before = total, 0, done_before
        self.counts = Counter(counts_before or {})
        self.started = self.clock()  # type: ignore[operator]
        self._printed_at, self._unshown = None, None

    def line(self, label: str = "", detail: str = "", position: int | None = None) -> str:
        """The current status line (without the line break).

        Args:
            position: the item count to show (an item within a batch that is
                already counted); rate and ETA always use everything done.
        """
        elapsed = max(1e-9, self.clock() - self.started)  # type: ignore[operator]
        shown = self.before + (self.done if position is None else position)
        total = self.before + self.total
        share = shown / total if total else 1.0
        filled = int(round(share * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self.done / elapsed * (60 if self.per == "min" else 1)  # this run's: earlier runs took other time
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])) if k)
        parts = [
            f"[{bar}] {shown:>{len(str(total))}}/{total} {share:4.0%}",
            f"{rate:.1f} {self.unit}/{self.per}",
            f"ETA {format_duration(eta) if eta is not None else '?'}",
        ]
        if counts:
            parts.append(counts)
        if not self.live and (label or detail):
            parts.append(" ".join(p for p in (label, detail) if p))
        return " | ".join(parts)

    def advance(self, label: str, detail: str = "", count: int = 1) -> None:
        """``count`` items finished with ``label`` (a verdict, "error", ...; ``""`` counts no label)."""
        self.done += count
        self.counts[label] += count
        if self.live or self._due():
            self._write(self.line(label, detail))
        else:
            self._unshown = (label, detail)

    def advance_many(self, items: list[tuple[str, str]]) -> None:
        """A batch of items finished at once, each ``(label, detail)``: counted first, then reported.

        On a terminal the bar is redrawn once; elsewhere each item gets its line,
        all with the rate and ETA of the completed batches (with ``every``, only the
        batch's last item, and only when a line is due).
        """
        first = self.done
        self.done += len(items)
        for n, (label, detail) in enumerate(items, first + 1):
            self.counts[label] += 1  # a log line counts the items up to its own, as its position does
            if not self.live and self.every <= 0:
                self._write(self.line(label, detail, position=n))
        if self.live and items:
            self._write(self.line())
        elif items and self.every > 0:
            if self._due():
                self._write(self.line(*items[-1]))
            else:
                self._unshown = items[-1]

    def __call__(self, message: str) -> None:
        """A bar is also a progress callback: a message is a :meth:`note`."""
        self.note(message)

    def note(self, message: str) -> None:
        """A message that must not be overwritten (invalid input, warnings)."""
        if self.live and self._drawn:
            self.stream.write("\r\x1b[2K")
        self.stream.write(one_line(message) + "\n")  # an error text from a server or a model may hold escapes
        self.stream.flush()
        self._drawn = False

    def close(self) -> None:
        """End the live line, if one is drawn; in a log, print the state of items that went without a line."""
        if self.live and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
        elif not self.live and self._unshown is not None:
            self._write(self.line(*self._unshown))

    def _due(self) -> bool:
        """Whether a plain line is due now: always without ``every``; else the first, the last item, or ``every``
        seconds after the last line."""
        if self.every <= 0 or self._printed_at is None or self.done >= self.total:
            return True
        return bool(self.clock() - self._printed_at >= self.every)  # type: ignore[operator]

    def _write(self, text: str) -> None:
        text = one_line(text)  # ids and error details are data: their escapes must not drive the terminal
        if self.live:
            self.stream.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
            self._printed_at, self._unshown = self.clock(), None  # type: ignore[operator]
        self.stream.flush()
