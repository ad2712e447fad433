"""The aiokafka service loop: items -> decide -> label requests / predictions, labels -> join -> learn.

Offsets of items are committed only after the broker acknowledged every output of their
micro-batch, so a crash re-decides at most the batch in hand (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from streamer.config import Settings
from streamer.core.decisions import Decisions
from streamer.core.sampler import Sampler
from streamer.kafka.client import client_kwargs, ensure_topics
from streamer.kafka.codecs import (
    DecodeError,
    ItemBatch,
    ItemDecoder,
    decode_label,
    encode_dead_letter,
    encode_label_request,
    encode_prediction,
    header_content_type,
)
from streamer.metrics import Metrics
from streamer.store.base import JoinOutcome, PendingStore

log = logging.getLogger(__name__)

_SWEEP_SECONDS = 2.0


class Service:
    """One replica of the selective-sampling service.

    Build it with :func:`streamer.app.build_service`, then ``await service.run(stop)``.
    """

    def __init__(
        self,
        settings: Settings,
        sampler: Sampler,
        store: PendingStore,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.metrics = metrics or Metrics()
        self.decoder = ItemDecoder(n_features=settings.n_features)
        self.started_at = time.time()
        self.consuming = False
        self.stopping = False
        self.error: str | None = None
        self.counts: dict[str, int] = defaultdict(int)
        self.outcomes: dict[str, int] = {outcome.value: 0 for outcome in JoinOutcome}
        self.pending = 0
        self.http_port: int | None = None  # set by streamer.app.serve
        self._labelled_correct = 0
        self._producer: AIOKafkaProducer | None = None
        self._items: AIOKafkaConsumer | None = None
        self._labels: AIOKafkaConsumer | None = None
        self.metrics.budget.set(sampler.budget)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        s = self.settings
        common = client_kwargs(s)
        if s.create_topics:
            await ensure_topics(s)
        self._producer = AIOKafkaProducer(**common, linger_ms=2, acks="all")
        consumer_kwargs = dict(
            **common,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        self._items = AIOKafkaConsumer(
            s.items_topic, group_id=s.group_id, max_poll_records=s.max_batch, **consumer_kwargs
        )
        self._labels = AIOKafkaConsumer(
            s.labels_topic, group_id=f"{s.group_id}-labels", **consumer_kwargs
        )
        await self._producer.start()
        await self._items.start()
        await self._labels.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand, flush and commit."""
        await self.start()
        tasks = [
            asyncio.create_task(self._items_loop(stop), name="items"),
            asyncio.create_task(self._labels_loop(stop), name="labels"),
            asyncio.create_task(self._sweep_loop(stop), name="sweep"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self.error = repr(task.exception())
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.stopping = True
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=10)
            await self.close()

    async def close(self) -> None:
        self.consuming = False
        self.metrics.ready.set(0)
        for client in (self._items, self._labels, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        with contextlib.suppress(Exception):  # the final status shows what really waits
            self.pending = await self.store.pending_count()
        await self.store.close()

    # ------------------------------------------------------------------ items

    async def _items_loop(self, stop: asyncio.Event) -> None:
        assert self._items is not None
        await self._consume(self._items, self.settings.max_batch, self.process_items, stop)

    async def _consume(
        self,
        consumer: AIOKafkaConsumer,
        max_records: int,
        process: Callable[[list[ConsumerRecord]], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        """Micro-batches from ``getmany``; offsets are committed once ``process`` returned."""
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            if consumer is self._items and not self.consuming and consumer.assignment():
                self.consuming = True
                self.metrics.ready.set(1)
            if not batches:
                continue
            await process([record for partition in batches.values() for record in partition])
            await self._commit(consumer, batches)

    async def process_items(self, records: Sequence[ConsumerRecord]) -> None:
        """Decide one micro-batch and wait until the broker acknowledged every output."""
        m = self.metrics
        assert self._producer is not None
        batch, errors = self.decoder.decode_batch(
            [r.value for r in records], [header_content_type(r.headers) for r in records]
        )
        sends: list[asyncio.Future[Any]] = []
        for index, error in errors:
            sends.append(await self._dead_letter(records[index], error, source="items"))
        if batch.ids:
            started = time.perf_counter()
            try:
                decisions = self.sampler.decide(batch.X, ids=batch.ids)
            except Exception as exc:  # a model failure must not stop the stream or lose the items
                log.exception("decide failed for a batch of %d items", len(batch.ids))
                error = DecodeError("decide_failed", f"the model could not score the item: {exc!r}")
                for i in batch.index:
                    sends.append(await self._dead_letter(records[i], error, source="items"))
            else:
                m.decision_latency.observe(time.perf_counter() - started)
                m.batch_size.observe(len(batch.ids))
                sends += await self._emit(batch, decisions, [records[i] for i in batch.index])
        if sends:
            await asyncio.gather(*sends)
        now = time.time()
        for record in records:
            m.item_latency.observe(max(0.0, now - record.timestamp / 1000.0))

    async def _emit(
        self, batch: ItemBatch, decisions: Decisions, records: list[ConsumerRecord]
    ) -> list[asyncio.Future[Any]]:
        s, m, producer = self.settings, self.metrics, self._producer
        assert producer is not None
        now = time.time()
        asked = decisions.asked_indices
        if asked.size:
            # the pending item must exist before anyone can see its label request
            await self.store.put_many(
                [batch.ids[i] for i in asked], batch.X[asked], now, s.pending_ttl_seconds
            )
        sends = []
        for i in asked:
            meta = batch.meta[i]
            value = encode_label_request(
                id=batch.ids[i],
                features=batch.X[i] if s.include_features else None,
                payload_uri=meta.payload_uri,
                stream=meta.stream,
                prediction=decisions.prediction[i],
                proba=dict(zip(decisions.classes, decisions.proba[i].tolist(), strict=True)),
                scores={name: float(values[i]) for name, values in decisions.scores.items()},
                reason=decisions.reason[i],
                model_version=decisions.model_version,
                requested_at=now,
            )
            sends.append(await producer.send(s.label_requests_topic, value, key=records[i].key))
        if s.emit_predictions:
            for i, item_id in enumerate(batch.ids):
                value = encode_prediction(
                    id=item_id,
                    prediction=decisions.prediction[i],
                    confidence=float(decisions.confidence[i]),
                    model_version=decisions.model_version,
                )
                sends.append(await producer.send(s.predictions_topic, value, key=records[i].key))
        # metrics per batch, not per item
        n = len(batch.ids)
        self.counts["items"] += n
        self.counts["label_requests"] += int(asked.size)
        m.items.inc(n)
        m.label_requests.inc(int(asked.size))
        if s.emit_predictions:
            m.predictions.inc(n)
        reasons, counts = np.unique(np.asarray(decisions.reason), return_counts=True)
        for reason, count in zip(reasons.tolist(), counts.tolist(), strict=True):
            m.decisions.labels(reason=reason).inc(count)
        m.threshold.set(decisions.threshold)
        m.spend.set(self.sampler.snapshot()["spend_ratio"])
        m.model_version.set(decisions.model_version)
        return sends

    async def _dead_letter(
        self, record: ConsumerRecord, error: DecodeError, source: str
    ) -> asyncio.Future[Any]:
        assert self._producer is not None
        self.counts["dead_letters"] += 1
        self.metrics.dead_letters.labels(source=source, reason=error.reason).inc()
        log.warning(
            "dead letter from %s[%d]@%d: %s", record.topic, record.partition, record.offset, error
        )
        value = encode_dead_letter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=str(error),
            raw=record.value,
            reason=error.reason,
        )
        return await self._producer.send(self.settings.dead_letters_topic, value, key=record.key)

    # ------------------------------------------------------------------ labels

    async def _labels_loop(self, stop: asyncio.Event) -> None:
        assert self._labels is not None
        await self._consume(self._labels, 1000, self.process_labels, stop)

    async def process_labels(self, records: Sequence[ConsumerRecord]) -> None:
        """Join each label with its pending item, learn from the joined ones as one batch."""
        m = self.metrics
        now = time.time()
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        joined_records: list[ConsumerRecord] = []
        joined_ids: list[str] = []
        sends: list[asyncio.Future[Any]] = []
        for record in records:
            try:
                message = decode_label(record.value, header_content_type(record.headers))
            except DecodeError as error:
                self._count_outcome(JoinOutcome.INVALID)
                sends.append(await self._dead_letter(record, error, source="labels"))
                continue
            outcome, joined = await self.store.take(message.id, now)
            self._count_outcome(outcome)
            if joined is not None:
                rows.append(joined.features)
                labels.append(message.label)
                joined_ids.append(message.id)
                joined_records.append(record)
                m.label_delay.observe(max(0.0, now - joined.requested_at))
        if rows:
            try:
                correct = self.sampler.learn(np.vstack(rows), labels, ids=joined_ids)
            except Exception as exc:  # joined labels are claimed: keep them, never drop them
                log.exception("learning from %d joined labels failed", len(rows))
                error = DecodeError("learn_failed", f"the model could not learn the label: {exc!r}")
                for record in joined_records:
                    sends.append(await self._dead_letter(record, error, source="labels"))
            else:
                self._labelled_correct += int(np.count_nonzero(correct))
                self.counts["labels_applied"] += len(labels)
                m.accuracy.set(self._labelled_correct / self.counts["labels_applied"])
                m.model_version.set(self.sampler.model.version)
        if sends:
            await asyncio.gather(*sends)

    def _count_outcome(self, outcome: JoinOutcome) -> None:
        self.outcomes[outcome.value] += 1
        self.metrics.labels.labels(outcome=outcome.value).inc()

    # ------------------------------------------------------------------ housekeeping

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                expired = await self.store.sweep(time.time())
                self.counts["expired"] += expired
                self.metrics.pending_expired.inc(expired)
                self.pending = await self.store.pending_count()
                self.metrics.pending.set(self.pending)
            except Exception as exc:  # a store outage must not stop deciding
                log.warning("pending sweep failed: %s", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_SWEEP_SECONDS)

    async def _commit(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance took the partition away: its new owner re-decides (at-least-once)
            log.warning("commit of %s failed: %s", offsets, exc)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        snapshot = self.sampler.snapshot()
        applied = self.counts["labels_applied"]
        return {
            "ready": self.consuming,
            "uptime_s": round(time.time() - self.started_at, 3),
            "items_seen": self.counts["items"],
            "label_requests": self.counts["label_requests"],
            "labels_applied": applied,
            "join_outcomes": dict(self.outcomes),
            "dead_letters": self.counts["dead_letters"],
            "pending": self.pending,
            "expired": self.counts["expired"],
            "budget": snapshot["budget"],
            "spend": (self.counts["label_requests"] / self.counts["items"]) if self.counts["items"] else 0.0,
            "spend_ratio": snapshot["spend_ratio"],
            "threshold": snapshot["threshold"],
            "strategy": snapshot["strategy"],
            "policy": snapshot["policy"],
            "promise": snapshot["promise"],
            "in_flight": snapshot["in_flight"],
            "drifts": snapshot["drifts"],
            "asked_by_reason": snapshot["asked_by_reason"],
            "model": getattr(self.sampler.model, "spec", type(self.sampler.model).__name__),
            "model_version": self.sampler.model.version,
            "classes": [str(c) for c in self.sampler.model.classes],
            "labelled_accuracy": (self._labelled_correct / applied) if applied else None,
            "error": self.error,
        }
