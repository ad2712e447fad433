"""The aiokafka service loop: items -> decide -> label requests / predictions, labels -> join -> learn.

Items: offsets are committed only after the broker acknowledged every output of their
micro-batch (the next batches are decided meanwhile), in the background and at most every
``_COMMIT_SECONDS``, so a crash re-decides at most the batches in flight and those since the last commit returned
(at-least-once; label requests and predictions carry the item id, so consumers can drop the
duplicates).

Labels, exactly once: a label *claims* its pending item, the sampler learns it, and every
``checkpoint_every_labels`` labels or ``checkpoint_every_seconds`` (and at shutdown) one atomic
store commit writes the signed checkpoint -- sampler with its model, the next label offset of
every partition, counters -- together with the applied ids. A restarted service restores the
checkpoint and reads labels again from its offsets; the items it claimed but had not committed
are claimed again (same partition = same owner), the committed ones are duplicates. Label
offsets are also committed to Kafka after each checkpoint, for lag tools only.

Degraded mode (the pending store fails, e.g. Redis down): items keep being decided and
predicted, but no label is requested (the budget of those items is forfeited, not caught up
later), labels wait in Kafka (their batch is retried), ``/readyz`` answers 503, and everything
resumes when the store answers again. Pending items already stored are kept.

Backpressure: at most ``max_pending`` items wait for labels; beyond that no label is
requested and the budget of those items is forfeited (annotators who are behind are not
sent more work, and no burst of requests follows when they catch up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from redis.exceptions import RedisError

from streamer.config import Settings
from streamer.core.decisions import Decisions
from streamer.core.sampler import Sampler
from streamer.kafka.client import client_kwargs, ensure_topics
from streamer.kafka.groups import GroupWatch, broker_group_timeouts
from streamer.kafka.label_positions import LabelPartitions
from streamer.kafka.produce import BulkProducer, encode_predictions
from streamer.metrics import Metrics, observe_many
from streamer.store.base import JoinOutcome, LeaseLostError, PendingStore
from streamer.store.checkpoint import Checkpoint, CheckpointError, dumps, loads
from streamer.store.coordination import BudgetLedger, LearnerLease, LedgerTotals, ModelBoard
from streamer.store.errors import StoreRefusedError, refusal, refused
from streamer.wire import (
    DecodeError,
    ItemBatch,
    ItemDecoder,
    canonical_label,
    decode_label,
    encode_dead_letter,
    encode_label_request,
    header_content_type,
)

log = logging.getLogger(__name__)

_SWEEP_SECONDS = 2.0
_MAX_BATCH_BYTES = 256 * 1024  # a record batch per partition and micro-batch, not dozens
_MAX_REQUEST_BYTES = 1_048_576  # aiokafka's default: larger outputs are shrunk or dead letters
_MAX_UNACKED_BATCHES = 8  # items micro-batches produced but not yet acknowledged
_COMMIT_SECONDS = 0.0  # acked items offsets are committed as soon as the last commit returned
_REVOKE_WAIT_SECONDS = 5.0  # a rebalance waits this long at most for the outputs in flight
_LEARN_SLICE_SECONDS = 0.005  # learning yields to the items loop this often
_LEARN_SLICE_MAX = 4096
_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)  # backoff while the store is down
_LEDGER_SECONDS = 0.25  # replicas add their spend to the shared budget this often
# what a failing store raises (redis-py errors, sockets, timeouts)
STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


__all__ = ["Service", "StoreRefusedError"]


class _Stopped(Exception):
    """Raised out of a store retry when the service is stopping."""


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
        *,
        checkpoint: Checkpoint | None = None,
        checkpoint_key: bytes | None = None,
        sampler_config: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.metrics = metrics or Metrics()
        self.decoder = ItemDecoder(n_features=settings.n_features, max_bytes=settings.max_message_bytes)
        self.started_at = time.time()
        self.consuming = False
        self.stopping = False
        self.error: str | None = None
        self.counts: dict[str, int] = defaultdict(int)
        self.outcomes: dict[str, int] = {outcome.value: 0 for outcome in JoinOutcome}
        self.pending = 0
        self.http_port: int | None = None  # set by streamer.app.serve
        self._stop = asyncio.Event()  # replaced by the one run() gets
        self._labelled_correct = 0
        self._producer: AIOKafkaProducer | None = None
        self._items: AIOKafkaConsumer | None = None
        self._labels: AIOKafkaConsumer | None = None
        self._label_partitions: LabelPartitions | None = None
        # what the consumers hold, for /status and the "joined after N s" log lines
        declared = settings.declared_classes
        self._declared_classes = None if declared is None else {canonical_label(name) for name in declared}
        # before a rebalance moves items partitions: commit what the broker acknowledged, so their
        # next owner does not decide those items again
        self.items_watch = GroupWatch("items", settings.group_id, [settings.items_topic], log,
                                      before_revoke=lambda _: self.commit_acknowledged())
        self.labels_watch = GroupWatch("labels", None, [settings.labels_topic], log)
        self._bulk: BulkProducer | None = None
        # items batches whose outputs are not acknowledged yet (in order), and their offsets
        self._unacked: deque[tuple[asyncio.Future[Any], dict[TopicPartition, int]]] = deque()
        self._acked: dict[TopicPartition, int] = {}  # acked, not committed yet
        self._committing: asyncio.Task[None] | None = None
        self._last_commit = time.monotonic()
        self._learn_slice = 8  # labels learned between two yields; adapts to the model's speed
        self.metrics.budget.set(sampler.budget)
        # checkpoints
        self.durable = bool(getattr(store, "durable", False)) and checkpoint_key is not None
        self._key = checkpoint_key
        self._sampler_config = dict(sampler_config or {})
        self._positions: dict[TopicPartition, int] = {}  # next label offset, learned in memory
        self._uncommitted: dict[str, None] = {}  # ids learned, not yet committed with a checkpoint
        self._sequence = 0
        self._last_checkpoint = time.monotonic()
        self._dirty = False
        self._checkpoint_lock = asyncio.Lock()
        self.restored: int | None = None  # sequence of the checkpoint restored at start
        # degraded mode and backpressure
        self.degraded: dict[str, str] = {}  # component -> error
        self._asked_since_sweep = 0
        # scale-out: one learner (the lease holder), scorers pick up the models it publishes
        self.role = settings.role
        self.learning = False  # this replica consumes labels and learns now
        self._lease: LearnerLease | None = None
        self._board: ModelBoard | None = None
        self._ledger: BudgetLedger | None = None
        client = getattr(store, "client", None)
        if client is not None and self.durable:
            token = settings.group_instance_id or (
                f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            )
            prefix = settings.redis_prefix
            self._lease = LearnerLease(client, prefix, token, settings.learner_lease_seconds)
            self._board = ModelBoard(client, prefix)
            if settings.global_budget and self.role != "learner":
                self._ledger = BudgetLedger(client, prefix, token)
        self.ledger: LedgerTotals | None = None  # the shared budget as of the last sync
        self._model_sequence: int | None = None  # publication in use (or last published)
        self._published_version: int | None = None
        self._last_publish = 0.0
        self._keeper: asyncio.Task[None] | None = None  # renews the lease while we hold it
        if checkpoint is not None:
            self._restore(checkpoint)
        ctl = sampler.controller
        # the ledger gets what this process decides; what a restored controller counted
        # before was added by the process that decided it
        self._pushed = (0.0, 0)
        self._counted_at_start = (ctl.planned, ctl.asked)

    def _restore(self, checkpoint: Checkpoint) -> None:
        self._positions = {TopicPartition(t, p): o for (t, p), o in checkpoint.label_offsets.items()}
        self.counts["labels_applied"] = checkpoint.applied
        self._labelled_correct = checkpoint.correct
        for outcome, count in checkpoint.outcomes.items():
            self.outcomes[outcome] = count
        self._sequence = self.restored = checkpoint.sequence
        log.info(
            "restored checkpoint %d (%d labels applied, model version %d, label offsets %s)",
            checkpoint.sequence, checkpoint.applied, self.sampler.model.version,
            {f"{tp.topic}[{tp.partition}]": o for tp, o in self._positions.items()},
        )

    @property
    def ready(self) -> bool:
        """Consuming, not stopping, and not degraded: what ``/readyz`` reports."""
        return self.consuming and not self.stopping and not self.degraded

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        s = self.settings
        common = client_kwargs(s)
        if s.create_topics:
            await ensure_topics(s)
        self._producer = AIOKafkaProducer(
            **common, linger_ms=2, acks="all", max_batch_size=_MAX_BATCH_BYTES,
            max_request_size=_MAX_REQUEST_BYTES,
        )
        self._bulk = BulkProducer(self._producer, _MAX_REQUEST_BYTES)
        consumer_kwargs = dict(
            **common,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            **await broker_group_timeouts(s.session_timeout_ms, common),
        )
        instance = s.group_instance_id
        self._consumer_kwargs = consumer_kwargs
        await self._producer.start()
        # the learner reads labels before items flow, so the first items' labels are learned
        if self.role != "scorer" and await self._try_lease():
            await self._become_learner()
        if self.role != "learner":
            if not self.learning:
                await self._refresh_model()  # a scorer starts with the learner's newest model
            self._items = AIOKafkaConsumer(
                group_id=s.group_id, max_poll_records=s.max_batch,
                group_instance_id=instance, **consumer_kwargs,
            )
            self._items.subscribe([s.items_topic], listener=self.items_watch)
            # started by the items loop: aiokafka's start() waits for the group's first
            # assignment, which must not hold up the labels (a restart after kill -9 waits
            # for the dead member's session to expire; labels need no group)

    async def _start_labels(self) -> None:
        """Read every partition of the labels topic, without joining a group.

        One replica learns at a time (the learner lease, or a single process), so no group
        has to share the labels out, and a restarted or standby learner need not wait for a
        dead member's session to expire: it reads labels within a second of starting. The
        group id only keeps committed offsets (the in-process store's progress).
        """
        s = self.settings
        self._labels = AIOKafkaConsumer(group_id=f"{s.group_id}-labels", **self._consumer_kwargs)
        await self._labels.start()
        self._label_partitions = LabelPartitions(self._labels, s.labels_topic, self._positions,
                                                 client_kwargs(s))
        self.labels_watch.assigned_manually(await self._label_partitions.assign())

    def attach_producer(self, producer: AIOKafkaProducer, max_request_size: int = _MAX_REQUEST_BYTES) -> None:
        """Produce through a producer another runtime started and owns (the Faust integration
        feeds :meth:`process_items` and :meth:`process_labels` from its own consumer)."""
        self._producer = producer
        self._bulk = BulkProducer(producer, max_request_size)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand, flush and commit."""
        await self.start()
        tasks = [
            asyncio.create_task(self._learner_loop(stop), name="learner"),
            asyncio.create_task(self._sweep_loop(stop), name="sweep"),
        ]
        if self._items is not None:
            tasks.append(asyncio.create_task(self._items_loop(stop), name="items"))
        if self._board is not None:
            tasks.append(asyncio.create_task(self._model_loop(stop), name="model"))
        if self._ledger is not None:
            tasks.append(asyncio.create_task(self._ledger_loop(stop), name="ledger"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self.error = repr(task.exception())
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.stopping = True
            stop.set()
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        """Finish the batches in hand, checkpoint, flush and close -- within the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout_seconds
        _, late = await asyncio.wait(tasks, timeout=max(0.1, deadline - loop.time() - 2.0))
        for task in late:  # a batch stuck on a dead dependency: its offsets stay uncommitted
            log.warning("shutdown: %s did not finish its batch in time; cancelling it", task.get_name())
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        if self.durable:
            try:
                await asyncio.wait_for(
                    self.checkpoint("shutdown"), timeout=max(0.1, deadline - loop.time())
                )
            except (TimeoutError, _Stopped):
                log.error("shutdown: the final checkpoint did not finish in time; the labels "
                          "since the last one will be re-read from Kafka at the next start")
        await asyncio.wait_for(self.close(), timeout=max(1.0, deadline - loop.time()))

    async def close(self) -> None:
        self.consuming = False
        self.metrics.ready.set(0)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLostError):
                await self._keeper
        if self.learning and self._lease is not None:
            with contextlib.suppress(*STORE_ERRORS):  # a standby takes over at once
                await self._lease.release()
            self.learning = False
            self.metrics.learner.set(0)
        self.items_watch.stop()
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
        self.items_watch.started()
        joining = asyncio.ensure_future(self._items.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not joining.done():  # stopped before the group gave this replica partitions
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await joining
            return
        joining.result()  # raises a failed start (the broker refused us)
        await self._consume(self._items, self.settings.max_batch, self.process_items, stop)

    async def _consume(
        self,
        consumer: AIOKafkaConsumer,
        max_records: int,
        process: Callable[[list[ConsumerRecord]], Awaitable[list[asyncio.Future[Any]] | None]],
        stop: asyncio.Event,
        commit: bool = True,
    ) -> None:
        """Micro-batches from ``getmany``; offsets are committed once every output is acked.

        ``process`` may return the ack futures of its outputs instead of awaiting them: the
        next batch is then decided while the broker acknowledges this one (at most
        ``_MAX_UNACKED_BATCHES`` in flight), and the offsets are committed in batch order once
        the acks are in.
        """
        self._stop = stop
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
                if consumer is self._items and not self.consuming and consumer.assignment():
                    self.consuming = True
                    self.metrics.ready.set(1)
                if consumer is self._items:
                    self._reap()
                    self._commit_acked(consumer)
                elif self._label_partitions is not None and (
                        reassigned := await self._label_partitions.refresh()) is not None:
                    self.labels_watch.assigned_manually(reassigned)
                if not batches:
                    continue
                try:
                    acks = await process([r for partition in batches.values() for r in partition])
                except _Stopped:
                    return  # stopping while the store was down: nothing committed, re-read later
                if commit:
                    offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs}
                    if acks is None:  # process waited for its outputs itself
                        await self._commit(consumer, offsets)
                    else:
                        await self._commit_after(consumer, acks, offsets)
        finally:
            if consumer is self._items:  # stopping: the batches in hand are acked and committed
                await self._drain(consumer)

    async def _commit_after(
        self, consumer: AIOKafkaConsumer, acks: list[asyncio.Future[Any]], offsets: dict[TopicPartition, int]
    ) -> None:
        """Track a batch whose ``offsets`` may be committed once its ``acks`` resolved (and every
        earlier batch's); commit what is acked at most every ``_COMMIT_SECONDS``, in the
        background. A commit per micro-batch would put a broker round trip on every batch."""
        pending: asyncio.Future[Any] = asyncio.gather(*acks)  # done at once when there are none
        self._unacked.append((pending, offsets))
        while len(self._unacked) > _MAX_UNACKED_BATCHES:
            await asyncio.wait([self._unacked[0][0]])
            self._reap()
        self._reap()
        self._commit_acked(consumer)

    def _reap(self) -> None:
        """Move acked batches (in order) to the offsets to commit; a failed one (outputs not
        acknowledged) stops the service."""
        while self._unacked and self._unacked[0][0].done():
            pending, offsets = self._unacked.popleft()
            if not pending.cancelled() and pending.exception() is not None:
                raise pending.exception()  # type: ignore[misc]
            self._acked.update(offsets)

    def _commit_acked(self, consumer: AIOKafkaConsumer) -> None:
        due = time.monotonic() - self._last_commit >= _COMMIT_SECONDS
        busy = self._committing is not None and not self._committing.done()
        if self._acked and due and not busy:
            offsets, self._acked = self._acked, {}
            self._last_commit = time.monotonic()
            self._committing = asyncio.create_task(self._commit(consumer, offsets), name="commit")

    async def commit_acknowledged(self, wait_s: float = _REVOKE_WAIT_SECONDS) -> None:
        """A rebalance takes partitions away: wait (at most ``wait_s``) for the outputs in
        flight, then commit every offset acknowledged. What is still unacknowledged is decided
        again by the next owner (at-least-once), never lost."""
        consumer = self._items
        if consumer is None:
            return
        if self._unacked:
            await asyncio.wait([pending for pending, _ in self._unacked], timeout=wait_s)
        try:
            self._reap()
        except Exception as exc:  # outputs the broker refused: the items loop stops on them
            log.warning("outputs failed before a rebalance: %s", exc)
            return
        if self._committing is not None and not self._committing.done():
            await asyncio.wait([self._committing], timeout=wait_s)
        if self._acked:
            offsets, self._acked = self._acked, {}
            await self._commit(consumer, offsets)

    async def _drain(self, consumer: AIOKafkaConsumer) -> None:
        """Stopping: wait for the outputs in flight, then commit everything acked."""
        if self._unacked:
            await asyncio.wait([pending for pending, _ in self._unacked])
        self._reap()
        if self._committing is not None:
            await asyncio.wait([self._committing])
        if self._acked:
            offsets, self._acked = self._acked, {}
            await self._commit(consumer, offsets)

    async def process_items(self, records: Sequence[ConsumerRecord]) -> list[asyncio.Future[Any]]:
        """Decide one micro-batch and queue its outputs; return their ack futures."""
        m = self.metrics
        assert self._producer is not None
        batch, errors = self.decoder.decode_batch(
            [r.value for r in records],
            [header_content_type(r.headers) if r.headers else None for r in records],
            [r.key for r in records],
        )
        sends: list[asyncio.Future[Any]] = []
        for index, error in errors:
            sends.append(await self._dead_letter(records[index], error, source="items"))
        if batch.ids:
            started = time.perf_counter()
            try:
                decisions = self.sampler.decide(batch.X, ids=batch.ids, capacity=self._capacity())
            except Exception as exc:  # a model failure must not stop the stream or lose the items
                log.exception("decide failed for a batch of %d items", len(batch.ids))
                error = DecodeError("decide_failed", f"the model could not score the item: {exc!r}")
                for i in batch.index:
                    sends.append(await self._dead_letter(records[i], error, source="items"))
            else:
                m.decision_latency.observe(time.perf_counter() - started)
                m.batch_size.observe(len(batch.ids))
                m.observe_scores(decisions.scores)  # the dashboard's score heatmap
                sends += await self._emit(batch, decisions, [records[i] for i in batch.index])
        stamps = np.fromiter((r.timestamp for r in records), dtype=np.float64, count=len(records)) / 1000.0
        self._observe_latency_when_acked(stamps, sends)
        return sends

    def _observe_latency_when_acked(self, stamps: np.ndarray, sends: list[asyncio.Future[Any]]) -> None:
        """Item timestamp to the broker's acknowledgement of the item's outputs (what
        streamer_item_latency_seconds says); items with no output count at their decision."""
        histogram = self.metrics.item_latency
        if not sends:
            observe_many(histogram, np.maximum(0.0, time.time() - stamps))
            return

        def acked(outputs: asyncio.Future[Any]) -> None:
            if not outputs.cancelled() and outputs.exception() is None:  # failures are reported elsewhere
                observe_many(histogram, np.maximum(0.0, time.time() - stamps))

        asyncio.gather(*sends).add_done_callback(acked)

    async def _emit(
        self, batch: ItemBatch, decisions: Decisions, records: list[ConsumerRecord]
    ) -> list[asyncio.Future[Any]]:
        s, m, bulk = self.settings, self.metrics, self._bulk
        assert bulk is not None
        now = time.time()
        asked = decisions.asked_indices
        if asked.size:
            # the pending item must exist before anyone can see its label request
            try:
                known = await self.store.put_many(
                    [batch.ids[i] for i in asked], batch.X[asked], now, s.pending_ttl_seconds
                )
            except STORE_ERRORS as exc:
                self._degrade("store", exc)
                self.sampler.cancel(decisions, asked.tolist(), batch.ids)
                self.counts["requests_cancelled"] += int(asked.size)
                m.requests_cancelled.inc(int(asked.size))
            else:
                if known:  # decided again after a restart, and its label is already here
                    known_set = set(known)
                    again = [i for i in asked if batch.ids[i] in known_set]
                    self.sampler.cancel(decisions, again, batch.ids)
                    self.counts["not_reasked"] += len(known)
                self._asked_since_sweep += int(asked.size) - len(known)
            asked = decisions.asked_indices
        self._dirty = True
        sends: list[asyncio.Future[Any]] = []
        if asked.size:
            sends += await self._send_requests(batch, decisions, records, asked.tolist(), now)
        if s.emit_predictions:
            values = encode_predictions(
                batch.ids, decisions.prediction, decisions.confidence, decisions.model_version
            )
            futures, refused = await bulk.send_many(
                s.predictions_topic, [r.key for r in records], values, [r.partition for r in records]
            )
            sends += futures
            for i in refused:
                error = DecodeError("output_too_large", "the prediction is too large for the producer")
                sends.append(await self._dead_letter(records[i], error, source="items"))
        # metrics per batch, not per item
        n = len(batch.ids)
        self.counts["items"] += n
        self.counts["label_requests"] += int(asked.size)
        m.items.inc(n)
        m.label_requests.inc(int(asked.size))
        if s.emit_predictions:
            m.predictions.inc(n)
        for reason, count in Counter(decisions.reason).items():
            m.decisions.labels(reason=reason).inc(count)
        m.threshold.set(decisions.threshold)
        m.spend.set(self.sampler.controller.spend_ratio)
        m.model_version.set(decisions.model_version)
        return sends

    async def _send_requests(
        self,
        batch: ItemBatch,
        decisions: Decisions,
        records: list[ConsumerRecord],
        asked: list[int],
        now: float,
    ) -> list[asyncio.Future[Any]]:
        """Label requests for the asked rows, in bulk; too large with features: without them
        (they stay in the pending store); too large even then: a dead letter."""
        s, bulk = self.settings, self._bulk
        assert bulk is not None
        leader = getattr(self.sampler.model, "leader", None)

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

        sends: list[asyncio.Future[Any]] = []
        rows, with_features = asked, s.include_features
        while rows:
            futures, refused = await bulk.send_many(
                s.label_requests_topic,
                [records[i].key for i in rows],
                [request(i, with_features) for i in rows],
                [records[i].partition for i in rows],
            )
            sends += futures
            rows = [rows[j] for j in refused]
            if rows and not with_features:
                for i in rows:
                    error = DecodeError("output_too_large", "the label request is too large for the producer")
                    sends.append(await self._dead_letter(records[i], error, source="items"))
                break
            with_features = False
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

    # ------------------------------------------------------------------ roles

    async def _learner_loop(self, stop: asyncio.Event) -> None:
        """Learn when this replica may: at once in one process, else while holding the lease."""
        if self.role == "scorer":
            return
        period = 1.0 if self._lease is None else self._lease.seconds / 3.0
        while not self.learning and not stop.is_set():  # a standby: wait for the lease
            if await self._try_lease():
                await self._become_learner()
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
        if not self.learning:
            return
        labels = asyncio.create_task(self._labels_loop(stop), name="labels")
        try:
            waiting = {labels} if self._keeper is None else {labels, self._keeper}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self._keeper in done:
                self._keeper.result()  # raises LeaseLostError
            await labels
        finally:
            if not labels.done():
                labels.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await labels

    async def hold_learner_lease(self) -> bool:
        """Become the learner without consuming labels (e.g. to checkpoint a model trained
        offline); True when this replica holds the lease. :meth:`close` gives it back."""
        if not self.learning and await self._try_lease():
            self.learning = True
        return self.learning

    async def _try_lease(self) -> bool:
        """Take the learner lease if it is free (always True without a shared store)."""
        if self._lease is None:
            return True
        try:
            held = await self._lease.acquire()
        except STORE_ERRORS as exc:
            self._degrade("store", exc)
            return False
        if held:
            self._keeper = asyncio.create_task(self._keep_lease(), name="lease")
        return held

    async def _keep_lease(self) -> None:
        """Renew the lease until the service closes; raise when another replica took it."""
        assert self._lease is not None
        while True:
            await asyncio.sleep(self._lease.seconds / 3.0)
            if not await self._renew():
                raise LeaseLostError(
                    f"the learner lease {self._lease.key} was lost (another replica holds it): "
                    "this replica stops so that only one model learns; restart it"
                )

    async def _renew(self) -> bool:
        """Renew the lease; False only when another replica holds it.

        While Redis is down nobody can take the lease over, and nothing we write lands
        (checkpoints are fenced): the lease is renewed -- or taken again -- once it answers.
        """
        assert self._lease is not None
        try:
            return await self._lease.renew()
        except STORE_ERRORS as exc:
            self._degrade("store", exc)
            return True

    async def _become_learner(self) -> None:
        """Take over from the newest checkpoint, then consume labels from its offsets."""
        if self._lease is not None:  # a lease exists only with a durable store and a key
            assert self._key is not None
            blob = await self._store_retry(self.store.load_checkpoint)
            if blob is not None:
                checkpoint = loads(blob, self._key)
                if checkpoint.sequence > self._sequence:  # written after the one we started from
                    self._take_over(checkpoint)
        self.learning = True
        self.metrics.learner.set(1)
        log.info("learning (role %s): labels from %s", self.role, self.settings.labels_topic)
        await self._start_labels()
        if self.role == "learner":
            self.consuming = True
            self.metrics.ready.set(1)
        await self._publish_model(force=True)

    def _take_over(self, checkpoint: Checkpoint) -> None:
        spec = getattr(self.sampler.model, "spec", None)
        if spec is not None and checkpoint.model_spec != spec:
            raise CheckpointError(
                f"the newest checkpoint holds model {checkpoint.model_spec!r}, this replica "
                f"runs {spec!r}: every replica of a deployment must run the same --model"
            )
        self.sampler.use_model(checkpoint.sampler.model)
        self._restore(checkpoint)

    # ------------------------------------------------------------------ model versions

    async def _model_loop(self, stop: asyncio.Event) -> None:
        """The learner publishes new versions; the other replicas pick them up."""
        period = self.settings.model_staleness_seconds / 4.0
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
            if stop.is_set():
                return
            if self.learning:
                await self._publish_model()
            elif self.role != "learner":
                await self._refresh_model()

    async def _publish_model(self, force: bool = False) -> None:
        """Publish the model if it changed, at most every half staleness bound."""
        if self._board is None or not self.learning:
            return
        model = self.sampler.model
        now = time.monotonic()
        if not force and (
            model.version == self._published_version
            or now - self._last_publish < self.settings.model_staleness_seconds / 2.0
        ):
            return
        assert self._key is not None
        blob = model.to_bytes(self._key)
        try:
            fence = None if self._lease is None else self._lease.fence()
            self._model_sequence = await self._board.publish(model.version, blob, fence=fence)
        except STORE_ERRORS as exc:
            self._degrade("store", exc)
            return
        except LeaseLostError:
            log.error("model version %d not published: another replica took the learner lease over",
                      model.version)
            self.learning = False
            self.metrics.learner.set(0)
            return
        self._published_version, self._last_publish = model.version, now
        log.debug("published model version %d (%d bytes)", model.version, len(blob))

    async def _refresh_model(self) -> None:
        """Use the learner's newest published model, if it is not the one in use."""
        if self._board is None:
            return
        try:
            latest = await self._board.latest()
            if latest is None or latest.sequence == self._model_sequence:
                return
            published = await self._board.fetch()
        except STORE_ERRORS as exc:
            self._degrade("store", exc)
            return
        if published is None or published.blob is None:
            return
        assert self._key is not None
        try:
            model = type(self.sampler.model).from_bytes(published.blob, self._key)
            self.sampler.use_model(model)
        except ValueError as exc:  # refused (signature, width): keep scoring with ours
            log.error("the published model version %d was refused: %s", published.version, exc)
            self._model_sequence = published.sequence  # not retried until the next one
            return
        self._model_sequence = published.sequence
        self.metrics.model_staleness.observe(max(0.0, time.time() - published.published_at))
        self.metrics.model_version.set(model.version)

    # ------------------------------------------------------------------ the shared budget

    async def _ledger_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._sync_budget()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_LEDGER_SECONDS)
        await self._sync_budget()  # the last batches count too

    async def _sync_budget(self) -> None:
        """Add this replica's spend to the ledger; steer by its share of the others' deficit."""
        assert self._ledger is not None
        ctl = self.sampler.controller
        (planned0, asked0), (pushed_planned, pushed_asked) = self._counted_at_start, self._pushed
        planned = ctl.planned - planned0 - pushed_planned
        asked = ctl.asked - asked0 - pushed_asked
        try:
            totals = await self._ledger.sync(planned, asked)
        except STORE_ERRORS as exc:
            self._degrade("store", exc)
            return
        self._pushed = (pushed_planned + planned, pushed_asked + asked)
        # the controller already counts its own deficit, including what a restored checkpoint
        # carried (which the process before us added to the ledger): the rest is the others'
        others = totals.deficit - (ctl.planned - ctl.asked)
        ctl.external = others / totals.replicas
        self.ledger = totals
        self.metrics.budget_replicas.set(totals.replicas)
        if totals.planned > 0:
            self.metrics.global_spend.set(totals.asked / totals.planned)

    # ------------------------------------------------------------------ labels

    async def _labels_loop(self, stop: asyncio.Event) -> None:
        assert self._labels is not None
        watch = None
        if self._label_partitions is not None:
            watch = asyncio.create_task(self._label_partitions.watch_losses(stop), name="label-logs")
        try:
            await self._consume(self._labels, 1000, self.process_labels, stop, commit=not self.durable)
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def process_labels(self, records: Sequence[ConsumerRecord]) -> None:
        """Claim each label's pending item, learn the joined ones as one batch.

        With checkpoints the applied ids are committed later, with the checkpoint whose model
        learned them; without (in-process store), right away.
        """
        m = self.metrics
        now = time.time()
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        joined_records: list[ConsumerRecord] = []
        joined_ids: list[str] = []
        sends: list[asyncio.Future[Any]] = []
        in_batch: set[str] = set()
        new_classes: set[Any] = set(self.sampler.model.classes)  # known, and joined in this batch
        for record in records:
            try:
                message = decode_label(
                    record.value, header_content_type(record.headers),
                    max_bytes=self.settings.max_message_bytes,
                )
            except DecodeError as error:
                self._count_outcome(JoinOutcome.INVALID)
                sends.append(await self._dead_letter(record, error, source="labels"))
                continue
            refused = self._refuse_class(message.label, new_classes)
            if refused is not None:
                self._count_outcome(JoinOutcome.INVALID)
                sends.append(await self._dead_letter(record, refused, source="labels"))
                continue
            if message.id in self._uncommitted or message.id in in_batch:
                self._count_outcome(JoinOutcome.DUPLICATE)  # applied, not committed yet
                continue
            owner = f"{record.topic}:{record.partition}"
            outcome, joined = await self._store_retry(
                lambda i=message.id, o=owner: self.store.claim(i, now, o)
            )
            self._count_outcome(outcome)
            if joined is not None:
                in_batch.add(message.id)
                new_classes.add(message.label)
                rows.append(joined.features)
                labels.append(message.label)
                joined_ids.append(message.id)
                joined_records.append(record)
                m.label_delay.observe(max(0.0, now - joined.requested_at))
        if rows:
            # A checkpoint sees all of this batch or none of it: the model, the ids and the offsets.
            async with self._checkpoint_lock:
                failed = await self._learn(np.vstack(rows), labels, joined_ids, joined_records, sends)
                # learned: applied with the next checkpoint, never claimed again. A label whose
                # learning failed is not: its item stays claimed with its features, so its dead
                # letter, replayed onto the labels topic, joins again
                self._uncommitted.update(dict.fromkeys(i for i in joined_ids if i not in failed))
                self._advance(records)
            await self._publish_model()
        else:
            self._advance(records)
        self._dirty = True
        if sends:
            await asyncio.gather(*sends)
        if not self.durable:
            await self._store_retry(lambda ids=list(self._uncommitted): self.store.commit(ids))
            self._uncommitted.clear()
        elif len(self._uncommitted) >= self.settings.checkpoint_every_labels:
            await self.checkpoint("labels")
        m.uncommitted_labels.set(len(self._uncommitted))

    def _refuse_class(self, label: Any, classes: set[Any]) -> DecodeError | None:
        """Why a label cannot teach its class (``classes``: those known and joined so far), or
        None. Each class costs every decision and every label request a probability."""
        if self._declared_classes is not None:
            if label in self._declared_classes:
                return None
            return DecodeError("undeclared_class", f"label {label!r} is not one of --classes "
                               f"{sorted(map(str, self._declared_classes))}")
        limit = self.settings.max_classes
        if label in classes or len(classes) < limit:
            return None
        return DecodeError("too_many_classes", f"label {label!r} would be class {len(classes) + 1}, and "
                           f"--max-classes is {limit}: raise it, or declare the classes with --classes")

    async def _learn(
        self,
        X: np.ndarray,
        labels: list[Any],
        ids: list[str],
        records: list[ConsumerRecord],
        sends: list[asyncio.Future[Any]],
    ) -> set[str]:
        """Learn in slices of about ``_LEARN_SLICE_SECONDS``, letting the items loop run between;
        return the ids whose learning failed (dead-lettered as they came, to be replayed).

        Labels are few, but a slow ``learn`` (river at 512 features: ~250 µs a label) on a batch
        of a thousand would otherwise hold every decision for a quarter of a second.
        """
        m = self.metrics
        failed: set[str] = set()
        start, size = 0, self._learn_slice
        while start < len(labels):
            stop = min(len(labels), start + size)
            began = time.perf_counter()
            try:
                if self.role == "learner":  # decides no item: its scalers learn here
                    self.sampler.model.observe(X[start:stop])
                correct = self.sampler.learn(X[start:stop], labels[start:stop], ids=ids[start:stop])
            except Exception as exc:  # joined labels are claimed: keep them, never drop them
                log.exception("learning from %d joined labels failed", stop - start)
                error = DecodeError("learn_failed", f"the model could not learn the label: {exc!r}; "
                                    "its item waits: replay `raw` onto the labels topic once fixed")
                for record in records[start:stop]:
                    sends.append(await self._dead_letter(record, error, source="labels"))
                failed.update(ids[start:stop])
            else:
                hits = int(np.count_nonzero(correct))
                self._labelled_correct += hits
                m.observe_prequential(hits, stop - start)  # windowed accuracy, alert on drops
                self.counts["labels_applied"] += stop - start
                m.accuracy.set(self._labelled_correct / self.counts["labels_applied"])
                m.model_version.set(self.sampler.model.version)
                m.observe_race(self._race())
            per_row = (time.perf_counter() - began) / (stop - start)
            size = max(1, min(_LEARN_SLICE_MAX, int(_LEARN_SLICE_SECONDS / max(per_row, 1e-9))))
            start = stop
            if start < len(labels):
                await asyncio.sleep(0)  # decisions first
        self._learn_slice = size
        return failed

    def _advance(self, records: Sequence[ConsumerRecord]) -> None:
        for record in records:  # synchronously with learning: the checkpoint sees both
            self._positions[TopicPartition(record.topic, record.partition)] = record.offset + 1

    def _count_outcome(self, outcome: JoinOutcome) -> None:
        self.outcomes[outcome.value] += 1
        self.metrics.labels.labels(outcome=outcome.value).inc()

    # ------------------------------------------------------------------ housekeeping

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sweep()
            if self.durable and self._checkpoint_due():
                await self.checkpoint("timer")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_SWEEP_SECONDS)

    async def sweep(self) -> None:
        """Expire overdue pending items and refresh the pending count (every ``_SWEEP_SECONDS``)."""
        try:
            expired = await self.store.sweep(time.time())
            self.counts["expired"] += expired
            self.metrics.pending_expired.inc(expired)
            self.pending = await self.store.pending_count()
            self._asked_since_sweep = 0
            self.metrics.pending.set(self.pending)
        except STORE_ERRORS as exc:  # a store outage must not stop deciding
            self._degrade("store", exc)
        else:
            self._recover("store")

    def _checkpoint_due(self) -> bool:
        elapsed = time.monotonic() - self._last_checkpoint
        return self._dirty and elapsed >= self.settings.checkpoint_every_seconds

    async def checkpoint(self, why: str = "") -> bool:
        """Write the signed checkpoint and the applied ids in one atomic store commit.

        Returns False (and retries at the next occasion) when the store is down.
        """
        if not self.durable or not self.learning:
            return False  # only the learner checkpoints
        assert self._key is not None
        async with self._checkpoint_lock:
            # One synchronous snapshot: sampler, offsets and ids describe the same moment.
            ids = list(self._uncommitted)
            positions = dict(self._positions)
            state = Checkpoint(
                sampler=self.sampler,
                label_offsets={(tp.topic, tp.partition): o for tp, o in positions.items()},
                applied=self.counts["labels_applied"],
                correct=self._labelled_correct,
                outcomes=dict(self.outcomes),
                model_spec=getattr(self.sampler.model, "spec", type(self.sampler.model).__name__),
                sampler_config=self._sampler_config,
                sequence=self._sequence + 1,
            )
            blob = dumps(state, self._key)
            self._dirty = False
            try:
                fence = None if self._lease is None else self._lease.fence()
                await self.store.commit(ids, blob, fence=fence)
            except STORE_ERRORS as exc:
                self._dirty = True
                self.metrics.checkpoint_failures.inc()
                self._degrade("store", exc)
                return False
            except LeaseLostError:
                log.error("checkpoint %d not written: another replica took the learner lease "
                          "over and learns these labels again from its checkpoint", self._sequence + 1)
                self.learning = False
                self.metrics.learner.set(0)
                self.metrics.checkpoint_failures.inc()
                return False
            self._recover("store")
            for item_id in ids:
                self._uncommitted.pop(item_id, None)
            self._sequence += 1
            self._last_checkpoint = time.monotonic()
            self.counts["checkpoints"] += 1
            self.metrics.checkpoints.inc()
            self.metrics.checkpoint_time.set(time.time())
            self.metrics.uncommitted_labels.set(len(self._uncommitted))
            log.debug("checkpoint %d (%s): %d labels, %d bytes", self._sequence, why, len(ids), len(blob))
        if self._labels is not None:  # for lag tools: the offsets the checkpoint will re-read from
            assigned = self._labels.assignment()
            await self._commit(self._labels, {tp: o for tp, o in positions.items() if tp in assigned})
        return True

    # ------------------------------------------------------------------ degraded mode

    def _capacity(self) -> int | None:
        """Labels that may be requested now: 0 while degraded or at ``max_pending``."""
        if self.degraded:
            return 0
        room = self.settings.max_pending - self.pending - self._asked_since_sweep
        self.metrics.backpressure.set(1 if room <= 0 else 0)
        return max(0, room) if room < self.settings.max_batch else None

    def _degrade(self, component: str, exc: BaseException) -> None:
        if refused(exc):  # not an outage: stop with the reason (the caller's except chains it)
            raise refusal(exc)
        if component not in self.degraded:
            log.error("%s unavailable, running degraded (no label requests, labels wait): %r",
                      component, exc)
            self.metrics.degraded.labels(component=component).set(1)
        self.degraded[component] = repr(exc)

    def _recover(self, component: str) -> None:
        if self.degraded.pop(component, None) is not None:
            log.warning("%s answers again: leaving degraded mode", component)
            self.metrics.degraded.labels(component=component).set(0)

    async def _store_retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run a store call, retrying with backoff while the store is down (labels wait)."""
        attempt = 0
        while True:
            try:
                result = await call()
            except STORE_ERRORS as exc:
                self._degrade("store", exc)
                if self._stop.is_set():
                    raise _Stopped from exc
                await asyncio.sleep(_RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)])
                attempt += 1
            else:
                if attempt:
                    self._recover("store")
                return result

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance took the partition away: its new owner re-decides (at-least-once)
            log.warning("commit of %s failed: %s", offsets, exc)

    # ------------------------------------------------------------------ status

    def _race(self) -> dict[str, Any] | None:
        """An auto model's leader and members' estimated accuracy; None for a single model."""
        race = getattr(self.sampler.model, "race", None)
        return race() if callable(race) else None

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
            "model_race": self._race(),
            "labelled_accuracy": (self._labelled_correct / applied) if applied else None,
            "degraded": dict(self.degraded),
            "requests_cancelled": self.counts["requests_cancelled"],
            "forfeited": snapshot["forfeited"],
            "checkpoints": {
                "durable": self.durable,
                "restored": self.restored,
                "sequence": self._sequence,
                "written": self.counts["checkpoints"],
                "uncommitted_labels": len(self._uncommitted),
            },
            "consumers": {"items": self.items_watch.status(), "labels": self.labels_watch.status()},
            "role": self.role,
            "learner": self.learning,
            "model_publication": self._model_sequence,
            "global_budget": None if self.ledger is None else {
                "planned": round(self.ledger.planned, 3),
                "asked": self.ledger.asked,
                "replicas": self.ledger.replicas,
            },
            "error": self.error,
        }
