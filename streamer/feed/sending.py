"""The send loop every feeder shares: pace encoded items, send them in batches, count all.

A feeder turns its input into :class:`Outgoing` records (or :class:`Skipped` bad inputs) in a
background thread; :func:`send_all` paces them, sends them through an
:class:`~streamer.feed.sink.ItemSink`, reports progress, and waits for every acknowledgement.
A bad input stops the feed with its reason, or with ``skip_bad`` is counted and listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from streamer.feed.errors import FeedError
from streamer.feed.pacing import Pacer
from streamer.feed.progress import Progress
from streamer.feed.report import FeedReport
from streamer.feed.sink import ItemSink

__all__ = ["Outgoing", "Skipped", "send_all"]

_EARLY = 0.002  # an item due this soon is sent now: sleeping costs more than it is worth


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded item: record key (the id), value, its ``ts``, and where it came from."""

    key: bytes
    value: bytes
    ts: float | None
    where: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A bad input: where it was and what is wrong, e.g. ``line 5: 3 values, the header has 4``."""

    reason: str


async def send_all(
    batches: AsyncIterator[list[Outgoing | Skipped]],
    sink: ItemSink,
    report: FeedReport,
    *,
    pacer: Pacer,
    progress: Progress,
    skip_bad: bool = False,
    max_items: int | None = None,
    stop: asyncio.Event | None = None,
) -> FeedReport:
    """Send everything ``batches`` yields, paced; fill in ``report`` and return it.

    Setting ``stop`` (Ctrl-C) ends the feed early but cleanly: what was read is sent and
    acknowledged, and ``report.stopped`` says so.

    Raises
    ------
    FeedError
        A bad input without ``skip_bad`` (after the items before it were acknowledged), an
        item too large for the producer, or a batch the broker did not acknowledge.
    """
    started = time.monotonic()
    keys: list[bytes] = []
    values: list[bytes] = []
    wheres: list[str] = []

    async def flush() -> None:
        if not keys:
            return
        refused = await sink.send(keys, values)
        for i in refused:
            await bad(f"{wheres[i]}: the item is {len(values[i]):,} bytes, over the producer's "
                      f"request limit; make it smaller")
        keys.clear()
        values.clear()
        wheres.clear()

    async def bad(reason: str) -> None:
        if not skip_bad:
            await flush()
            report.acked = await sink.drain()
            raise FeedError(f"{report.source}: {reason}. Fix it, or pass --skip-bad to skip and "
                            f"count bad input ({report.what} sent and acknowledged before it: "
                            f"{report.acked:,})")
        report.skip(reason)

    try:
        while (batch := await _next(batches, stop)) is not None:
            for thing in batch:
                if max_items is not None and sink.sent + len(keys) >= max_items:
                    break
                if isinstance(thing, Skipped):
                    await bad(thing.reason)
                    continue
                if pacer.paced:
                    try:
                        due = pacer.due(thing.ts)
                    except ValueError as exc:
                        raise FeedError(f"{report.source}: {thing.where}: {exc}") from None
                    wait = (due or 0.0) - time.monotonic()
                    if wait > _EARLY:
                        await flush()
                        report.sent = sink.sent
                        progress.update(report.sent, report.skipped)
                        if await _stopped_within(wait, stop):
                            break
                keys.append(thing.key)
                values.append(thing.value)
                wheres.append(thing.where)
            await flush()
            report.sent = sink.sent
            progress.update(report.sent, report.skipped)
            if max_items is not None and report.sent >= max_items:
                break
            if stop is not None and stop.is_set():
                break
        await flush()
        report.sent = sink.sent
        report.acked = await sink.drain()
    finally:
        report.elapsed_s = time.monotonic() - started
    report.stopped = stop is not None and stop.is_set()
    progress.finish(report.sent, report.skipped)
    return report


async def _next(batches: AsyncIterator[list[Outgoing | Skipped]],
                stop: asyncio.Event | None) -> list[Outgoing | Skipped] | None:
    """The next batch, or None at the end or once ``stop`` is set (even while waiting)."""
    if stop is None:
        return await anext(batches, None)
    if stop.is_set():
        return None
    getter = asyncio.ensure_future(anext(batches, None))
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        stopper.cancel()
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return None


async def _stopped_within(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``seconds``; True if ``stop`` was set meanwhile (the sleep then ends at once)."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
