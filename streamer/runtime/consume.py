"""The poll loop both consumers share: micro-batches from ``getmany`` until told to stop, and
the limit that keeps an items micro-batch small enough to be decided within ``--max-delay-ms``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from streamer.runtime.health import Stopping

__all__ = ["POLL_MS", "BatchLimit", "poll_batches"]

POLL_MS = 200  # a poll returns this soon without records, so stopping is noticed

Handler = Callable[[list[ConsumerRecord], dict[TopicPartition, int]], Awaitable[None]]


class BatchLimit:
    """How many records the next micro-batch may take.

    ``getmany`` hands over everything fetched, up to the limit, without waiting for more, so an
    item waits for the batches decided before it and for its own. A batch that takes long to
    decide (an expensive model, wide items, a backlog after a stall) holds its first items as
    long. This limit is the most records that are decided within ``max_delay_s``, at the cost
    per record measured on the recent batches, between ``floor`` and ``max_batch``. The
    records over it stay fetched and make the next batch, at once.
    """

    SMOOTHING = 0.2  # weight of the newest batch in the cost per record

    def __init__(self, max_batch: int, max_delay_s: float | None = None, floor: int = 16) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.floor = min(floor, max_batch)
        self.records = max_batch
        self.seconds_per_record: float | None = None

    def observe(self, records: int, seconds: float) -> None:
        """A batch of ``records`` took ``seconds`` to decide and hand to the producer."""
        if self.max_delay_s is None or records <= 0:
            return
        cost = seconds / records  # includes the batch's fixed cost, so small batches stay cheap
        previous = self.seconds_per_record
        self.seconds_per_record = cost if previous is None else previous + self.SMOOTHING * (cost - previous)
        if self.seconds_per_record * self.max_batch <= self.max_delay_s:  # the largest batch fits
            self.records = self.max_batch
        else:  # the quotient is below max_batch, so finite whatever the cost
            self.records = max(self.floor, int(self.max_delay_s / self.seconds_per_record))


async def poll_batches(consumer: Any, limit: BatchLimit, stop: asyncio.Event, handle: Handler,
                       each_poll: Callable[[], Awaitable[None]] | None = None) -> None:
    """Hand every micro-batch, with the offsets that follow it, to ``handle``.

    ``each_poll`` runs after every poll, records or not (commit what was acknowledged, notice
    new partitions). A handler stopped while the store was down (:class:`Stopping`) ends the
    loop with nothing committed for its batch: it is read again at the next start.
    """
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=limit.records)
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
