"""Degraded mode: what a failing store does to the service, and the retry that waits it out.

An outage (Redis down, a timeout) degrades the service: items keep being decided and predicted,
no label is requested, labels wait in Kafka, ``/readyz`` answers 503, and everything resumes
when the store answers again. A refusal (WRONGTYPE, NOPERM, OOM, bad credentials) is no outage:
waiting does not mend it, so it stops the service with Redis's own message
(:mod:`streamer.store.errors`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from streamer.metrics import Metrics
from streamer.store.errors import refusal, refused

__all__ = ["RETRY_SECONDS", "STORE_ERRORS", "Health", "Stopping"]

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)  # backoff while the store is down
# what a failing store raises (redis-py errors, sockets, timeouts)
STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

T = TypeVar("T")


class Stopping(Exception):
    """Raised out of :meth:`Health.retry` when the service stops while the store is down."""


class Health:
    """Which components are degraded, and why; the store retry of every concern.

    ``stopping`` is set by whoever stops the runtime (the service's run loop, the Faust
    integration's shutdown): a retry in progress then gives up with :class:`Stopping`.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.degraded: dict[str, str] = {}  # component -> error
        self.stopping = asyncio.Event()

    def degrade(self, component: str, exc: BaseException) -> None:
        """Record an outage of ``component``; raise the refusal instead when it is not one
        (call it inside the ``except`` so the refusal chains the store's error)."""
        if refused(exc):
            raise refusal(exc)
        if component not in self.degraded:
            log.error("%s unavailable, running degraded (no label requests, labels wait): %r",
                      component, exc)
            self.metrics.degraded.labels(component=component).set(1)
        self.degraded[component] = repr(exc)

    def recover(self, component: str) -> None:
        if self.degraded.pop(component, None) is not None:
            log.warning("%s answers again: leaving degraded mode", component)
            self.metrics.degraded.labels(component=component).set(0)

    async def retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a store call, retrying with backoff while the store is down (labels wait)."""
        attempt = 0
        while True:
            try:
                result = await call()
            except STORE_ERRORS as exc:
                self.degrade("store", exc)
                if self.stopping.is_set():
                    raise Stopping from exc
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
            else:
                if attempt:
                    self.recover("store")
                return result

    async def attempt(self, call: Callable[[], Awaitable[T]], component: str = "store") -> tuple[bool, T | Any]:
        """Run a store call once: ``(True, result)``, or ``(False, None)`` after degrading."""
        try:
            result = await call()
        except STORE_ERRORS as exc:
            self.degrade(component, exc)
            return False, None
        self.recover(component)
        return True, result
