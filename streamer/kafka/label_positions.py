"""Where the learner reads the labels topic from: every partition, at the checkpoint's offsets.

The learner assigns itself all partitions of the labels topic (no consumer group joins, see
:meth:`streamer.kafka.service.Service._start_labels`) and seeks each to the offset its
checkpoint recorded; partitions the checkpoint does not know start at the group's committed
offset, else at the beginning.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

__all__ = ["LabelPartitions"]

log = logging.getLogger(__name__)

# how often the assignment is checked: a labels topic given more partitions, or a log that
# lost its data (a memory-only broker restarted), is noticed within about this
_CHECK_SECONDS = 10.0


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

    async def assign(self) -> list[TopicPartition]:
        """Take every partition of the topic; seek those the positions know. Return them."""
        await self.consumer.topics()  # a metadata fetch: the topic's partitions
        numbers = self.consumer.partitions_for_topic(self.topic) or set()
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
        """Every few seconds: assign again when the topic grew (the new assignment is returned),
        and read a partition whose log lost our position from its start (with a group, a
        rebalance did both). None when the assignment stayed."""
        if time.monotonic() - self._checked < _CHECK_SECONDS:
            return None
        self._checked = time.monotonic()
        assigned = self.consumer.assignment()
        if len(self.consumer.partitions_for_topic(self.topic) or set()) > len(assigned):
            return await self.assign()
        for tp, offset in (await self._restart_lost(list(assigned))).items():
            self.consumer.seek(tp, offset)
        return None

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
        with contextlib.suppress(KafkaError):  # cannot tell now: keep the positions
            ends = await self.consumer.end_offsets(list(saved)) if saved else {}
            doubtful = [tp for tp, offset in saved.items() if offset > ends[tp]]
            # Some brokers (Tansu) under-report end offsets, so read the last record we
            # consumed before concluding the log lost it.
            lost = [tp for tp in doubtful if not await self._has_record(tp, saved[tp] - 1)]
            starts = await self.consumer.beginning_offsets(lost) if lost else {}
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
