"""The pending items waiting for labels: expiry, the count, and backpressure.

At most ``max_pending`` items wait for labels; beyond that no label is requested and the
budget of those items is forfeited (annotators who are behind are not sent more work, and no
burst of requests follows when they catch up). While the store is degraded nothing is
requested either.
"""

from __future__ import annotations

import time
from collections import defaultdict

from streamer.config import Settings
from streamer.metrics import Metrics
from streamer.runtime.health import STORE_ERRORS, Health
from streamer.store.base import PendingStore

__all__ = ["SWEEP_SECONDS", "Backlog"]

SWEEP_SECONDS = 2.0  # how often overdue pending items are expired and counted


class Backlog:
    def __init__(self, settings: Settings, store: PendingStore, metrics: Metrics, health: Health,
                 counts: defaultdict[str, int]) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.health = health
        self.counts = counts
        self.pending = 0  # as of the last sweep
        self.asked_since_sweep = 0

    def capacity(self) -> int | None:
        """Labels that may be requested now: 0 while degraded or at ``max_pending``; None
        when a whole micro-batch fits."""
        if self.health.degraded:
            return 0
        room = self.settings.max_pending - self.pending - self.asked_since_sweep
        self.metrics.backpressure.set(1 if room <= 0 else 0)
        return max(0, room) if room < self.settings.max_batch else None

    async def sweep(self) -> None:
        """Expire overdue pending items and refresh the pending count."""
        try:
            expired = await self.store.sweep(time.time())
            self.counts["expired"] += expired
            self.metrics.pending_expired.inc(expired)
            self.pending = await self.store.pending_count()
            self.asked_since_sweep = 0
            self.metrics.pending.set(self.pending)
        except STORE_ERRORS as exc:  # a store outage must not stop deciding
            self.health.degrade("store", exc)
        else:
            self.health.recover("store")

    async def count_at_close(self) -> None:
        """The final status shows what really waits (best effort: the store may be gone)."""
        try:
            self.pending = await self.store.pending_count()
        except Exception:  # noqa: BLE001 -- closing: the last count is kept
            return
