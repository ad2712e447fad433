"""Commit only what the broker acknowledged: the items consumer's offsets, in batch order.

A micro-batch's offsets may be committed once every output it produced (label requests,
predictions, dead letters) was acknowledged by the broker, and every earlier batch's too. The
next batches are decided meanwhile (at most ``max_unacked`` in flight), and commits run in the
background, one at a time, so no broker round trip sits on the hot path. Like quixstreams'
checkpoint object: flush, confirm delivery, then commit.

A crash re-decides at most the batches in flight and those since the last commit returned
(at-least-once; outputs carry the item id, so their consumers drop duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

__all__ = ["AckedCommits", "commit_quietly"]

log = logging.getLogger(__name__)

Offsets = Mapping[TopicPartition, int]


async def commit_quietly(consumer: Any, offsets: Offsets) -> None:
    """Commit ``offsets``; a commit refused because a rebalance took the partition away is
    logged (its new owner re-decides those items: at-least-once), not raised."""
    if not offsets:
        return
    try:
        await consumer.commit(dict(offsets))
    except (CommitFailedError, KafkaError) as exc:
        log.warning("commit of %s failed: %s", dict(offsets), exc)


class AckedCommits:
    """Batches whose outputs are in flight, and the offsets they release once acknowledged.

    Parameters
    ----------
    commit
        Commits offsets to the broker (``commit_quietly`` bound to a consumer).
    max_unacked
        Batches produced but not acknowledged yet; :meth:`track` waits beyond it.
    """

    def __init__(self, commit: Callable[[Offsets], Awaitable[None]], max_unacked: int = 8) -> None:
        self._commit = commit
        self.max_unacked = max_unacked
        self._unacked: deque[tuple[asyncio.Future[Any], Offsets]] = deque()
        self._acked: dict[TopicPartition, int] = {}  # acknowledged, not committed yet
        self._committing: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Batches whose outputs the broker has not acknowledged yet."""
        return len(self._unacked)

    async def track(self, acks: list[asyncio.Future[Any]], offsets: Offsets) -> None:
        """A batch whose ``offsets`` may be committed once its ``acks`` (and every earlier
        batch's) resolved."""
        pending: asyncio.Future[Any] = asyncio.gather(*acks)  # done at once when there are none
        self._unacked.append((pending, offsets))
        while len(self._unacked) > self.max_unacked:
            await asyncio.wait([self._unacked[0][0]])
            self.reap()
        self.commit_ready()

    def reap(self) -> None:
        """Move acknowledged batches (in order) to the offsets to commit; a failed one (its
        outputs were not acknowledged) raises, which stops the service with nothing committed
        past it."""
        while self._unacked and self._unacked[0][0].done():
            pending, offsets = self._unacked.popleft()
            if not pending.cancelled() and pending.exception() is not None:
                raise pending.exception()  # type: ignore[misc]
            self._acked.update(offsets)

    def commit_ready(self) -> None:
        """Start a background commit of what is acknowledged, unless one is running."""
        self.reap()
        busy = self._committing is not None and not self._committing.done()
        if self._acked and not busy:
            offsets, self._acked = self._acked, {}
            self._committing = asyncio.create_task(self._commit(offsets), name="commit")

    async def commit_acknowledged(self, wait_s: float) -> None:
        """Before partitions move (a rebalance): wait at most ``wait_s`` for the outputs in
        flight, then commit everything acknowledged. What is still unacknowledged is decided
        again by the next owner (at-least-once), never lost."""
        if self._unacked:
            await asyncio.wait([pending for pending, _ in self._unacked], timeout=wait_s)
        try:
            self.reap()
        except Exception as exc:  # outputs the broker refused: the items loop stops on them
            log.warning("outputs failed before a rebalance: %s", exc)
            return
        await self._commit_rest(wait_s)

    async def drain(self) -> None:
        """Stopping: wait for every output in flight, then commit everything acknowledged."""
        if self._unacked:
            await asyncio.wait([pending for pending, _ in self._unacked])
        self.reap()
        await self._commit_rest(None)

    async def _commit_rest(self, wait_s: float | None) -> None:
        if self._committing is not None and not self._committing.done():
            await asyncio.wait([self._committing], timeout=wait_s)
        if self._acked:
            offsets, self._acked = self._acked, {}
            await self._commit(offsets)
