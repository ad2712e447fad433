"""What the service produces: label requests, predictions and dead letters.

Every send returns the broker's acknowledgement future instead of waiting for it, so a
micro-batch's outputs travel while the next batch is decided (:mod:`streamer.runtime.commits`
commits the batch's offsets once they are acknowledged). Outputs are sent as record batches
per partition (:class:`streamer.kafka.produce.BulkProducer`); one too large for the producer
is shrunk (a label request without its features: they stay in the pending store) or becomes a
dead letter, so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from operator import attrgetter
from typing import Any

from aiokafka import ConsumerRecord

from streamer.config import Settings
from streamer.core.decisions import Decisions
from streamer.kafka.produce import BulkProducer, encode_predictions
from streamer.metrics import Metrics
from streamer.wire import DecodeError, ItemBatch, encode_dead_letter, encode_label_request

__all__ = ["MAX_REQUEST_BYTES", "Outputs"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1_048_576  # aiokafka's default: larger outputs are shrunk or dead letters

Acks = list[asyncio.Future[Any]]
_KEY, _PARTITION = attrgetter("key"), attrgetter("partition")


class Outputs:
    """The producer side of one runtime; :meth:`attach` gives it a started producer."""

    def __init__(self, settings: Settings, metrics: Metrics, counts: defaultdict[str, int]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.counts = counts
        self.producer: Any = None
        self._bulk: BulkProducer | None = None

    def attach(self, producer: Any, max_request_size: int = MAX_REQUEST_BYTES) -> None:
        """Produce through ``producer`` (an aiokafka producer, started by its owner)."""
        self.producer = producer
        self._bulk = BulkProducer(producer, max_request_size)

    async def dead_letter(self, record: ConsumerRecord, error: DecodeError, source: str) -> asyncio.Future[Any]:
        """Send ``record`` as it came, with the reason, to the dead-letters topic."""
        assert self.producer is not None, "attach a producer first"
        self.counts["dead_letters"] += 1
        self.metrics.dead_letters.labels(source=source, reason=error.reason).inc()
        log.warning("dead letter from %s[%d]@%d: %s", record.topic, record.partition, record.offset, error)
        value = encode_dead_letter(
            source_topic=record.topic, partition=record.partition, offset=record.offset,
            error=str(error), raw=record.value, reason=error.reason,
        )
        return await self.producer.send(self.settings.dead_letters_topic, value, key=record.key)

    async def dead_letters(self, records: list[ConsumerRecord], error: DecodeError, source: str) -> Acks:
        return [await self.dead_letter(record, error, source) for record in records]

    async def predictions(self, batch: ItemBatch, decisions: Decisions, records: list[ConsumerRecord]) -> Acks:
        """One prediction per decided item, on the item's partition."""
        assert self._bulk is not None, "attach a producer first"
        values = encode_predictions(batch.ids, decisions.prediction, decisions.confidence,
                                    decisions.model_version)
        acks, refused = await self._bulk.send_many(
            self.settings.predictions_topic, list(map(_KEY, records)), values, list(map(_PARTITION, records))
        )
        error = DecodeError("output_too_large", "the prediction is too large for the producer")
        return acks + await self.dead_letters([records[i] for i in refused], error, "items")

    async def label_requests(
        self,
        batch: ItemBatch,
        decisions: Decisions,
        records: list[ConsumerRecord],
        asked: list[int],
        now: float,
        leader: str | None,
    ) -> Acks:
        """Label requests for the ``asked`` rows, in bulk; too large with features: without them
        (they stay in the pending store); too large even then: a dead letter."""
        assert self._bulk is not None, "attach a producer first"

        def request(i: int, with_features: bool) -> bytes:
            meta = batch.meta[i]
            return encode_label_request(
                id=batch.ids[i],
                features=batch.X[i] if with_features else None,
                payload_uri=meta.payload_uri,
                stream=meta.stream,
                prediction=decisions.prediction[i],
                proba=dict(zip(decisions.classes, decisions.proba[i].tolist(), strict=True)),
                scores={name: float(values[i]) for name, values in decisions.scores.items()},
                reason=decisions.reason[i],
                model_version=decisions.model_version,
                requested_at=now,
                model_leader=leader,
            )

        acks: Acks = []
        rows, with_features = asked, self.settings.include_features
        while rows:
            futures, refused = await self._bulk.send_many(
                self.settings.label_requests_topic,
                [records[i].key for i in rows],
                [request(i, with_features) for i in rows],
                [records[i].partition for i in rows],
            )
            acks += futures
            rows = [rows[j] for j in refused]
            if rows and not with_features:
                error = DecodeError("output_too_large", "the label request is too large for the producer")
                acks += await self.dead_letters([records[i] for i in rows], error, "items")
                break
            with_features = False
        return acks
