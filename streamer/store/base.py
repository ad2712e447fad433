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


@dataclass(frozen=True, slots=True)
class Joined:
    """A label matched with its pending item's features."""

    item_id: str
    features: np.ndarray  # float64, shape (d,)
    requested_at: float


class PendingStore(Protocol):
    """Where requested items wait for their label.

    Every method is async so the Redis implementation does not block the loop;
    the in-memory implementation simply returns.
    """

    async def put_many(
        self, ids: Sequence[str], X: np.ndarray, requested_at: float, ttl_seconds: float
    ) -> None:
        """Store the features of requested items with a deadline of now + ttl."""
        ...

    async def take(self, item_id: str, now: float) -> tuple[JoinOutcome, Joined | None]:
        """Claim the pending item for a label, exactly once.

        Returns ``(JOINED, Joined)`` the first time, ``(DUPLICATE, None)`` if a label for
        this id was already applied, ``(LATE, None)`` if its deadline passed, and
        ``(UNKNOWN, None)`` if no such item is pending.
        """
        ...

    async def sweep(self, now: float) -> int:
        """Forget pending items past their deadline; return how many expired (counted)."""
        ...

    async def pending_count(self) -> int: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
