"""How long the event loop stalls: learning slices, checkpoints, garbage collection, a busy
producer -- whatever holds the loop holds every decision up, so the tail of the decision
latency is the tail of these stalls.

A timer asks to wake every ``PERIOD_SECONDS``; how much later than asked it wakes is the
stall it waited behind (``streamer_event_loop_lag_seconds``). The longest of the last one to
two ``WINDOW_SECONDS`` is a gauge (``streamer_event_loop_longest_stall_seconds``): the one
number that says whether anything held the loop lately. Its cost is one wake-up every 10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

from prometheus_client import Gauge, Histogram

__all__ = ["PERIOD_SECONDS", "WINDOW_SECONDS", "LongestStall", "freeze_start_up_heap", "watch_loop_lag"]

PERIOD_SECONDS = 0.01
WINDOW_SECONDS = 30.0


class LongestStall:
    """The longest stall of the current window and of the one before it (so a stall stays
    visible for at least one whole window after it happened, whenever Prometheus scrapes)."""

    def __init__(self, gauge: Gauge, window_s: float = WINDOW_SECONDS) -> None:
        self.gauge = gauge
        self.window_s = window_s
        self._window_started: float | None = None
        self._current = 0.0
        self._previous = 0.0

    def observe(self, lag_s: float, now: float) -> None:
        if self._window_started is None:
            self._window_started = now
        elif now - self._window_started >= self.window_s:
            ended = (now - self._window_started) // self.window_s  # windows that ended
            self._previous = self._current if ended == 1 else 0.0
            self._current = 0.0
            self._window_started += ended * self.window_s
        self._current = max(self._current, lag_s)
        self.gauge.set(max(self._current, self._previous))


async def watch_loop_lag(histogram: Histogram, stop: asyncio.Event, longest: Gauge | None = None) -> None:
    """Observe the event loop's lateness into ``histogram`` (and its recent longest into
    ``longest``) until ``stop``."""
    loop = asyncio.get_running_loop()
    stall = None if longest is None else LongestStall(longest)
    while not stop.is_set():
        asked = loop.time() + PERIOD_SECONDS
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PERIOD_SECONDS)
        now = loop.time()
        lag = max(0.0, now - asked)
        histogram.observe(lag)
        if stall is not None:
            stall.observe(lag, now)


def freeze_start_up_heap() -> None:
    """Put every object alive now (modules, the model, the clients) out of the cycle
    collector's reach. A full collection walks them all: under load that held the event loop
    50-70 ms every few seconds, the decision latency's worst stalls (measured with the
    throughput benchmark, issue 19). Objects made later are collected as before; the frozen
    ones are still freed when their last reference goes."""
    gc.collect()
    gc.freeze()
