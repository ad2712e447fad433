"""The learner's side of a replica: wait for the lease, take over from the newest checkpoint,
read every labels partition from its positions and learn.

One replica learns at a time (the learner lease, or a single process), so no consumer group
shares the labels out: the learner assigns itself every partition, and a restarted or standby
learner reads labels within a second of taking the lease instead of waiting for a dead
member's session to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import ConsumerRecord, TopicPartition

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.kafka.groups import GroupWatch
from streamer.runtime.checkpoints import Checkpoints
from streamer.runtime.clients import Clients, LabelsReader
from streamer.runtime.commits import commit_quietly
from streamer.runtime.consume import BatchLimit, poll_batches
from streamer.runtime.health import Health
from streamer.runtime.labels import LabelsPath
from streamer.runtime.lease import LearnerRole
from streamer.runtime.publication import ModelPublication
from streamer.store.base import PendingStore
from streamer.store.checkpoint import Checkpoint, CheckpointError, loads

__all__ = ["LABELS_PER_POLL", "Learner"]

log = logging.getLogger(__name__)

LABELS_PER_POLL = 1000


class Learner:
    """Runs while this replica may learn; ``reader`` is its labels consumer once it learns."""

    def __init__(self, settings: Settings, sampler: Sampler, store: PendingStore, key: bytes | None,
                 role: LearnerRole, checkpoints: Checkpoints, labels: LabelsPath,
                 publication: ModelPublication | None, health: Health, clients: Clients,
                 watch: GroupWatch, on_learning: Callable[[], None]) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.key = key
        self.role = role
        self.checkpoints = checkpoints
        self.labels = labels
        self.publication = publication
        self.health = health
        self.clients = clients
        self.watch = watch
        self._on_learning = on_learning  # a learner-only replica is ready once it learns
        self.reader: LabelsReader | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Learn when this replica may: at once in one process, else while holding the lease."""
        role = self.role
        if not role.may_learn:
            return
        period = 1.0 if role.lease is None else role.lease.seconds / 3.0
        while not role.learning and not stop.is_set():  # a standby: wait for the lease
            if await role.try_lease():
                await self.become()
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
        if not role.learning:
            return
        labels = asyncio.create_task(self._consume(stop), name="labels")
        try:
            waiting = {labels} if role.keeper is None else {labels, role.keeper}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if role.keeper in done:
                role.keeper.result()  # raises LeaseLostError
            await labels
        finally:
            if not labels.done():
                labels.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await labels

    async def become(self) -> None:
        """Take over from the newest checkpoint, then read labels from its offsets."""
        if self.role.lease is not None:  # a lease exists only with a durable store and a key
            assert self.key is not None
            blob = await self.health.retry(self.store.load_checkpoint)
            if blob is not None:
                # Always from the checkpoint, even the one this replica started from: a standby
                # scored with the learner's later publications, whose labels it now reads again
                # from the checkpoint's offsets (they would be learned twice)
                self._take_over(loads(blob, self.key))
        self.role.start_learning()
        log.info("learning (role %s): labels from %s", self.role.role, self.settings.labels_topic)
        self.reader = await self.clients.labels_reader(self.checkpoints.positions)
        self.watch.assigned_manually(await self.reader.assign())
        self._on_learning()
        if self.publication is not None:
            await self.publication.publish(force=True)

    async def lease_lost(self) -> bool:
        """A fenced write found the lease not ours: learn on only if it merely expired while this
        replica was paused and no other learner checkpointed meanwhile."""
        async def nobody_learned() -> bool:
            blob = await self.store.load_checkpoint()
            newest = 0 if blob is None else loads(blob, self.key).sequence  # type: ignore[arg-type]
            return newest == self.checkpoints.sequence

        return await self.role.regain(nobody_learned)

    def _take_over(self, checkpoint: Checkpoint) -> None:
        spec = getattr(self.sampler.model, "spec", None)
        if spec is not None and checkpoint.model_spec != spec:
            raise CheckpointError(
                f"the newest checkpoint holds model {checkpoint.model_spec!r}, this replica "
                f"runs {spec!r}: every replica of a deployment must run the same --model"
            )
        self.sampler.use_model(checkpoint.sampler.model)
        self.checkpoints.restore(checkpoint)

    async def _consume(self, stop: asyncio.Event) -> None:
        reader = self.reader
        assert reader is not None
        consumer = reader.consumer
        losses = asyncio.create_task(reader.watch_losses(stop), name="label-logs")

        async def each_poll() -> None:
            reassigned = await reader.refresh()
            if reassigned is not None:
                self.watch.assigned_manually(reassigned)

        async def learn(records: list[ConsumerRecord], offsets: dict[TopicPartition, int]) -> None:
            await self.labels.process(records)
            if not self.checkpoints.durable:  # the in-process store's progress is the group's offsets
                await commit_quietly(consumer, offsets)

        try:
            await poll_batches(consumer, BatchLimit(LABELS_PER_POLL), stop, learn, each_poll)
        finally:
            losses.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await losses
