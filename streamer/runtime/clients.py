"""Where the runtime's consumers and producer come from: Kafka, or the in-memory bus.

The runtime asks for three things -- a started producer, the items consumer (subscribed to its
group, started by the items loop), and a reader of every labels partition -- and uses only
what aiokafka and :class:`~streamer.runtime.memory_bus.MemoryBus` both provide.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from streamer.config import Settings
from streamer.kafka.client import client_kwargs, ensure_topics
from streamer.kafka.groups import broker_group_timeouts
from streamer.kafka.label_positions import LabelPartitions

__all__ = ["MAX_BATCH_BYTES", "Clients", "KafkaClients", "LabelsReader"]

MAX_BATCH_BYTES = 256 * 1024  # a record batch per partition and micro-batch, not dozens


class LabelsReader(Protocol):
    """A consumer of every labels partition, at the learner's positions."""

    consumer: Any

    async def assign(self) -> list[TopicPartition]: ...

    async def refresh(self) -> list[TopicPartition] | None: ...

    async def watch_losses(self, stop: asyncio.Event) -> None: ...


class Clients(Protocol):
    async def producer(self, max_request_size: int) -> Any: ...

    async def items_consumer(self, listener: ConsumerRebalanceListener) -> Any: ...

    async def labels_reader(self, positions: dict[TopicPartition, int]) -> LabelsReader: ...


class KafkaClients:
    """aiokafka clients for the settings' brokers (topics created first if asked)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._common = client_kwargs(settings)
        self._consumer: dict[str, Any] | None = None

    async def producer(self, max_request_size: int) -> AIOKafkaProducer:
        if self.settings.create_topics:
            await ensure_topics(self.settings)
        producer = AIOKafkaProducer(**self._common, linger_ms=2, acks="all",
                                    max_batch_size=MAX_BATCH_BYTES, max_request_size=max_request_size)
        await producer.start()
        return producer

    async def _consumer_kwargs(self) -> dict[str, Any]:
        if self._consumer is None:
            s = self.settings
            self._consumer = dict(
                **self._common, enable_auto_commit=False, auto_offset_reset="earliest",
                fetch_max_wait_ms=s.fetch_max_wait_ms,
                **await broker_group_timeouts(s.session_timeout_ms, self._common),
            )
        return self._consumer

    async def items_consumer(self, listener: ConsumerRebalanceListener) -> AIOKafkaConsumer:
        s = self.settings
        consumer = AIOKafkaConsumer(group_id=s.group_id, max_poll_records=s.max_batch,
                                    group_instance_id=s.group_instance_id, **await self._consumer_kwargs())
        consumer.subscribe([s.items_topic], listener=listener)
        return consumer

    async def labels_reader(self, positions: dict[TopicPartition, int]) -> LabelPartitions:
        """Every partition of the labels topic, without joining a group: one replica learns
        at a time, so no group has to share the labels out, and a restarted or standby learner
        need not wait for a dead member's session to expire. The group id only keeps committed
        offsets (the in-process store's progress)."""
        s = self.settings
        consumer = AIOKafkaConsumer(group_id=f"{s.group_id}-labels", **await self._consumer_kwargs())
        await consumer.start()
        return LabelPartitions(consumer, s.labels_topic, positions, self._common)
