"""The label budget of the whole deployment: each replica adds its spend to a shared ledger.

A few times a second each replica adds what it planned and asked since its last sync (one
script call, not one per item) and steers its own threshold by its share of the other
replicas' deficit, so the budget holds for the deployment, not per replica.
"""

from __future__ import annotations

import asyncio
import contextlib

from streamer.core.sampler import Sampler
from streamer.metrics import Metrics
from streamer.runtime.health import Health
from streamer.store.coordination import BudgetLedger, LedgerTotals

__all__ = ["LEDGER_SECONDS", "SharedBudget"]

LEDGER_SECONDS = 0.25  # replicas add their spend to the shared budget this often


class SharedBudget:
    def __init__(self, ledger: BudgetLedger, sampler: Sampler, health: Health, metrics: Metrics) -> None:
        self.ledger = ledger
        self.sampler = sampler
        self.health = health
        self.metrics = metrics
        self.totals: LedgerTotals | None = None  # as of the last sync
        ctl = sampler.controller
        # the ledger gets what this process decides; what a restored controller counted
        # before was added by the process that decided it
        self._counted_at_start = (ctl.planned, ctl.asked)
        self._pushed = (0.0, 0)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sync()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=LEDGER_SECONDS)
        await self.sync()  # the last batches count too

    async def sync(self) -> None:
        """Add this replica's spend to the ledger; steer by its share of the others' deficit."""
        ctl = self.sampler.controller
        (planned0, asked0), (pushed_planned, pushed_asked) = self._counted_at_start, self._pushed
        planned = ctl.planned - planned0 - pushed_planned
        asked = ctl.asked - asked0 - pushed_asked
        ok, totals = await self.health.attempt(lambda: self.ledger.sync(planned, asked))
        if not ok:
            return
        self._pushed = (pushed_planned + planned, pushed_asked + asked)
        # the controller already counts its own deficit, including what a restored checkpoint
        # carried (which the process before us added to the ledger): the rest is the others'
        others = totals.deficit - (ctl.planned - ctl.asked)
        ctl.external = others / totals.replicas
        self.totals = totals
        self.metrics.budget_replicas.set(totals.replicas)
        if totals.planned > 0:
            self.metrics.global_spend.set(totals.asked / totals.planned)

    def status(self) -> dict[str, float | int] | None:
        if self.totals is None:
            return None
        return {"planned": round(self.totals.planned, 3), "asked": self.totals.asked,
                "replicas": self.totals.replicas}
