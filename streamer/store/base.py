"""The PendingStore protocol: features of requested items, held until labelled or expired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np


class JoinOutcome(StrEnum):
    """What happened to one incoming label."""

    JOINED = "joined"  # matched a pending item: apply it to the model
    DUPLICATE = "duplicate"  # this item's label was already applied
    LATE = "late"  # the item was pending but its deadline had passed
    UNKNOWN = "unknown"  # no such pending item was ever stored (or already forgotten)
    INVALID = "invalid"  # the label message itself was unusable


class LeaseLostError(RuntimeError):
    """A fenced write by a learner whose lease another replica has taken over."""


@dataclass(frozen=True, slots=True)
class Joined:
    """A label matched with its pending item's features."""

    item_id: str
    features: np.ndarray  # float64, shape (d,)
    requested_at: float


class PendingStore(Protocol):
    """Where requested items wait for their label, and where checkpoints live.

    Exactly-once labels: the service *claims* an item when its label arrives, learns, and
    later *commits* the applied ids together with a checkpoint of the model and the label
    offsets. A crash between the two loses nothing: the restored service re-reads the labels
    from the checkpoint's offsets and claims the same items again.

    Every method is async so the Redis implementation does not block the loop;
    the in-memory implementation simply returns.
    """

    durable: bool  # True when the store survives a restart of the service (Redis)

    async def put_many(
        self, ids: Sequence[str], X: np.ndarray, requested_at: float, ttl_seconds: float
    ) -> list[str]:
        """Store the features of requested items with a deadline of now + ttl.

        Returns the ids not stored because their label was already claimed or applied (an
        item decided again after a crash); no label should be requested for those.
        """
        ...

    async def claim(
        self, item_id: str, now: float, owner: str = "-"
    ) -> tuple[JoinOutcome, Joined | None]:
        """Claim the pending item for a label, keeping its features until :meth:`commit`.

        ``owner`` names who learns from the label: the labels partition it came from, which
        a restarted service reads again. Returns ``(JOINED, Joined)`` for a pending item --
        and again for an item the same owner claimed but did not commit yet (a restarted
        service re-reading labels after its checkpoint), whatever its deadline by then;
        ``(DUPLICATE, None)`` once its label was committed as applied, or while another
        owner holds the claim; ``(LATE, None)`` if its deadline passed before the claim; and
        ``(UNKNOWN, None)`` if no such item is pending.
        """
        ...

    async def claim_many(
        self, claims: Sequence[tuple[str, str]], now: float
    ) -> list[tuple[JoinOutcome, Joined | None]]:
        """:meth:`claim` of each ``(item_id, owner)``, in order, in one round trip to the store."""
        ...

    async def commit(
        self,
        applied_ids: Sequence[str],
        checkpoint: bytes | None = None,
        fence: tuple[str, bytes] | None = None,
    ) -> None:
        """In one atomic step: mark ``applied_ids`` applied, forget their features, and
        store ``checkpoint`` (the model and label offsets that include them) as the newest.

        ``fence``: ``(lease key, token)``; a shared store writes nothing and raises
        :class:`LeaseLostError` unless that lease is still held with that token."""
        ...

    async def take(self, item_id: str, now: float) -> tuple[JoinOutcome, Joined | None]:
        """:meth:`claim` and :meth:`commit` at once, for callers without checkpoints."""
        ...

    async def load_checkpoint(self) -> bytes | None:
        """The newest checkpoint written by :meth:`commit`, or None."""
        ...

    async def sweep(self, now: float) -> int:
        """Forget pending items past their deadline; return how many expired (counted)."""
        ...

    async def pending_count(self) -> int: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
