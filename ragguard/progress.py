"""A progress bar for long runs (audits), on stderr, with rate, ETA and live counts.

On a terminal it redraws one line in place::

    [########------------]  14/36  39% | 2.4 q/min | ETA 9m10s | consistent 9, inconsistent 2, contradiction 3

Elsewhere (CI logs, files) it prints one plain line per finished item, so
logs stay readable and nothing is lost when the run is killed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import IO

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
        width: characters of the bar.
        clock: time source (tests pass a fake one).
    """

    def __init__(
        self,
        total: int,
        stream: IO[str] | None = None,
        *,
        live: bool | None = None,
        unit: str = "q",
        width: int = 20,
        clock: object = time.perf_counter,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.unit = unit
        self.width = width
        self.clock = clock
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.started = clock()  # type: ignore[operator]
        self._drawn = False

    def line(self, label: str = "", detail: str = "") -> str:
        """The current status line (without the line break)."""
        elapsed = max(1e-9, self.clock() - self.started)  # type: ignore[operator]
        share = self.done / self.total if self.total else 1.0
        filled = int(round(share * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = self.done / elapsed * 60
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        parts = [
            f"[{bar}] {self.done:>{len(str(self.total))}}/{self.total} {share:4.0%}",
            f"{rate:.1f} {self.unit}/min",
            f"ETA {format_duration(eta) if eta is not None else '?'}",
        ]
        if counts:
            parts.append(counts)
        if not self.live and (label or detail):
            parts.append(" ".join(p for p in (label, detail) if p))
        return " | ".join(parts)

    def advance(self, label: str, detail: str = "") -> None:
        """One item finished with ``label`` (a verdict, "error", ...)."""
        self.done += 1
        self.counts[label] += 1
        self._write(self.line(label, detail))

    def note(self, message: str) -> None:
        """A message that must not be overwritten (invalid input, warnings)."""
        if self.live and self._drawn:
            self.stream.write("\r\x1b[2K")
        self.stream.write(message + "\n")
        self.stream.flush()
        self._drawn = False

    def close(self) -> None:
        """End the live line, if one is drawn."""
        if self.live and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _write(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
