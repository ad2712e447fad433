"""One replica of the service: the runtime's concerns, wired, with their lifecycle.

Items flow ``items topic -> ItemsPath -> Outputs`` with offsets committed once the outputs were
acknowledged (:mod:`~streamer.runtime.commits`); labels flow ``labels topic -> LabelsPath``
into the model, applied exactly once through checkpoints (:mod:`~streamer.runtime.checkpoints`).
A failing store degrades the service instead of stopping it (:mod:`~streamer.runtime.health`).
In scale-out one replica learns (:mod:`~streamer.runtime.lease`), publishes its model to the
scorers (:mod:`~streamer.runtime.publication`), and every replica adds its spend to the shared
budget (:mod:`~streamer.runtime.ledger`).

The Faust integration drives the same object through its public methods:
:meth:`Service.attach_producer`, :meth:`Service.process_items`, :meth:`Service.process_labels`,
:meth:`Service.sweep`, :meth:`Service.mark_consuming` and :meth:`Service.close_store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.kafka.groups import GroupWatch
from streamer.metrics import Metrics
from streamer.runtime.backlog import SWEEP_SECONDS, Backlog
from streamer.runtime.checkpoints import Checkpoints, LabelTally
from streamer.runtime.clients import Clients, KafkaClients
from streamer.runtime.commits import AckedCommits, commit_quietly
from streamer.runtime.consume import BatchLimit, poll_batches
from streamer.runtime.health import Health, Stopping
from streamer.runtime.items import ItemsPath
from streamer.runtime.labels import LabelsPath
from streamer.runtime.learner import Learner
from streamer.runtime.lease import LearnerRole, replica_token
from streamer.runtime.ledger import SharedBudget
from streamer.runtime.loop_lag import freeze_start_up_heap, watch_loop_lag
from streamer.runtime.outputs import MAX_REQUEST_BYTES, Acks, Outputs
from streamer.runtime.publication import ModelPublication
from streamer.runtime.status import service_status
from streamer.store.base import PendingStore
from streamer.store.checkpoint import Checkpoint
from streamer.store.coordination import BudgetLedger, LearnerLease, ModelBoard

__all__ = ["Service"]

log = logging.getLogger(__name__)

MAX_UNACKED_BATCHES = 8  # items micro-batches produced but not yet acknowledged
REVOKE_WAIT_SECONDS = 5.0  # a rebalance waits this long at most for the outputs in flight


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
        clients: Clients | None = None,
    ) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.metrics = m = metrics or Metrics()
        self.started_at = time.time()
        self.consuming = False  # holds items partitions (a learner-only replica: labels)
        self.stopping = False
        self.error: str | None = None
        self.http_port: int | None = None  # set by streamer.app.serve
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.health = Health(m)
        self.tally = LabelTally(self.counts)
        self.outputs = Outputs(settings, m, self.counts)
        self.backlog = Backlog(settings, store, m, self.health, self.counts)
        self._key = checkpoint_key
        lease = board = ledger = None
        client = getattr(store, "client", None)
        durable = bool(getattr(store, "durable", False)) and checkpoint_key is not None
        if client is not None and durable:  # scale-out needs the shared store and a key
            token = settings.group_instance_id or replica_token()
            lease = LearnerLease(client, settings.redis_prefix, token, settings.learner_lease_seconds)
            board = ModelBoard(client, settings.redis_prefix)
            if settings.global_budget and settings.role != "learner":
                ledger = BudgetLedger(client, settings.redis_prefix, token)
        self.role = LearnerRole(settings.role, lease, self.health, m)
        self.checkpoints = Checkpoints(store, checkpoint_key, sampler, self.tally, m, self.health,
                                       sampler_config or {}, fence=self.role.fence,
                                       lease_lost=lambda: self.learner.lease_lost())
        self.publication = None if board is None else ModelPublication(
            board, sampler, checkpoint_key, settings, self.role, self.health, m,  # type: ignore[arg-type]
            lease_lost=lambda: self.learner.lease_lost())
        self.budget = None if ledger is None else SharedBudget(ledger, sampler, self.health, m)
        self.items = ItemsPath(settings, sampler, store, m, self.health, self.backlog, self.outputs,
                               self.counts, on_decided=self._changed)
        self.labels = LabelsPath(settings, sampler, store, m, self.health, self.outputs, self.checkpoints,
                                 self.tally, observe_rows=settings.role == "learner",
                                 after_learning=self._learned)
        # before a rebalance moves items partitions: commit what the broker acknowledged, so their
        # next owner does not decide those items again
        self.items_watch = GroupWatch("items", settings.group_id, [settings.items_topic], log,
                                      before_revoke=lambda _: self.commit_acknowledged())
        self.labels_watch = GroupWatch("labels", None, [settings.labels_topic], log)
        self.commits: AckedCommits | None = None  # the items consumer's, once it exists
        self.clients: Clients = clients or KafkaClients(settings)
        self.learner = Learner(settings, sampler, store, checkpoint_key, self.role, self.checkpoints,
                               self.labels, self.publication, self.health, self.clients, self.labels_watch,
                               on_learning=self._learning)
        self._items: Any = None  # the items consumer
        m.budget.set(sampler.budget)
        if checkpoint is not None:
            self.checkpoints.restore(checkpoint)

    # ------------------------------------------------------------------ what others read

    @property
    def ready(self) -> bool:
        """Consuming, not stopping, and not degraded: what ``/readyz`` reports."""
        return self.consuming and not self.stopping and not self.health.degraded

    @property
    def durable(self) -> bool:
        return self.checkpoints.durable

    @property
    def restored(self) -> int | None:
        return self.checkpoints.restored

    @property
    def learning(self) -> bool:
        return self.role.learning

    @property
    def pending(self) -> int:
        return self.backlog.pending

    @property
    def outcomes(self) -> dict[str, int]:
        return self.tally.outcomes

    def status(self) -> dict[str, Any]:
        return service_status(self)

    # ------------------------------------------------------------------ what a runtime calls

    def attach_producer(self, producer: Any, max_request_size: int = MAX_REQUEST_BYTES) -> None:
        """Produce through a producer another runtime started and owns (the Faust integration
        feeds :meth:`process_items` and :meth:`process_labels` from its own consumer)."""
        self.outputs.attach(producer, max_request_size)

    async def process_items(self, records: Sequence[ConsumerRecord]) -> Acks:
        """Decide one micro-batch and queue its outputs; return their ack futures."""
        return await self.items.process(records)

    async def process_labels(self, records: Sequence[ConsumerRecord]) -> None:
        """Claim each label's pending item, learn the joined ones as one batch."""
        await self.labels.process(records)

    async def sweep(self) -> None:
        """Expire overdue pending items and refresh the pending count."""
        await self.backlog.sweep()

    def mark_consuming(self, consuming: bool) -> None:
        """Whether this replica holds partitions of the items topic (``/readyz``)."""
        self.consuming = consuming
        self.metrics.ready.set(1 if consuming else 0)

    def begin_stop(self) -> None:
        """Stopping: store retries in progress give up, and ``/readyz`` answers 503."""
        self.stopping = True
        self.health.stopping.set()

    async def close_store(self) -> None:
        """Count what still waits for labels (the final status), then close the store."""
        await self.backlog.count_at_close()
        await self.store.close()

    async def commit_acknowledged(self, wait_s: float = REVOKE_WAIT_SECONDS) -> None:
        """A rebalance takes items partitions away: commit every offset whose outputs were
        acknowledged (waiting at most ``wait_s`` for those in flight)."""
        if self.commits is not None:
            await self.commits.commit_acknowledged(wait_s)

    async def checkpoint(self, why: str = "") -> bool:
        """Write the checkpoint now (only the learner does); False when nothing was written."""
        if not self.checkpoints.durable or not self.role.learning:
            return False
        positions = await self.checkpoints.write(why)
        if positions is None:
            return False
        if self.learner.reader is not None:  # for lag tools: the offsets the checkpoint will re-read from
            consumer = self.learner.reader.consumer
            assigned = consumer.assignment()
            await commit_quietly(consumer, {tp: o for tp, o in positions.items() if tp in assigned})
        return True

    def _learning(self) -> None:
        if not self.role.decides:  # a learner-only replica is ready once it learns
            self.mark_consuming(True)

    def _changed(self) -> None:
        self.checkpoints.dirty = True

    async def _learned(self) -> None:
        if self.publication is not None:
            await self.publication.publish()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.outputs.attach(await self.clients.producer(MAX_REQUEST_BYTES), MAX_REQUEST_BYTES)
        # the learner reads labels before items flow, so the first items' labels are learned
        if self.role.may_learn and await self.role.try_lease():
            await self.learner.become()
        if self.role.decides:
            if not self.role.learning and self.publication is not None:
                await self.publication.refresh()  # a scorer starts with the learner's newest model
            self._items = await self.clients.items_consumer(self.items_watch)
            self.commits = AckedCommits(functools.partial(commit_quietly, self._items), MAX_UNACKED_BATCHES)
            # started by the items loop: aiokafka's start() waits for the group's first
            # assignment, which must not hold up the labels (a restart after kill -9 waits
            # for the dead member's session to expire; labels need no group)

    async def run(self, stop: asyncio.Event, freeze_heap: bool = False) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand, flush and commit.
        ``freeze_heap``: the process is this service's alone (``streamer run``), so what start
        made is frozen out of the garbage collector's full passes (:func:`freeze_start_up_heap`)."""
        self.health.stopping = stop
        await self.start()
        if freeze_heap:
            freeze_start_up_heap()
        loops = [self.learner.run(stop), self._sweep_loop(stop), watch_loop_lag(self.metrics.loop_lag, stop, self.metrics.loop_longest_stall)]
        if self._items is not None:
            loops.append(self._items_loop(stop))
        if self.publication is not None:
            loops.append(self.publication.run(stop))
        if self.budget is not None:
            loops.append(self.budget.run(stop))
        tasks = [asyncio.create_task(loop, name=loop.__qualname__) for loop in loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self.error = repr(task.exception())
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.begin_stop()
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
                await asyncio.wait_for(self.checkpoint("shutdown"), timeout=max(0.1, deadline - loop.time()))
            except (TimeoutError, Stopping):
                log.error("shutdown: the final checkpoint did not finish in time; the labels "
                          "since the last one will be re-read from Kafka at the next start")
        await asyncio.wait_for(self.close(), timeout=max(1.0, deadline - loop.time()))

    async def close(self) -> None:
        self.mark_consuming(False)
        await self.role.release()
        self.items_watch.stop()
        labels = None if self.learner.reader is None else self.learner.reader.consumer
        for client in (self._items, labels, self.outputs.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        await self.close_store()

    # ------------------------------------------------------------------ loops

    async def _items_loop(self, stop: asyncio.Event) -> None:
        consumer, commits = self._items, self.commits
        assert consumer is not None and commits is not None
        self.items_watch.started()
        joining = asyncio.ensure_future(consumer.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not joining.done():  # stopped before the group gave this replica partitions
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await joining
            return
        joining.result()  # raises a failed start (the broker refused us)

        async def each_poll() -> None:
            if not self.consuming and consumer.assignment():
                self.mark_consuming(True)
            commits.commit_ready()

        limit = BatchLimit(self.settings.max_batch, self.settings.max_delay_ms / 1000.0)

        async def decide(records: list[ConsumerRecord], offsets: dict[TopicPartition, int]) -> None:
            started = time.perf_counter()
            acks = await self.items.process(records)
            limit.observe(len(records), time.perf_counter() - started)
            await commits.track(acks, offsets)

        try:
            await poll_batches(consumer, limit, stop, decide, each_poll)
        finally:  # stopping: the batches in hand are acknowledged and committed
            await commits.drain()

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sweep()
            if self.checkpoints.due(self.settings.checkpoint_every_seconds):
                await self.checkpoint("timer")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_SECONDS)
