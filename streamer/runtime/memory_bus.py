"""An in-memory bus: just what the runtime uses of aiokafka's consumer and producer.

It makes the runtime testable in milliseconds and deterministically: acknowledgements come when
a test says so (:meth:`MemoryProducer.acknowledge`) or fail when it says so
(:meth:`MemoryProducer.fail`), consumer groups rebalance when a member joins or leaves (with
the listener's revoke called first, as aiokafka does), and every commit is recorded. A record
lands in its topic when its send is acknowledged, as on a broker.

>>> import asyncio
>>> from streamer.runtime.memory_bus import MemoryBus
>>> async def demo():
...     bus = MemoryBus(partitions=2)
...     producer = MemoryProducer(bus, auto_ack=True)
...     await (await producer.send("items", b"v", key=b"k", partition=1))
...     return bus.values("items")
>>> asyncio.run(demo())
[b'v']
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from streamer.config import Settings

__all__ = ["MemoryBus", "MemoryClients", "MemoryConsumer", "MemoryLabelsReader", "MemoryProducer"]


class MemoryBus:
    """Topics (``partitions`` each unless created otherwise), committed offsets and groups."""

    def __init__(self, partitions: int = 3) -> None:
        self.default_partitions = partitions
        self.logs: dict[str, list[list[ConsumerRecord]]] = {}
        self.committed: dict[str, dict[TopicPartition, int]] = defaultdict(dict)
        self.commits: list[tuple[str, dict[TopicPartition, int]]] = []  # every commit, in order
        self.members: dict[str, list[MemoryConsumer]] = defaultdict(list)
        self.arrived = asyncio.Condition()

    def partitions(self, topic: str) -> list[list[ConsumerRecord]]:
        return self.logs.setdefault(topic, [[] for _ in range(self.default_partitions)])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes,
               headers: Iterable[tuple[str, bytes]] = ()) -> int:
        log = self.partitions(topic)[partition]
        record = ConsumerRecord(topic, partition, len(log), int(time.time() * 1000), 0, key, value,
                                None, len(key or b""), len(value), list(headers))
        log.append(record)
        self._wake()
        return record.offset

    def values(self, topic: str) -> list[bytes]:
        """Every value on ``topic``, partition by partition."""
        return [r.value for log in self.partitions(topic) for r in log]

    def clients(self, settings: Settings, **producer_options: Any) -> MemoryClients:
        """The runtime's clients (:class:`~streamer.runtime.clients.Clients`) on this bus."""
        return MemoryClients(self, settings, **producer_options)

    def _wake(self) -> None:
        async def notify() -> None:
            async with self.arrived:
                self.arrived.notify_all()
        asyncio.ensure_future(notify())

    async def rebalance(self, group: str) -> None:
        """Share the group's topics' partitions out again: every member's listener hears the
        revoke of what it held first, then what it holds now."""
        members = self.members[group]
        for member in members:
            revoked = sorted(member.assigned, key=lambda tp: (tp.topic, tp.partition))
            if member.listener is not None:
                await member.listener.on_partitions_revoked(revoked)
            member.assigned = set()
        if not members:
            return
        topics = sorted({t for member in members for t in member.topics})
        every = [TopicPartition(t, p) for t in topics for p in range(len(self.partitions(t)))]
        for i, tp in enumerate(every):
            members[i % len(members)].take(tp)
        for member in members:
            if member.listener is not None:
                await member.listener.on_partitions_assigned(sorted(member.assigned))


class MemoryProducer:
    """Sends wait for :meth:`acknowledge` (or fail at :meth:`fail`) unless ``auto_ack``."""

    def __init__(self, bus: MemoryBus, auto_ack: bool = True) -> None:
        self.bus = bus
        self.auto_ack = auto_ack
        self.sent = 0
        self._held: list[tuple[asyncio.Future[Any], list[tuple[str, int, bytes | None, bytes, Any]]]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(len(self.bus.partitions(topic))))

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        return self._queue([(topic, partition, key, value, headers) for key, value, headers in batch.records])

    async def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None,
                   headers: Any = None, **_: Any) -> asyncio.Future[Any]:
        if partition is None:
            partition = hash(key) % len(self.bus.partitions(topic)) if key else 0
        return self._queue([(topic, partition, key, value, headers or [])])

    @property
    def unacknowledged(self) -> int:
        return sum(1 for future, _ in self._held if not future.done())

    def acknowledge(self, count: int | None = None) -> None:
        """The broker answers the oldest ``count`` sends (all when None): their records land."""
        held, self._held = self._held, []
        for i, (future, records) in enumerate(held):
            if count is not None and i >= count:
                self._held.append((future, records))
                continue
            self._land(future, records)

    def fail(self, error: BaseException) -> None:
        """The broker refuses every send in flight: nothing of them lands."""
        held, self._held = self._held, []
        for future, _ in held:
            if not future.done():
                future.set_exception(error)

    def _queue(self, records: list[tuple[str, int, bytes | None, bytes, Any]]) -> asyncio.Future[Any]:
        self.sent += len(records)
        future = asyncio.get_running_loop().create_future()
        if self.auto_ack:
            self._land(future, records)
        else:
            self._held.append((future, records))
        return future

    def _land(self, future: asyncio.Future[Any], records: list[tuple[str, int, bytes | None, bytes, Any]]) -> None:
        if future.done():
            return
        for topic, partition, key, value, headers in records:
            self.bus.append(topic, partition, key, value, headers)
        future.set_result(None)


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes, Any]] = []

    def append(self, key: bytes | None, value: bytes, timestamp: Any = None, headers: Any = ()) -> object:
        self.records.append((key, value, list(headers)))
        return object()


class MemoryConsumer:
    """A group member (``subscribe`` + ``start``) or a consumer of assigned partitions."""

    def __init__(self, bus: MemoryBus, group: str | None, max_records: int = 500) -> None:
        self.bus = bus
        self.group = group
        self.max_records = max_records
        self.topics: list[str] = []
        self.listener: ConsumerRebalanceListener | None = None
        self.assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener | None = None) -> None:
        self.topics, self.listener = list(topics), listener

    async def start(self) -> None:
        if self.group is not None and self.topics:
            self.bus.members[self.group].append(self)
            await self.bus.rebalance(self.group)

    async def stop(self) -> None:
        if self.group is not None and self in self.bus.members[self.group]:
            self.bus.members[self.group].remove(self)
            await self.bus.rebalance(self.group)
        self.assigned = set()

    def take(self, tp: TopicPartition) -> None:
        self.assigned.add(tp)
        self.positions[tp] = self.bus.committed[self.group or ""].get(tp, 0)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self.assigned = set()
        for tp in partitions:
            self.take(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        group = self.group or ""
        self.bus.committed[group].update(offsets)
        self.bus.commits.append((group, dict(offsets)))

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        batches = self._ready(max_records or self.max_records)
        if not batches and timeout_ms:
            async with self.bus.arrived:
                try:
                    await asyncio.wait_for(self.bus.arrived.wait(), timeout_ms / 1000)
                except TimeoutError:
                    return {}
            batches = self._ready(max_records or self.max_records)
        return batches

    def _ready(self, budget: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        batches: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in sorted(self.assigned, key=lambda tp: (tp.topic, tp.partition)):
            log = self.bus.partitions(tp.topic)[tp.partition]
            start = self.positions.get(tp, 0)
            records = log[start:start + budget]
            if records:
                batches[tp] = records
                self.positions[tp] = start + len(records)
                budget -= len(records)
            if budget <= 0:
                break
        return batches


class MemoryLabelsReader:
    """Every labels partition, at the learner's positions (else the committed offsets)."""

    def __init__(self, bus: MemoryBus, topic: str, group: str, positions: dict[TopicPartition, int]) -> None:
        self.consumer = MemoryConsumer(bus, group)
        self.topic = topic
        self.positions = positions
        self._bus = bus

    async def assign(self) -> list[TopicPartition]:
        partitions = [TopicPartition(self.topic, p) for p in range(len(self._bus.partitions(self.topic)))]
        self.consumer.assign(partitions)
        for tp in partitions:
            if tp in self.positions:
                self.consumer.seek(tp, self.positions[tp])
        return partitions

    async def refresh(self) -> list[TopicPartition] | None:
        return None

    async def watch_losses(self, stop: asyncio.Event) -> None:
        await stop.wait()  # an in-memory log never loses its records


class MemoryClients:
    """:class:`~streamer.runtime.clients.Clients` on a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, settings: Settings, auto_ack: bool = True) -> None:
        self.bus = bus
        self.settings = settings
        self.producer_made = MemoryProducer(bus, auto_ack=auto_ack)
        self.items: MemoryConsumer | None = None

    async def producer(self, max_request_size: int) -> MemoryProducer:
        return self.producer_made

    async def items_consumer(self, listener: ConsumerRebalanceListener) -> MemoryConsumer:
        self.items = MemoryConsumer(self.bus, self.settings.group_id, self.settings.max_batch)
        self.items.subscribe([self.settings.items_topic], listener=listener)
        return self.items

    async def labels_reader(self, positions: dict[TopicPartition, int]) -> MemoryLabelsReader:
        s = self.settings
        return MemoryLabelsReader(self.bus, s.labels_topic, f"{s.group_id}-labels", positions)
