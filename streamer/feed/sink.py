"""Encoded items onto a topic as record batches, acknowledgements tracked to the last one.

One ``send_batch`` per partition per call instead of a ``send`` per record (see
:mod:`streamer.kafka.produce`). A record's partition is ``crc32(id) mod partitions``: stable
per id, as key hashing is, at a hundredth of the cost of Kafka's murmur2 in Python.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streamer.feed.errors import FeedError
from streamer.kafka.produce import BulkProducer
from streamer.wire import JSON, content_type_headers, normalize_content_type

__all__ = ["ItemSink"]


class ItemSink:
    """Send encoded items in record batches and count what the broker acknowledged.

    Parameters
    ----------
    producer
        A started producer.
    topic
        The items topic.
    content_type
        Format of the values; JSON goes without a header (the default format), others
        with their ``content-type`` header.
    max_request_size
        The producer's ``max_request_size``: larger records are refused, not sent.
    max_in_flight
        Record batches waiting for their ack before :meth:`send` waits for the oldest.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, content_type: str = JSON,
                 max_request_size: int = 1_048_576, max_in_flight: int = 64) -> None:
        self.producer = producer
        self.topic = topic
        kind = normalize_content_type(content_type)
        self.headers = [] if kind == JSON else content_type_headers(kind)
        self._bulk = BulkProducer(producer, max_request_size)
        self.max_in_flight = max_in_flight
        self._in_flight: deque[tuple[asyncio.Future[Any], int]] = deque()
        self.sent = 0
        self.acked = 0

    async def send(self, keys: Sequence[bytes], values: Sequence[bytes]) -> list[int]:
        """Queue records (the key is the item id); return the positions refused as too large.

        Raises
        ------
        FeedError
            The broker failed an earlier batch (the message says how many were acknowledged).
        """
        try:
            n = len(await self.producer.partitions_for(self.topic))
        except KafkaError as exc:
            raise FeedError(f"no partitions for topic {self.topic!r}: {exc}") from exc
        _, refused = await self._bulk.send_many(
            self.topic, keys, values, [zlib.crc32(key) for key in keys],
            headers=self.headers, partitions=n, on_batch=self._submitted,
        )
        return refused

    async def _submitted(self, future: asyncio.Future[Any], count: int) -> None:
        self._in_flight.append((future, count))
        self.sent += count
        while self._in_flight and (self._in_flight[0][0].done() or len(self._in_flight) > self.max_in_flight):
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        future, count = self._in_flight.popleft()
        try:
            await future
        except KafkaError as exc:
            raise FeedError(
                f"the broker did not acknowledge a batch of {count} items on {self.topic!r}: {exc}; "
                f"{self.acked:,} items were acknowledged before it"
            ) from exc
        self.acked += count

    async def drain(self) -> int:
        """Wait until every queued item is acknowledged; return the number acknowledged."""
        while self._in_flight:
            await self._settle_oldest()
        return self.acked
