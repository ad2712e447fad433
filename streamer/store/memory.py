"""In-process PendingStore: for a single replica, tests and the simulator.

Bounded everywhere, and nothing leaves silently: when ``max_pending`` items wait,
putting another expires the oldest and the next :meth:`sweep` counts it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamer.store.base import Joined, JoinOutcome


def check_put(ids: Sequence[str], X: np.ndarray) -> np.ndarray:
    """Check the arguments of ``put_many`` (shared by every store); return X as float64.

    Examples
    --------
    >>> check_put(["a"], np.zeros((2, 3)))
    Traceback (most recent call last):
    ...
    ValueError: put_many got 1 ids but X has 2 rows: pass one id per row
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"put_many needs a 2-D X of shape (B, d), got shape {X.shape}")
    if len(ids) != X.shape[0]:
        raise ValueError(
            f"put_many got {len(ids)} ids but X has {X.shape[0]} rows: pass one id per row"
        )
    return X


@dataclass(slots=True)
class _Pending:
    features: np.ndarray
    requested_at: float
    deadline: float
    seq: int  # tells a live heap entry from one left behind by take or a re-put


class MemoryPendingStore:
    """Pending items in dicts; every outcome of the Redis store, without a server.

    Each requested item ends exactly once as joined (``take``) or expired (counted
    by ``sweep``, whether the sweep, an overflow or a late ``take`` removed it).

    Parameters
    ----------
    max_pending
        At most this many items wait; the oldest is expired to make room.
    max_applied
        How many applied ids are remembered to report duplicates.
    tombstone_seconds
        How long an expired id is remembered so its label is ``LATE``, not ``UNKNOWN``.
    max_tombstones
        Bound on remembered expired ids (default: ``max_pending``).

    Examples
    --------
    >>> import asyncio
    >>> store = MemoryPendingStore()
    >>> async def demo():
    ...     await store.put_many(["a"], np.array([[1.0, 2.0]]), requested_at=0.0, ttl_seconds=60)
    ...     first = await store.take("a", now=1.0)
    ...     again = await store.take("a", now=2.0)
    ...     return first[0], first[1].features.tolist(), again[0]
    >>> asyncio.run(demo())
    (<JoinOutcome.JOINED: 'joined'>, [1.0, 2.0], <JoinOutcome.DUPLICATE: 'duplicate'>)
    """

    def __init__(
        self,
        *,
        max_pending: int = 100_000,
        max_applied: int = 1_000_000,
        tombstone_seconds: float = 3600.0,
        max_tombstones: int | None = None,
    ) -> None:
        if max_pending < 1 or max_applied < 1:
            raise ValueError(
                f"max_pending and max_applied must be at least 1, got {max_pending}, {max_applied}"
            )
        self.max_pending = max_pending
        self.max_applied = max_applied
        self.tombstone_seconds = tombstone_seconds
        self.max_tombstones = max_tombstones if max_tombstones is not None else max_pending
        self._pending: dict[str, _Pending] = {}  # insertion order = age, for overflow
        self._claimed: dict[str, tuple[str, _Pending]] = {}  # owner, entry: not committed yet
        self._checkpoint: bytes | None = None
        self._deadlines: list[tuple[float, int, str]] = []  # min-heap, lazily cleaned
        self._applied: dict[str, None] = {}  # an insertion-ordered set, oldest first
        self._tombstones: dict[str, float] = {}  # id -> forget after this time
        self._expired_uncounted = 0
        self._seq = itertools.count()

    async def put_many(
        self, ids: Sequence[str], X: np.ndarray, requested_at: float, ttl_seconds: float
    ) -> list[str]:
        """Store each row of ``X`` under its id until ``requested_at + ttl_seconds``.

        Putting an id that is already pending replaces its features and deadline
        (items are processed at least once). Returns the ids not stored because their
        label was already claimed or applied.
        """
        X = check_put(ids, X)
        deadline = requested_at + ttl_seconds
        skipped = []
        for item_id, row in zip(ids, X, strict=True):
            if item_id in self._applied or item_id in self._claimed:
                skipped.append(item_id)
                continue
            old = self._pending.pop(item_id, None)
            if old is None and len(self._pending) >= self.max_pending:
                self._expire(next(iter(self._pending)), requested_at)
            seq = next(self._seq)
            self._pending[item_id] = _Pending(row.copy(), requested_at, deadline, seq)
            heapq.heappush(self._deadlines, (deadline, seq, item_id))
        self._compact_heap()
        return skipped

    durable = False  # lost with the process

    async def claim(
        self, item_id: str, now: float, owner: str = "-"
    ) -> tuple[JoinOutcome, Joined | None]:
        """Claim the pending item for a label (see ``PendingStore.claim``)."""
        if item_id in self._applied:
            return JoinOutcome.DUPLICATE, None
        if item_id in self._claimed:  # claimed, not committed: the same owner may re-claim
            claimer, entry = self._claimed[item_id]
            if claimer != owner:
                return JoinOutcome.DUPLICATE, None
            return JoinOutcome.JOINED, Joined(item_id, entry.features, entry.requested_at)
        entry = self._pending.get(item_id)
        if entry is None:
            late = self._tombstones.get(item_id, -np.inf) > now
            return (JoinOutcome.LATE if late else JoinOutcome.UNKNOWN), None
        if now >= entry.deadline:
            self._expire(item_id, now)
            return JoinOutcome.LATE, None
        self._claimed[item_id] = (owner, self._pending.pop(item_id))
        return JoinOutcome.JOINED, Joined(item_id, entry.features, entry.requested_at)

    async def claim_many(
        self, claims: Sequence[tuple[str, str]], now: float
    ) -> list[tuple[JoinOutcome, Joined | None]]:
        """:meth:`claim` of each ``(item_id, owner)``, in order."""
        return [await self.claim(item_id, now, owner) for item_id, owner in claims]

    async def commit(
        self,
        applied_ids: Sequence[str],
        checkpoint: bytes | None = None,
        fence: tuple[str, bytes] | None = None,
    ) -> None:
        """Mark ``applied_ids`` applied and keep ``checkpoint`` (see ``PendingStore.commit``;
        one process has no other learner to be fenced from, so ``fence`` is not checked)."""
        for item_id in applied_ids:
            self._claimed.pop(item_id, None)
            self._pending.pop(item_id, None)
            self._remember_applied(item_id)
        if checkpoint is not None:
            self._checkpoint = bytes(checkpoint)

    async def take(self, item_id: str, now: float) -> tuple[JoinOutcome, Joined | None]:
        """Claim and commit at once (see ``PendingStore.take``)."""
        outcome, joined = await self.claim(item_id, now, owner=f"take-{next(self._seq)}")
        if joined is not None:
            await self.commit([item_id])
        return outcome, joined

    async def load_checkpoint(self) -> bytes | None:
        return self._checkpoint

    async def sweep(self, now: float) -> int:
        """Expire items whose deadline is ``<= now``; return how many expired since last sweep."""
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, seq, item_id = heapq.heappop(heap)
            entry = self._pending.get(item_id)
            if entry is not None and entry.seq == seq:
                self._expire(item_id, now)
        self._forget_tombstones(now)
        expired, self._expired_uncounted = self._expired_uncounted, 0
        return expired

    async def pending_count(self) -> int:
        return len(self._pending)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def _expire(self, item_id: str, now: float) -> None:
        del self._pending[item_id]
        self._expired_uncounted += 1
        self._tombstones.pop(item_id, None)  # re-insert so insertion order stays age order
        self._tombstones[item_id] = now + self.tombstone_seconds
        if len(self._tombstones) > self.max_tombstones:
            del self._tombstones[next(iter(self._tombstones))]

    def _forget_tombstones(self, now: float) -> None:
        tombstones = self._tombstones
        while tombstones:
            oldest = next(iter(tombstones))
            if tombstones[oldest] > now:
                break
            del tombstones[oldest]

    def _remember_applied(self, item_id: str) -> None:
        self._applied[item_id] = None
        if len(self._applied) > self.max_applied:
            del self._applied[next(iter(self._applied))]

    def _compact_heap(self) -> None:
        # Entries of taken or replaced items linger until their deadline; rebuild when
        # they outnumber the live ones so memory stays proportional to what is pending.
        if len(self._deadlines) > 2 * len(self._pending) + 1024:
            self._deadlines = [(p.deadline, p.seq, i) for i, p in self._pending.items()]
            heapq.heapify(self._deadlines)
