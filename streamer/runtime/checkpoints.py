"""Exactly-once labels: the learner's checkpoint, written with the applied ids in one commit.

A label *claims* its pending item, the sampler learns it, and every ``checkpoint_every_labels``
labels or ``checkpoint_every_seconds`` (and at shutdown) one atomic store commit writes the
signed checkpoint -- sampler with its model, the next label offset of every partition,
counters -- together with the applied ids. A restarted service restores the checkpoint and
reads labels again from its offsets; the items it claimed but had not committed are claimed
again (same partition = same owner), the committed ones are duplicates.

Checkpoints are fenced by the learner lease: a replica whose lease was taken over writes none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from streamer.core.sampler import Sampler
from streamer.metrics import Metrics
from streamer.runtime.health import STORE_ERRORS, Health
from streamer.store.base import JoinOutcome, LeaseLostError, PendingStore
from streamer.store.checkpoint import Checkpoint, dumps_yielding, snapshot

__all__ = ["Checkpoints", "LabelTally"]

log = logging.getLogger(__name__)


@dataclass
class LabelTally:
    """What the labels taught so far, carried by every checkpoint."""

    counts: defaultdict[str, int]  # the service's counters; "labels_applied" among them
    outcomes: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in JoinOutcome})
    correct: int = 0  # labels the model predicted right before learning them (prequential)

    @property
    def applied(self) -> int:
        return self.counts["labels_applied"]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.applied if self.applied else None


class Checkpoints:
    """The label positions and ids learned since the last checkpoint, and the checkpoint itself.

    ``lock`` is held while a label batch is learned and while a checkpoint is taken, so a
    checkpoint sees all of a batch or none of it: the model, the ids and the offsets.
    """

    def __init__(self, store: PendingStore, key: bytes | None, sampler: Sampler, tally: LabelTally,
                 metrics: Metrics, health: Health, sampler_config: dict[str, Any],
                 fence: Callable[[], tuple[str, bytes] | None],
                 lease_lost: Callable[[], Awaitable[bool]]) -> None:
        self.store = store
        self.key = key
        self.sampler = sampler
        self.tally = tally
        self.metrics = metrics
        self.health = health
        self.sampler_config = dict(sampler_config)
        self.durable = bool(getattr(store, "durable", False)) and key is not None
        self._fence = fence
        self._lease_lost = lease_lost  # True when this replica holds the lease again
        self.positions: dict[TopicPartition, int] = {}  # next label offset, learned in memory
        self.uncommitted: dict[str, None] = {}  # ids learned, not yet committed with a checkpoint
        self.sequence = 0
        self.restored: int | None = None  # sequence of the checkpoint restored at start
        self.written = 0
        self.dirty = False
        self.lock = asyncio.Lock()
        self._last = time.monotonic()

    def restore(self, checkpoint: Checkpoint) -> None:
        self.positions = {TopicPartition(t, p): o for (t, p), o in checkpoint.label_offsets.items()}
        self.tally.counts["labels_applied"] = checkpoint.applied
        self.tally.correct = checkpoint.correct
        self.tally.outcomes.update(checkpoint.outcomes)
        self.sequence = self.restored = checkpoint.sequence
        log.info(
            "restored checkpoint %d (%d labels applied, model version %d, label offsets %s)",
            checkpoint.sequence, checkpoint.applied, self.sampler.model.version,
            {f"{tp.topic}[{tp.partition}]": o for tp, o in self.positions.items()},
        )

    def advance(self, records: Any) -> None:
        """The label records up to these are learned (synchronously with learning)."""
        for record in records:
            self.positions[TopicPartition(record.topic, record.partition)] = record.offset + 1

    def due(self, every_seconds: float) -> bool:
        return self.durable and self.dirty and time.monotonic() - self._last >= every_seconds

    async def write(self, why: str = "") -> dict[TopicPartition, int] | None:
        """Write the signed checkpoint and the applied ids in one atomic store commit; return
        the label positions it holds, or None when the store is down (retried at the next
        occasion). Raises LeaseLostError when another replica learns now."""
        assert self.key is not None
        async with self.lock:  # no label is learned until the checkpoint is written
            # One synchronous snapshot: sampler, offsets and ids describe the same moment.
            ids = list(self.uncommitted)
            positions = dict(self.positions)
            state = Checkpoint(
                sampler=self.sampler,
                label_offsets={(tp.topic, tp.partition): o for tp, o in positions.items()},
                applied=self.tally.applied,
                correct=self.tally.correct,
                outcomes=dict(self.tally.outcomes),
                model_spec=getattr(self.sampler.model, "spec", type(self.sampler.model).__name__),
                sampler_config=self.sampler_config,
                sequence=self.sequence + 1,
            )
            taken = snapshot(state)  # the moment: synchronous, milliseconds
            self.dirty = False
            blob = await dumps_yielding(taken, self.key)  # decisions run between its chunks
            try:
                try:
                    await self.store.commit(ids, blob, fence=self._fence())
                except LeaseLostError:
                    if not await self._lease_lost():
                        raise
                    await self.store.commit(ids, blob, fence=self._fence())
            except STORE_ERRORS as exc:
                self.dirty = True
                self.metrics.checkpoint_failures.inc()
                self.health.degrade("store", exc)
                return None
            except LeaseLostError:
                log.error("checkpoint %d not written: another replica took the learner lease "
                          "over and learns these labels again from its checkpoint", self.sequence + 1)
                self.metrics.checkpoint_failures.inc()
                raise  # this replica stops, as when its lease keeper finds the lease taken
            self.health.recover("store")
            for item_id in ids:
                self.uncommitted.pop(item_id, None)
            self.sequence += 1
            self._last = time.monotonic()
            self.written += 1
            self.metrics.checkpoints.inc()
            self.metrics.checkpoint_time.set(time.time())
            self.metrics.uncommitted_labels.set(len(self.uncommitted))
            log.debug("checkpoint %d (%s): %d labels, %d bytes", self.sequence, why, len(ids), len(blob))
        return positions

    def status(self) -> dict[str, Any]:
        return {
            "durable": self.durable,
            "restored": self.restored,
            "sequence": self.sequence,
            "written": self.written,
            "uncommitted_labels": len(self.uncommitted),
        }
