"""A progress line on stderr: items sent, rate, and ETA when the total is known."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """A short human duration.

    >>> format_duration(4.2), format_duration(125), format_duration(7300)
    ('4s', '2m05s', '2h01m')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Report progress now and then: redrawn in place on a terminal, one line at a time elsewhere.

    Parameters
    ----------
    total
        Items expected (None when unknown: no ETA).
    out
        Where to write (stderr); ``None`` reports nothing.
    interval
        Seconds between reports (default 0.2 on a terminal, 5 otherwise).
    what
        The unit counted, e.g. ``items`` or ``frames``.
    clock
        Monotonic seconds.
    """

    def __init__(self, total: int | None, out: TextIO | None = sys.stderr, interval: float | None = None,
                 what: str = "items", clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.out = out
        self.tty = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.what = what
        self._clock = clock
        self.started = clock()
        self._last = self.started
        self._drawn = False

    def line(self, sent: int, skipped: int = 0) -> str:
        """The progress text for ``sent`` items so far."""
        elapsed = self._clock() - self.started
        rate = sent / elapsed if elapsed > 0 else 0.0
        done = f"{sent:,}"
        if self.total:
            done += f"/{self.total:,} ({min(sent / self.total, 1.0):.0%})"
        text = f"sent {done} {self.what}, {rate:,.0f}/s"
        if self.total and rate > 0 and sent < self.total:
            text += f", ETA {format_duration((self.total - sent) / rate)}"
        if skipped:
            text += f", {skipped:,} bad skipped"
        return text

    def update(self, sent: int, skipped: int = 0) -> None:
        """Report if the interval has passed since the last report."""
        if self.out is None:
            return
        now = self._clock()
        if now - self._last < self.interval:
            return
        self._last = now
        self._write(self.line(sent, skipped))

    def finish(self, sent: int, skipped: int = 0) -> None:
        """Close the in-place line with the final count."""
        if self.out is None:
            return
        if self.tty:
            self._write(self.line(sent, skipped))
            print(file=self.out, flush=True)
            self._drawn = False

    def _write(self, text: str) -> None:
        assert self.out is not None
        if self.tty:
            print(f"\r\x1b[2K{text}", end="", file=self.out, flush=True)
            self._drawn = True
        else:
            print(text, file=self.out, flush=True)
