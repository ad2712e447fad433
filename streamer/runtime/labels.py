"""Labels: decode, join each with its pending item, learn the joined ones as one batch.

A label is applied at most once: it *claims* its pending item (idempotent by item id), and the
ids learned are committed as applied with the checkpoint whose model learned them
(:mod:`streamer.runtime.checkpoints`), or right away without checkpoints (in-process store).
A label whose learning failed is not applied: its item stays claimed with its features, and its
dead letter, replayed onto the labels topic, joins again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from aiokafka import ConsumerRecord

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.metrics import Metrics, observe_many
from streamer.runtime.checkpoints import Checkpoints, LabelTally
from streamer.runtime.health import Health
from streamer.runtime.outputs import Acks, Outputs
from streamer.store.base import JoinOutcome, PendingStore
from streamer.wire import (
    DecodeError,
    LabelMessage,
    canonical_label,
    decode_label,
    header_content_type,
)

__all__ = ["LabelsPath"]

log = logging.getLogger(__name__)

LEARN_SLICE_SECONDS = 0.005  # learning yields to the items loop this often
LEARN_SLICE_MAX = 4096


class LabelsPath:
    """``process(records)`` joins and learns one micro-batch of labels.

    ``after_learning`` runs after every batch that taught the model something (the learner
    publishes the new model there).
    """

    def __init__(self, settings: Settings, sampler: Sampler, store: PendingStore, metrics: Metrics,
                 health: Health, outputs: Outputs, checkpoints: Checkpoints, tally: LabelTally,
                 observe_rows: bool, after_learning: Callable[[], Awaitable[None]]) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.metrics = metrics
        self.health = health
        self.outputs = outputs
        self.checkpoints = checkpoints
        self.tally = tally
        self.observe_rows = observe_rows  # a learner that decides nothing: its scalers learn here
        self._after_learning = after_learning
        declared = settings.declared_classes
        self.declared_classes = None if declared is None else {canonical_label(name) for name in declared}
        self._slice = 8  # labels learned between two yields; adapts to the model's speed

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        now = time.time()
        acks: Acks = []
        learned = self.checkpoints.uncommitted
        # A label of a new class counts toward --max-classes once it is accepted for claiming,
        # whether or not it then joins: the claims of a batch go to the store together
        classes: set[Any] = set(self.sampler.model.classes)
        firsts: list[tuple[LabelMessage, ConsumerRecord]] = []  # one per item id, claimed
        first_ids: set[str] = set()
        repeats: list[LabelMessage] = []  # the same item id again in this batch
        outcomes_seen: Counter[JoinOutcome] = Counter()
        for record in records:
            try:
                message = decode_label(record.value, header_content_type(record.headers),
                                       max_bytes=self.settings.max_message_bytes)
                refused = self.refuse_class(message.label, classes)
                if refused is not None:
                    raise refused
            except DecodeError as error:
                outcomes_seen[JoinOutcome.INVALID] += 1
                acks.append(await self.outputs.dead_letter(record, error, source="labels"))
                continue
            if message.id in learned:
                outcomes_seen[JoinOutcome.DUPLICATE] += 1  # applied, not committed yet
            elif message.id in first_ids:
                repeats.append(message)
            else:
                classes.add(message.label)
                first_ids.add(message.id)
                firsts.append((message, record))
        claims = [(m.id, f"{r.topic}:{r.partition}") for m, r in firsts]
        outcomes = await self.health.retry(lambda: self.store.claim_many(claims, now)) if claims else []
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        joined: list[tuple[str, ConsumerRecord]] = []
        first_outcome: dict[str, JoinOutcome] = {}
        requested_at: list[float] = []
        for (message, record), (outcome, item) in zip(firsts, outcomes, strict=True):
            outcomes_seen[outcome] += 1
            first_outcome[message.id] = outcome
            if item is not None:
                rows.append(item.features)
                labels.append(message.label)
                joined.append((message.id, record))
                requested_at.append(item.requested_at)
        for message in repeats:  # what claiming it again would say: the first one joined it, or not
            outcome = first_outcome[message.id]
            outcomes_seen[JoinOutcome.DUPLICATE if outcome is JoinOutcome.JOINED else outcome] += 1
        for outcome, n in outcomes_seen.items():  # metrics per batch, not per label
            self.count(outcome, n)
        if requested_at:
            observe_many(self.metrics.label_delay, np.maximum(0.0, now - np.array(requested_at)))
        if rows:
            async with self.checkpoints.lock:
                ids = [i for i, _ in joined]
                failed = await self._learn(np.vstack(rows), labels, ids, [r for _, r in joined], acks)
                learned.update(dict.fromkeys(i for i in ids if i not in failed))
                self.checkpoints.advance(records)
            await self._after_learning()
        else:
            self.checkpoints.advance(records)
        self.checkpoints.dirty = True
        if acks:
            await asyncio.gather(*acks)
        if not self.checkpoints.durable:
            await self.health.retry(lambda ids=list(learned): self.store.commit(ids))
            learned.clear()
        elif len(learned) >= self.settings.checkpoint_every_labels:
            await self.checkpoints.write("labels")
        self.metrics.uncommitted_labels.set(len(learned))

    def refuse_class(self, label: Any, classes: set[Any]) -> DecodeError | None:
        """Why a label cannot teach its class (``classes``: those known and joined so far), or
        None. Each class costs every decision and every label request a probability."""
        if self.declared_classes is not None:
            if label in self.declared_classes:
                return None
            return DecodeError("undeclared_class", f"label {label!r} is not one of --classes "
                               f"{sorted(map(str, self.declared_classes))}")
        limit = self.settings.max_classes
        if label in classes or len(classes) < limit:
            return None
        return DecodeError("too_many_classes", f"label {label!r} would be class {len(classes) + 1}, and "
                           f"--max-classes is {limit}: raise it, or declare the classes with --classes")

    def count(self, outcome: JoinOutcome, n: int = 1) -> None:
        self.tally.outcomes[outcome.value] += n
        self.metrics.labels.labels(outcome=outcome.value).inc(n)

    async def _learn(self, X: np.ndarray, labels: list[Any], ids: list[str],
                     records: list[ConsumerRecord], acks: Acks) -> set[str]:
        """Learn in slices of about ``LEARN_SLICE_SECONDS``, letting the items loop run between;
        return the ids whose learning failed (dead-lettered as they came, to be replayed).

        Labels are few, but a slow ``learn`` (river at 512 features: ~250 µs a label) on a batch
        of a thousand would otherwise hold every decision for a quarter of a second.
        """
        m = self.metrics
        failed: set[str] = set()
        start, size = 0, self._slice
        while start < len(labels):
            stop = min(len(labels), start + size)
            began = time.perf_counter()
            try:
                if self.observe_rows:
                    self.sampler.model.observe(X[start:stop])
                correct = self.sampler.learn(X[start:stop], labels[start:stop], ids=ids[start:stop])
            except Exception as exc:  # noqa: BLE001 -- joined labels are claimed: keep them, never drop them
                log.exception("learning from %d joined labels failed", stop - start)
                error = DecodeError("learn_failed", f"the model could not learn the label: {exc!r}; "
                                    "its item waits: replay `raw` onto the labels topic once fixed")
                acks += await self.outputs.dead_letters(records[start:stop], error, "labels")
                failed.update(ids[start:stop])
            else:
                hits = int(np.count_nonzero(correct))
                self.tally.correct += hits
                self.tally.counts["labels_applied"] += stop - start
                m.observe_prequential(hits, stop - start)  # windowed accuracy, alert on drops
                m.accuracy.set(self.tally.accuracy or 0.0)
                m.model_version.set(self.sampler.model.version)
                m.observe_race(model_race(self.sampler))
            per_row = (time.perf_counter() - began) / (stop - start)
            size = max(1, min(LEARN_SLICE_MAX, int(LEARN_SLICE_SECONDS / max(per_row, 1e-9))))
            start = stop
            if start < len(labels):
                await asyncio.sleep(0)  # decisions first
        self._slice = size
        return failed


def model_race(sampler: Sampler) -> dict[str, Any] | None:
    """An auto model's leader and members' estimated accuracy; None for a single model."""
    race = getattr(sampler.model, "race", None)
    return race() if callable(race) else None
