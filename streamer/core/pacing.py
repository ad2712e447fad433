"""Pacing: spreading labels over a stream and over time.

:class:`RandomQuota` picks uniformly random items at an exact long-run rate (the budget
controller's exploration); :class:`TokenBucket` caps labels per second (the sampler's
``labels_per_second``). Both are re-exported by :mod:`streamer.core.budget`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

__all__ = ["RandomQuota", "TokenBucket"]


class RandomQuota:
    """Pick uniformly random items at an exact long-run rate.

    Items are grouped in consecutive blocks of ``1 / rate`` items (a real number) and one
    position is drawn uniformly inside each block. Every item has the same chance ``rate`` of
    being picked, and after ``n`` items the number of picks is within one of ``rate * n``.

    Parameters
    ----------
    rate
        Share of items to pick, in ``[0, 1]``. ``0`` never picks.
    rng
        Source of randomness.

    Examples
    --------
    >>> import numpy as np
    >>> quota = RandomQuota(0.25, np.random.default_rng(1))
    >>> sum(quota.next() for _ in range(100))
    25
    """

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        self._rng = rng
        self._block = 1.0 / rate if rate > 0 else math.inf
        self._index = 0  # items seen so far
        self._k = 0  # current block number
        self._uniforms: list[float] = []
        self._pick = self._draw()

    def _uniform(self) -> float:
        # Draw in chunks: one numpy call per 256 picks, not one per item.
        if not self._uniforms:
            self._uniforms = self._rng.random(256).tolist()
        return self._uniforms.pop()

    def _draw(self) -> float:
        if math.isinf(self._block):
            return math.inf
        start = self._k * self._block
        return math.floor(start + self._uniform() * self._block)

    def picks(self, n: int) -> set[int]:
        """Advance by ``n`` items; return the positions among them (0 to n-1) that are
        picked: the same picks as ``n`` calls of :meth:`next`, in one call per batch."""
        start, end = self._index, self._index + n
        picked: set[int] = set()
        while self._pick < end:
            i = int(self._pick)  # an integer position, never behind the index
            picked.add(i - start)
            self._k += 1
            self._pick = max(self._draw(), i + 1)
        self._index = end
        return picked

    def next(self) -> bool:
        """Advance by one item; return whether it is picked."""
        i = self._index
        self._index += 1
        if i < self._pick:
            return False
        # The pick position is an integer inside the block, so i == pick here.
        self._k += 1
        self._pick = max(self._draw(), i + 1)
        return True


class TokenBucket:
    """At most ``rate`` labels per second on average, and ``capacity`` at once.

    A second cap next to the share budget, for annotation teams that work at a fixed pace:
    the controller never asks more labels in a batch than the bucket holds.

    Parameters
    ----------
    rate
        Tokens (labels) added per second, ``> 0``.
    capacity
        Most tokens held (the largest burst), ``>= 1``; defaults to one second's worth (at
        least 1).
    clock
        Seconds, monotonic; ``streamer simulate`` passes the stream's own clock.

    Examples
    --------
    >>> now = [0.0]
    >>> bucket = TokenBucket(2.0, capacity=4, clock=lambda: now[0])
    >>> bucket.available()
    4
    >>> bucket.take(4); now[0] = 1.0; bucket.available()
    2
    """

    def __init__(
        self, rate: float, *, capacity: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (isinstance(rate, int | float) and rate > 0 and math.isfinite(rate)):
            raise ValueError(f"labels per second must be a positive number, got {rate!r}")
        capacity = max(1.0, float(rate)) if capacity is None else capacity
        if not (isinstance(capacity, int | float) and capacity >= 1):
            raise ValueError(f"token bucket capacity must be at least 1 label, got {capacity!r}")
        self._rate, self._capacity, self._clock = float(rate), float(capacity), clock
        self._tokens = self._capacity
        self._last = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def available(self) -> int:
        """Whole labels that may be asked now."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + max(0.0, now - self._last) * self._rate)
        self._last = now
        return int(self._tokens + 1e-9)

    def take(self, n: int) -> None:
        """Spend ``n`` tokens (call after :meth:`available`)."""
        self._tokens = max(0.0, self._tokens - n)

    def give_back(self, n: int) -> None:
        """Return ``n`` tokens spent on labels that were never requested."""
        self._tokens = min(self._capacity, self._tokens + max(0, int(n)))
