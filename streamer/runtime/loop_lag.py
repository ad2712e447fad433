"""How long the event loop stalls: learning slices, checkpoints, garbage collection, a busy
producer -- whatever holds the loop holds every decision up, so the tail of the decision
latency is the tail of these stalls.

A timer asks to wake every ``PERIOD_SECONDS``; how much later than asked it wakes is the
stall it waited behind (``streamer_event_loop_lag_seconds``). Its cost is one wake-up every
10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Histogram

__all__ = ["PERIOD_SECONDS", "watch_loop_lag"]

PERIOD_SECONDS = 0.01


async def watch_loop_lag(histogram: Histogram, stop: asyncio.Event) -> None:
    """Observe the event loop's lateness into ``histogram`` until ``stop``."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time() + PERIOD_SECONDS
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PERIOD_SECONDS)
        histogram.observe(max(0.0, loop.time() - asked))
