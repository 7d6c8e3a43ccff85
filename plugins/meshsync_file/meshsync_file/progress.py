"""Progress of the initial sync: a live line on a terminal, periodic log lines otherwise.

A snapshot of a big cluster takes a while; without feedback users kill it thinking it hangs.
The display is throttled (a few redraws per second, a log line every few seconds) so that it
costs nothing measurable per object.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import TextIO

MODES = ("auto", "tty", "log", "off")
#: ``--file-progress`` when not given: a live line on a terminal, log lines otherwise.
DEFAULT_MODE = MODES[0]


class Progress:
    """Counts objects per resource during the initial sync and shows the rate."""

    def __init__(
        self,
        mode: str = "auto",
        *,
        stream: TextIO | None = None,
        log: logging.Logger | None = None,
        redraw_every: float = 0.2,
        log_every: float = 5.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log = log or logging.getLogger("meshsync.file")
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "tty" if isatty is not None and isatty() else "log"
        self.mode = mode
        self.interval = redraw_every if mode == "tty" else log_every
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.started = time.monotonic()
        self._last = self.started
        self._drawn = False
        self.done = False

    def add(self, plural: str, count: int = 1) -> None:
        """Count ``count`` objects of a resource; redraw if it is time."""
        if self.done:
            return
        self.counts[plural] += count
        self.total += count
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._show(now)

    def line(self, now: float | None = None) -> str:
        """``12,345 objects (4,100/s, 3.0s): pods 10,000, configmaps 2,000, ...``."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        parts = ", ".join(f"{name} {count:,}" for name, count in self.counts.most_common(6))
        more = len(self.counts) - 6
        if more > 0:
            parts += f", +{more} more"
        rate = self.total / elapsed
        return f"{self.total:,} objects ({rate:,.0f}/s, {elapsed:.1f}s)" + (
            f": {parts}" if parts else ""
        )

    def _show(self, now: float) -> None:
        if self.mode == "tty":
            self.stream.write(f"\r\x1b[2Kfile: initial sync: {self.line(now)}")
            self.stream.flush()
            self._drawn = True
        elif self.mode == "log":
            self.log.info("initial sync: %s", self.line(now))

    def finish(self) -> str:
        """End the display with a final summary (also returned, for the sink's log)."""
        summary = self.line()
        if not self.done:
            self.done = True
            if self.mode == "tty":
                self.stream.write(f"\r\x1b[2Kfile: initial sync complete: {summary}\n")
                self.stream.flush()
        return summary
