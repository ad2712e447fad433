"""The items :class:`~streamer.core.sampler.Sampler` asked about and has no label for yet.

An item whose label is in flight is never asked again; each remembers how likely it was to be
asked, so its label is weighed by ``1 / P(asked)`` when it arrives. :class:`SamplerInFlight`
is a part of the Sampler (it inherits it; the state lives on the Sampler, which pickles as one
object).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np

from streamer.core.budget import BudgetController
from streamer.core.decisions import EXPLORE, SKIP, Decisions

__all__ = ["SamplerInFlight"]


class SamplerInFlight:
    """The Sampler's in-flight bookkeeping (mixed into :class:`~streamer.core.sampler.Sampler`)."""

    # set by Sampler.__init__
    # asked-but-unanswered id -> P(asked), oldest first; a plain dict, whose copy (a checkpoint's
    # snapshot) is ten times faster than an OrderedDict's
    _in_flight: dict[str, float]
    _max_in_flight: int
    _blocked: int
    _by_reason: Counter[str]
    _bucket: Any
    _controller: BudgetController

    def _in_flight_mask(self, ids: Sequence[str] | None, n: int) -> np.ndarray | None:
        if ids is None:
            return None
        flight = self._in_flight
        unique = set(ids)
        if len(unique) == n and not flight.keys() & unique:  # the usual batch, checked in C
            return None
        seen: set[str] = set()
        mask = np.zeros(n, dtype=bool)
        for i, item_id in enumerate(ids):
            if item_id in flight or item_id in seen:
                mask[i] = True
            seen.add(item_id)
        n_blocked = int(mask.sum())
        self._blocked += n_blocked
        return mask if n_blocked else None

    def _remember(self, ids: Iterable[str], propensities: Iterable[float]) -> None:
        flight = self._in_flight
        for item_id, propensity in zip(ids, propensities, strict=True):
            flight[item_id] = propensity
        excess = len(flight) - self._max_in_flight
        if excess > 0:  # the oldest go (dict iteration is in insertion order)
            for item_id in list(islice(flight, excess)):
                del flight[item_id]

    def _propensity(self, reason: str) -> float:
        """How likely an asked item was to be asked: an exploration pick was one of a uniform
        ``budget * explore`` share; the gate (and cold start, catch-up) would have asked it."""
        rate = self._controller.explore_rate
        return rate if reason == EXPLORE and rate > 0 else 1.0

    def importance_weights(self, ids: Sequence[str]) -> np.ndarray:
        """``1 / P(asked)`` of each id still in flight; 1 for ids this sampler did not ask."""
        return np.array([1.0 / (self._in_flight.get(item_id) or 1.0) for item_id in ids])

    @contextmanager
    def in_flight_detached(self) -> Iterator[tuple[list[str], list[float]]]:
        """Within the block the sampler holds no in-flight ids (it pickles small); the block
        gets a copy of them, ids and propensities (two flat lists copy twice as fast as pairs).
        Use it without awaiting inside: decisions must not run meanwhile."""
        flight = self._in_flight
        self._in_flight = {}
        try:
            yield list(flight), list(flight.values())
        finally:
            self._in_flight = flight

    def restore_in_flight(self, ids: Iterable[str], propensities: Iterable[float]) -> None:
        """The in-flight ids of a checkpoint (oldest first), as :meth:`in_flight_detached` gave them."""
        self._in_flight = dict(zip(ids, propensities, strict=True))

    def forget(self, ids: Iterable[str]) -> None:
        """Stop treating ``ids`` as in flight (their label expired or was given up)."""
        for item_id in ids:
            self._in_flight.pop(item_id, None)

    def cancel(self, decisions: Decisions, indices: Sequence[int], ids: Sequence[str] | None = None) -> None:
        """Withdraw asks that could not be requested (the pending store failed).

        The rows become skips (reason ``skip``), their ids leave the in-flight set, and
        the budget controller forfeits them instead of catching up later.
        """
        rows = [int(i) for i in indices if decisions.ask[int(i)]]
        if not rows:
            return
        for i in rows:
            self._by_reason[decisions.reason[i]] -= 1
            decisions.ask[i] = False
            decisions.reason[i] = SKIP
        self._by_reason[SKIP] += len(rows)
        if ids is not None:
            self.forget([ids[i] for i in rows])
        if self._bucket is not None:
            self._bucket.give_back(len(rows))
        self._controller.cancel(len(rows))
