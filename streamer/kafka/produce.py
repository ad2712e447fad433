"""Bulk produce: a micro-batch of outputs as a few record batches, not one ``send`` per record.

aiokafka's per-record ``send()`` costs about 7 µs of Python (a future, a partitioner call, an
accumulator lookup) and tops out near 130k records/s on one core; filling a ``BatchBuilder`` and
handing it over with ``send_batch`` reaches over 1M/s. :class:`BulkProducer` does the latter.

Partitioning: an output goes to the partition of the item it answers (modulo the output topic's
partition count). Items are keyed by id, so every output of one id lands in one partition, in
order -- what key partitioning would give, without hashing every key in Python.

Records over the producer's request limit are not appended; their positions are returned so the
caller can shrink them (a label request without its features) or dead-letter them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

__all__ = ["BulkProducer", "encode_predictions"]

_ROUGH_OVERHEAD = 128  # record and batch headers: sizes below limit - this need no exact check


class BulkProducer:
    """Append records into one batch per partition and submit each with ``send_batch``.

    Parameters
    ----------
    producer
        A started :class:`aiokafka.AIOKafkaProducer`.
    max_request_size
        The producer's ``max_request_size``: larger records are refused, not sent.
    """

    def __init__(self, producer: AIOKafkaProducer, max_request_size: int) -> None:
        self.producer = producer
        self.max_request_size = max_request_size

    def too_large(self, key: bytes | None, value: bytes) -> bool:
        """Whether one record exceeds the request limit (as aiokafka's own ``send`` checks)."""
        rough = len(value) + (len(key) if key else 0) + _ROUGH_OVERHEAD
        if rough <= self.max_request_size:
            return False
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        return bool(size > self.max_request_size)

    async def send_many(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes],
        source_partitions: Sequence[int],
        *,
        headers: Sequence[tuple[str, bytes]] = (),
        partitions: int | None = None,
        on_batch: Callable[[asyncio.Future[Any], int], Awaitable[None]] | None = None,
    ) -> tuple[list[asyncio.Future[Any]], list[int]]:
        """Queue ``values`` on ``topic``; return the ack futures and the positions refused.

        Record ``i`` goes to partition ``source_partitions[i] % partitions`` (``partitions``:
        the topic's count, looked up when not given). Every future resolves when the broker
        acknowledged its record batch; ``on_batch(future, records)`` is awaited after each
        batch is handed over (e.g. to bound the batches in flight). The positions refused
        (over ``max_request_size``) were not queued.
        """
        if not values:
            return [], []
        producer = self.producer
        n = partitions or len(await producer.partitions_for(topic))
        by_partition: dict[int, list[int]] = {}
        for i, p in enumerate(source_partitions):
            by_partition.setdefault(p % n, []).append(i)
        futures: list[asyncio.Future[Any]] = []
        refused: list[int] = []
        extra = list(headers)

        async def submit(batch: Any, partition: int, count: int) -> None:
            future = await producer.send_batch(batch, topic, partition=partition)
            futures.append(future)
            if on_batch is not None:
                await on_batch(future, count)

        for partition, positions in by_partition.items():
            batch = producer.create_batch()
            filled = 0
            for i in positions:
                key, value = keys[i], values[i]
                if self.too_large(key, value):
                    refused.append(i)
                    continue
                if batch.append(key=key, value=value, timestamp=None, headers=extra) is None:
                    await submit(batch, partition, filled)
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=extra)  # the first always fits
                    filled = 0
                filled += 1
            if filled:
                await submit(batch, partition, filled)
        refused.sort()
        return futures, refused


def encode_predictions(
    ids: Sequence[str], predictions: Sequence[Any], confidences: np.ndarray, model_version: int
) -> list[bytes]:
    """Encode a batch of predictions (the ``predictions`` wire format, JSON) in one pass.

    The same bytes as :func:`streamer.wire.encode_prediction` item by item, at a
    fraction of the cost (no per-item option parsing or type checks beyond the batch's).

    >>> encode_predictions(["a", "b"], [1, None], np.array([0.75, 0.0]), 3)
    [b'{"id":"a","prediction":1,"confidence":0.75,"model_version":3}', b'{"id":"b","prediction":null,"confidence":0.0,"model_version":3}']
    """
    version = int(model_version)
    plain = [p.item() if isinstance(p, np.generic) else p for p in predictions]
    if not plain:
        return []
    # One orjson call for the batch, cut into records: between two records the bytes are
    # always '},{"id":', which cannot occur inside a JSON string (its quotes are escaped)
    # and no prediction holds an object. Half the cost of one call per record.
    blob = orjson.dumps([
        {"id": i, "prediction": p, "confidence": c, "model_version": version}
        for i, p, c in zip(ids, plain, np.asarray(confidences, dtype=np.float64).tolist(), strict=True)
    ])
    return [b'{"id":' + part + b"}" for part in blob[len(b'[{"id":'):-len(b"}]")].split(_BETWEEN_RECORDS)]


_BETWEEN_RECORDS = b'},{"id":'
