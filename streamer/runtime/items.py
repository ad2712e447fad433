"""Items: decode a micro-batch, decide it, store the asked items' features, emit the outputs.

One decision per item, made within the micro-batch it arrived in. A pending item is stored
before its label request is sent, so no label can arrive for an item the store does not hold.
Bad items, and items the model could not score, become dead letters: a model failure must not
stop the stream or lose the items.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
from aiokafka import ConsumerRecord

from streamer.config import Settings
from streamer.core.decisions import Decisions
from streamer.core.sampler import Sampler
from streamer.metrics import Metrics, observe_many
from streamer.runtime.backlog import Backlog
from streamer.runtime.health import STORE_ERRORS, Health
from streamer.runtime.outputs import Acks, Outputs
from streamer.store.base import PendingStore
from streamer.wire import DecodeError, ItemBatch, ItemDecoder, header_content_type

__all__ = ["ItemsPath"]

_VALUE, _KEY, _HEADERS, _TIMESTAMP = (attrgetter(f) for f in ("value", "key", "headers", "timestamp"))

log = logging.getLogger(__name__)


class ItemsPath:
    """``process(records)`` decides a micro-batch and returns its outputs' ack futures."""

    def __init__(self, settings: Settings, sampler: Sampler, store: PendingStore, metrics: Metrics,
                 health: Health, backlog: Backlog, outputs: Outputs, counts: defaultdict[str, int],
                 on_decided: Callable[[], None]) -> None:
        self.settings = settings
        self.sampler = sampler
        self.store = store
        self.metrics = metrics
        self.health = health
        self.backlog = backlog
        self.outputs = outputs
        self.counts = counts
        self._on_decided = on_decided  # the sampler's state changed: the next checkpoint is due
        self.decoder = ItemDecoder(n_features=settings.n_features, max_bytes=settings.max_message_bytes)

    async def process(self, records: Sequence[ConsumerRecord]) -> Acks:
        headers = list(map(_HEADERS, records))
        batch, errors = self.decoder.decode_batch(
            list(map(_VALUE, records)),
            [header_content_type(h) for h in headers] if any(headers) else [None] * len(records),
            list(map(_KEY, records)),
        )
        acks: Acks = []
        for index, error in errors:
            acks.append(await self.outputs.dead_letter(records[index], error, source="items"))
        if batch.ids:
            decided = list(records) if not errors else [records[i] for i in batch.index]
            acks += await self._decide(batch, decided)
        stamps = np.fromiter(map(_TIMESTAMP, records), dtype=np.float64, count=len(records)) / 1000.0
        self._observe_latency_when_acked(stamps, acks)
        return acks

    async def _decide(self, batch: ItemBatch, records: list[ConsumerRecord]) -> Acks:
        m = self.metrics
        started = time.perf_counter()
        try:
            decisions = self.sampler.decide(batch.X, ids=batch.ids, capacity=self.backlog.capacity())
        except Exception as exc:  # noqa: BLE001 -- the items become dead letters, with the reason
            log.exception("decide failed for a batch of %d items", len(batch.ids))
            error = DecodeError("decide_failed", f"the model could not score the item: {exc!r}")
            return await self.outputs.dead_letters(records, error, "items")
        m.decision_latency.observe(time.perf_counter() - started)
        m.batch_size.observe(len(batch.ids))
        m.observe_scores(decisions.scores)  # the dashboard's score heatmap
        return await self._emit(batch, decisions, records)

    async def _emit(self, batch: ItemBatch, decisions: Decisions, records: list[ConsumerRecord]) -> Acks:
        s, m = self.settings, self.metrics
        now = time.time()
        acks: Acks = []
        if s.emit_predictions:  # first: a prediction does not wait for the pending store
            acks += await self.outputs.predictions(batch, decisions, records)
        if decisions.asked_indices.size:
            await self._store_asked(batch, decisions, now)
        asked = decisions.asked_indices
        self._on_decided()
        if asked.size:
            leader = getattr(self.sampler.model, "leader", None)
            acks += await self.outputs.label_requests(batch, decisions, records, asked.tolist(), now, leader)
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
        return acks

    async def _store_asked(self, batch: ItemBatch, decisions: Decisions, now: float) -> None:
        """The pending items must exist before anyone can see their label requests; asks the
        store could not hold are withdrawn (their budget is forfeited, not caught up later)."""
        asked = decisions.asked_indices
        try:
            known = await self.store.put_many(
                [batch.ids[i] for i in asked], batch.X[asked], now, self.settings.pending_ttl_seconds
            )
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            self.sampler.cancel(decisions, asked.tolist(), batch.ids)
            self.counts["requests_cancelled"] += int(asked.size)
            self.metrics.requests_cancelled.inc(int(asked.size))
            return
        if known:  # decided again after a restart, and its label is already here
            known_set = set(known)
            again = [i for i in asked if batch.ids[i] in known_set]
            self.sampler.cancel(decisions, again, batch.ids)
            self.counts["not_reasked"] += len(known)
        self.backlog.asked_since_sweep += int(asked.size) - len(known)

    def _observe_latency_when_acked(self, stamps: np.ndarray, acks: list[asyncio.Future[Any]]) -> None:
        """Item timestamp to the broker's acknowledgement of the item's outputs (what
        streamer_item_latency_seconds says); items with no output count at their decision."""
        histogram = self.metrics.item_latency
        if not acks:
            observe_many(histogram, np.maximum(0.0, time.time() - stamps))
            return

        def acked(outputs: asyncio.Future[Any]) -> None:
            if not outputs.cancelled() and outputs.exception() is None:  # failures are reported elsewhere
                observe_many(histogram, np.maximum(0.0, time.time() - stamps))

        asyncio.gather(*acks).add_done_callback(acked)
