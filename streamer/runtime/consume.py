"""The poll loop both consumers share: micro-batches from ``getmany`` until told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from streamer.runtime.health import Stopping

__all__ = ["POLL_MS", "poll_batches"]

POLL_MS = 200  # a poll returns this soon without records, so stopping is noticed

Handler = Callable[[list[ConsumerRecord], dict[TopicPartition, int]], Awaitable[None]]


async def poll_batches(consumer: Any, max_records: int, stop: asyncio.Event, handle: Handler,
                       each_poll: Callable[[], Awaitable[None]] | None = None) -> None:
    """Hand every micro-batch, with the offsets that follow it, to ``handle``.

    ``each_poll`` runs after every poll, records or not (commit what was acknowledged, notice
    new partitions). A handler stopped while the store was down (:class:`Stopping`) ends the
    loop with nothing committed for its batch: it is read again at the next start.
    """
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=max_records)
        if each_poll is not None:
            await each_poll()
        if not batches:
            continue
        records = [record for partition in batches.values() for record in partition]
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs}
        try:
            await handle(records, offsets)
        except Stopping:
            return
