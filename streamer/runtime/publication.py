"""Scale-out: the learner publishes its model, scorers swap each new version in at once.

The learner publishes after every label batch it learned (a model over ``SMALL_MODEL_BYTES``,
or any model while no scorer listens, at most every half ``--model-staleness-seconds``), and
each publication notifies the scorers
(Redis pub/sub on the board's channel), which fetch it within milliseconds instead of at their
next poll. A scorer still polls the small meta key every quarter staleness bound, so a
notification lost with a reconnect delays a model by that much at most. Publications carry
learned weights only: what a scorer learned from its own traffic (a torch head's novelty
memory) stays with the scorer and survives the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.metrics import Metrics
from streamer.runtime.health import STORE_ERRORS, Health
from streamer.runtime.lease import LearnerRole
from streamer.store.base import LeaseLostError
from streamer.store.coordination import ModelBoard

__all__ = ["SMALL_MODEL_BYTES", "ModelPublication"]

log = logging.getLogger(__name__)

SMALL_MODEL_BYTES = 1_048_576  # published after every label batch; larger ones are rate-limited


class ModelPublication:
    def __init__(self, board: ModelBoard, sampler: Sampler, key: bytes, settings: Settings,
                 role: LearnerRole, health: Health, metrics: Metrics,
                 lease_lost: Callable[[], Awaitable[bool]]) -> None:
        self.board = board
        self.sampler = sampler
        self.key = key
        self.role = role
        self.health = health
        self.metrics = metrics
        self._lease_lost = lease_lost  # True when this replica holds the lease again
        self.staleness = settings.model_staleness_seconds
        self.sequence: int | None = None  # publication in use (or last published)
        self._published_version: int | None = None
        self._last_publish = 0.0
        self._last_size = 0

    async def publish(self, force: bool = False) -> None:
        """Publish the model if it changed since the last publication."""
        if not self.role.learning:
            return
        model = self.sampler.model
        now = time.monotonic()
        if not force and (
            model.version == self._published_version
            or (now - self._last_publish < self.staleness / 2.0
                and (self._last_size > SMALL_MODEL_BYTES or not await self._scorers_listening()))
        ):
            return
        blob = model.to_bytes(self.key, weights_only=True)
        try:
            try:
                self.sequence = await self.board.publish(model.version, blob, fence=self.role.fence())
            except LeaseLostError:
                if not await self._lease_lost():
                    raise
                self.sequence = await self.board.publish(model.version, blob, fence=self.role.fence())
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            return
        except LeaseLostError:
            log.error("model version %d not published: another replica took the learner lease over",
                      model.version)
            raise  # this replica stops, as when its lease keeper finds the lease taken
        self._published_version, self._last_publish, self._last_size = model.version, now, len(blob)
        log.debug("published model version %d (%d bytes)", model.version, len(blob))

    async def _scorers_listening(self) -> bool:
        """Whether any scorer waits for the notices: with none (one replica), the model is
        published at most every half staleness bound, like a large one -- signing a copy per
        label batch that nobody reads is work on the event loop -- so a scorer that starts
        later still finds one within the bound, and once it listens each batch is published."""
        try:
            return await self.board.listeners() > 0
        except STORE_ERRORS:
            return True  # publish, whose own error handling reports the store

    async def refresh(self) -> None:
        """Use the learner's newest published model, if it is not the one in use."""
        ok, latest = await self.health.attempt(self.board.latest)
        if not ok or latest is None or latest.sequence == self.sequence:
            return
        ok, published = await self.health.attempt(self.board.fetch)
        if not ok or published is None or published.blob is None:
            return
        try:
            model = type(self.sampler.model).from_bytes(published.blob, self.key)
            self.sampler.use_model(model)
        except ValueError as exc:  # refused (signature, width): keep scoring with ours
            log.error("the published model version %d was refused: %s", published.version, exc)
            self.sequence = published.sequence  # not retried until the next one
            return
        self.sequence = published.sequence
        self.metrics.model_staleness.observe(max(0.0, time.time() - published.published_at))
        self.metrics.model_version.set(model.version)

    async def run(self, stop: asyncio.Event) -> None:
        """While learning: publish what the label batches did not (rate-limited models).
        Otherwise (a scorer): swap in each publication as its notification arrives."""
        period = self.staleness / 4.0
        notices: Any = None
        try:
            while not stop.is_set():
                if self.role.learning:
                    await self._close(notices)
                    notices = None
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=period)
                    await self.publish()
                    continue
                if not self.role.decides:  # a standby learner: nothing to score with
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=period)
                    continue
                notices = notices or await self._subscribe()
                if not await self._next_notice(notices, period):
                    await self._close(notices)
                    notices = None
                if not stop.is_set():
                    await self.refresh()
        finally:
            await self._close(notices)

    async def _subscribe(self) -> Any:
        try:
            return await self.board.subscribe()
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            return None

    async def _next_notice(self, notices: Any, period: float) -> bool:
        """Wait for a publication's notice, at most ``period`` (then poll anyway); False when
        the subscription broke (it is made again at the next turn)."""
        if notices is None:
            await asyncio.sleep(period)
            return True
        try:
            await notices.get_message(ignore_subscribe_messages=True, timeout=period)
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            await asyncio.sleep(period)
            return False
        return True

    async def _close(self, notices: Any) -> None:
        if notices is not None:
            with contextlib.suppress(Exception):
                await notices.aclose()
