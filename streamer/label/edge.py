"""The Kafka side every labelling edge shares: read label requests, write labels.

An edge (the Label Studio bridge, the built-in page) reads ``label-requests`` in its own consumer
group and writes ``labels`` with the same Settings as ``streamer run``. Nothing is lost:

- a request's offset is committed only once the edge finished it (a task exists, a label was
  sent, it was skipped, or it is older than the pending TTL and the service forgot the item);
- a request that cannot be read becomes a dead letter with the reason, and is finished;
- a label is acknowledged by the broker before the request counts as answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streamer.config import Settings
from streamer.kafka.client import client_kwargs, ensure_topics
from streamer.kafka.groups import GroupWatch, broker_group_timeouts
from streamer.label.offsets import OpenOffsets
from streamer.label.requests import LabelRequest, decode_label_request
from streamer.wire import DecodeError, encode_dead_letter, encode_label, header_content_type

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 86400)
_COMMIT_SECONDS = 1.0


class EdgeMetrics:
    """The metrics of one labelling edge (``streamer_labelling_*``), in their own registry."""

    def __init__(self, edge: str, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.edge = edge
        self.requests = Counter("streamer_labelling_requests_total",
                                "Label requests read (redeliveries of one item counted once).", registry=r)
        self.dead_letters = Counter("streamer_labelling_dead_letters_total",
                                    "Label requests or annotations sent to the dead-letter topic.",
                                    ["reason"], registry=r)
        self.tasks = Counter("streamer_labelling_tasks_created_total",
                             "Label Studio tasks created (one per item id).", registry=r)
        self.annotations = Counter("streamer_labelling_annotations_total",
                                   "Answers received, by event: created, updated, deleted, skipped.",
                                   ["event"], registry=r)
        self.labels = Counter("streamer_labelling_labels_sent_total",
                              "Labels written to the labels topic: first answers and corrections.",
                              ["kind"], registry=r)
        self.expired = Counter("streamer_labelling_expired_total",
                               "Requests dropped unanswered after the pending TTL.", registry=r)
        self.queue = Gauge("streamer_labelling_queue_depth",
                           "Requests read and not yet answered.", registry=r)
        self.latency = Histogram("streamer_labelling_request_to_label_seconds",
                                 "From the request (requested_at) to its first label on the topic.",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("streamer_labelling_upstream_errors_total",
                                       "Failed calls to the annotation tool (retried).", registry=r)
        self.ready = Gauge("streamer_labelling_ready", "1 when the edge reads requests and its "
                           "annotation tool answers.", registry=r)


@dataclass(slots=True)
class ReadRequest:
    """A request with where it was read from (its offset is committed once it is finished)."""

    partition: TopicPartition
    offset: int
    request: LabelRequest


class LabelEdge:
    """Reads label requests and writes labels for one edge (``name``) on ``settings``."""

    def __init__(self, settings: Settings, name: str, metrics: EdgeMetrics | None = None) -> None:
        self.settings = settings
        self.name = name
        self.group_id = settings.label_group_id or f"streamer-{name}"
        self.metrics = metrics or EdgeMetrics(name)
        self.offsets: OpenOffsets[TopicPartition] = OpenOffsets()
        self.watch: GroupWatch | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._last_commit = 0.0
        self.labels_sent = 0

    async def start(self) -> None:
        client = client_kwargs(self.settings)
        if self.settings.create_topics:
            await ensure_topics(self.settings)
        self._producer = AIOKafkaProducer(**client, acks="all", linger_ms=5)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id, **client, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **await broker_group_timeouts(self.settings.session_timeout_ms, client))
        self.watch = GroupWatch(self.name, self.group_id, [self.settings.label_requests_topic], log,
                                before_revoke=self._before_revoke)
        self._consumer.subscribe([self.settings.label_requests_topic], listener=self.watch)
        self.watch.started()
        await self._consumer.start()

    async def _before_revoke(self, revoked: list[TopicPartition]) -> None:
        """Partitions move: commit what is finished; their next owner re-reads what is open."""
        await self.commit()
        self.offsets.forget(revoked)

    @property
    def joined(self) -> bool:
        return bool(self.watch and self.watch.partitions)

    async def stop(self, timeout: float = 15.0) -> None:
        """Commit what is finished and stop the clients; a broker that does not answer within
        ``timeout`` seconds must not keep a stopping edge alive (what is not committed is read
        again by the next edge: nothing is lost)."""
        if self.watch is not None:
            self.watch.stop()
        try:
            await asyncio.wait_for(self._stop_clients(), timeout)
        except TimeoutError:
            log.warning("%s: the Kafka clients did not stop in %.0f s; exiting anyway", self.name, timeout)

    async def _stop_clients(self) -> None:
        if self._consumer is not None:
            await self.commit()
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def read(self, timeout_ms: int = 200, max_records: int = 500) -> list[ReadRequest]:
        """The next valid requests; bad ones go to the dead-letter topic (and are finished)."""
        assert self._consumer is not None, "start() first"
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        read = []
        for partition, records in batches.items():
            for record in records:
                self.offsets.opened(partition, record.offset)
                try:
                    request = decode_label_request(record.value, header_content_type(record.headers),
                                                   self.settings.max_message_bytes)
                except DecodeError as exc:
                    await self.dead_letter(partition, record.offset, exc, record.value)
                    self.offsets.finished(partition, record.offset)
                    continue
                read.append(ReadRequest(partition, record.offset, request))
        if read:
            self.metrics.requests.inc(len(read))
        return read

    def finished(self, done: ReadRequest) -> None:
        self.offsets.finished(done.partition, done.offset)

    def expired(self, request: LabelRequest, now: float | None = None) -> bool:
        """Whether the service has forgotten the item (its pending TTL passed): a label now
        would only be counted ``late``."""
        age = (now or time.time()) - request.requested_at
        return request.requested_at > 0 and age > self.settings.pending_ttl_seconds

    async def commit(self, force: bool = True) -> None:
        """Commit the offsets every request below which is finished (at most once a second
        unless ``force``)."""
        if self._consumer is None or (not force and time.monotonic() - self._last_commit < _COMMIT_SECONDS):
            return
        self._last_commit = time.monotonic()
        offsets = self.offsets.committable()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # the partition moved: its new owner re-reads from the last commit (no loss)
            log.warning("%s: commit of %s failed: %s", self.name, offsets, exc)

    async def send_label(self, request: LabelRequest | None, item_id: str, label: str | int,
                         annotator: str | None, correction: bool = False,
                         requested_at: float | None = None) -> None:
        """Write one label and wait for the broker's acknowledgement. The request-to-label
        latency is measured from ``requested_at`` (else the request's) for first answers."""
        assert self._producer is not None, "start() first"
        now = time.time()
        await self._producer.send_and_wait(
            self.settings.labels_topic, encode_label(item_id, label, annotator=annotator, ts=now),
            key=item_id.encode())
        self.labels_sent += 1
        self.metrics.labels.labels(kind="correction" if correction else "first").inc()
        if requested_at is None and request is not None:
            requested_at = request.requested_at
        if requested_at and not correction:
            self.metrics.latency.observe(max(0.0, now - requested_at))

    async def dead_letter(self, partition: TopicPartition | None, offset: int, error: DecodeError | str,
                          raw: bytes | None, reason: str | None = None) -> None:
        """Send what cannot be used to the dead-letter topic, with the reason."""
        assert self._producer is not None, "start() first"
        reason = reason or (error.reason if isinstance(error, DecodeError) else "bad_annotation")
        log.warning("%s: dead letter (%s): %s", self.name, reason, error)
        await self._producer.send_and_wait(
            self.settings.dead_letters_topic,
            encode_dead_letter(partition.topic if partition else self.name,
                               partition.partition if partition else -1, offset, error, raw,
                               reason=reason))
        self.metrics.dead_letters.labels(reason=reason).inc()

    def status(self) -> dict[str, Any]:
        return {"group": self.watch.status() if self.watch else None,
                "open_requests": self.offsets.open_count(), "labels_sent": self.labels_sent}


async def keep_committing(edge: LabelEdge, stop: asyncio.Event) -> None:
    """Commit finished offsets once a second until ``stop``."""
    while not stop.is_set():
        await edge.commit(force=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=_COMMIT_SECONDS)
