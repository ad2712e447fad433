"""Where the learner reads the labels topic from: every partition, at the checkpoint's offsets.

The learner assigns itself all partitions of the labels topic (no consumer group joins, see
:meth:`streamer.runtime.Service.start`) and seeks each to the offset its
checkpoint recorded; partitions the checkpoint does not know start at the group's committed
offset, else at the beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

__all__ = ["LabelPartitions"]

log = logging.getLogger(__name__)

# how often a labels topic given more partitions is noticed (a metadata fetch) ...
_CHECK_SECONDS = 10.0
# ... and a log that lost its data (a memory-only broker restarted): one ListOffsets request.
# Often, because the check sees the loss only while the new log is still shorter than our
# position; once new labels pass it, the labels before it would be skipped.
_LOSS_CHECK_SECONDS = 1.0


class LabelPartitions:
    """Assigns a consumer every partition of ``topic`` and seeks them to ``positions``.

    ``positions`` is the learner's own map (next offset per partition): it is read, and
    corrected where the log lost the data it points to. ``client`` are the aiokafka connection
    arguments of the short-lived probe consumer.
    """

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, positions: dict[TopicPartition, int],
                 client: dict[str, Any]) -> None:
        self.consumer = consumer
        self.topic = topic
        self.positions = positions
        self.client = client
        self._checked = time.monotonic()
        # (position, reported end) pairs whose record the probe found: not probed again
        self._confirmed: dict[TopicPartition, tuple[int, int]] = {}

    async def assign(self) -> list[TopicPartition]:
        """Take every partition of the topic; seek those the positions know. Return them."""
        numbers = await self._fresh_partitions()
        if not numbers:
            raise KafkaError(f"the labels topic {self.topic!r} does not exist (or has no partitions)")
        partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        self.consumer.assign(partitions)
        await self._restart_lost(partitions)
        for tp in partitions:
            if tp in self.positions:
                self.consumer.seek(tp, self.positions[tp])
        self._checked = time.monotonic()
        return partitions

    async def refresh(self) -> list[TopicPartition] | None:
        """Every 10 s, assign again when the topic grew (the new assignment is returned; with
        a group, a rebalance did it). None when the assignment stayed."""
        now = time.monotonic()
        if now - self._checked < _CHECK_SECONDS:
            return None
        self._checked = now
        # fresh metadata: the consumer's cached metadata is refreshed only every few minutes,
        # so partitions added to the topic, or a topic recreated wider, would stay unseen
        numbers: set[int] = set()
        with contextlib.suppress(KafkaError, TimeoutError):
            numbers = await asyncio.wait_for(self._fresh_partitions(), _CHECK_SECONDS / 2)
        if len(numbers) > len(self.consumer.assignment()):
            return await self.assign()
        return None

    async def _fresh_partitions(self) -> set[int]:
        # aiokafka has no public call that refreshes the consumer's own metadata (topics()
        # fetches a separate copy); the consumer must know a new partition's leader to read it
        if not await self.consumer._client.force_metadata_update():  # noqa: SLF001
            raise KafkaError("metadata update failed")
        return set(self.consumer.partitions_for_topic(self.topic) or ())

    async def watch_losses(self, stop: asyncio.Event) -> None:
        """Every second until ``stop``: read a partition whose log lost our position from its
        start. A task of its own: the consume loop can sit in a fetch for seconds while the
        broker comes back, and the sooner the loss is seen, the likelier the new log is still
        shorter than our position: once new labels pass it, offsets cannot tell the logs apart."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_LOSS_CHECK_SECONDS)
            if stop.is_set():
                return
            for tp, offset in (await self._restart_lost(list(self.consumer.assignment()))).items():
                self.consumer.seek(tp, offset)

    async def _restart_lost(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Move the positions of partitions whose log lost the data they point to back to the
        log's start, and return those; other positions stay.

        A log that ends before our offset lost its data (a memory-only broker restarted, or
        the topic was deleted and created again): waiting for that offset would skip (or never
        reach) the labels of the new log.
        """
        saved = {tp: self.positions[tp] for tp in partitions if tp in self.positions}
        ends: dict[TopicPartition, int] = {}
        starts: dict[TopicPartition, int] = {}
        try:  # the timeout keeps a down broker from holding the check past its return
            ends = await asyncio.wait_for(self.consumer.end_offsets(list(saved)), _LOSS_CHECK_SECONDS) \
                if saved else {}
            doubtful = [tp for tp, offset in saved.items() if offset > ends[tp]
                        and self._confirmed.get(tp) != (offset, ends[tp])]
            # Some brokers (Tansu) under-report end offsets, so read the last record we
            # consumed before concluding the log lost it.
            lost = []
            for tp in doubtful:
                if await self._has_record(tp, saved[tp] - 1):
                    self._confirmed[tp] = (saved[tp], ends[tp])
                else:
                    lost.append(tp)
            starts = await self.consumer.beginning_offsets(lost) if lost else {}
        except (KafkaError, TimeoutError):  # the broker is away: keep the positions, ask again
            return {}
        for tp, start in starts.items():
            log.warning("labels %s[%d] ends at %d, before the checkpoint's offset %d: the "
                        "topic lost its data; reading it from offset %d", tp.topic,
                        tp.partition, ends[tp], saved[tp], start)
            self.positions[tp] = start
        return starts

    async def _has_record(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the log still holds the record at ``offset`` (a short-lived probe consumer)."""
        probe = AIOKafkaConsumer(**self.client, enable_auto_commit=False, auto_offset_reset="none",
                                 fetch_max_wait_ms=100)
        await probe.start()
        try:
            probe.assign([tp])
            probe.seek(tp, max(0, offset))
            batches = await probe.getmany(tp, timeout_ms=2000, max_records=1)
            return any(r.offset == offset for r in batches.get(tp, []))
        except KafkaError:  # out of range (real Kafka): the record is gone
            return False
        finally:
            await probe.stop()
