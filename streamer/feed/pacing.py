"""When each item is due: at the stream's own timestamps, at a fixed rate, or at once."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """The monotonic time each item is due, one call per item in stream order.

    Parameters
    ----------
    rate
        Items per second, evenly spaced from the first item.
    speed
        Replay at the items' own ``ts``: an item ``dt`` seconds after the first is due
        ``dt / speed`` seconds after it was (1 = real time, 10 = ten times faster). An item
        whose ``ts`` goes back in time is due at once.
    clock
        Monotonic seconds (tests pass a fake clock).

    With neither, every item is due at once (:meth:`due` returns None).

    Examples
    --------
    >>> now = [100.0]
    >>> pacer = Pacer(speed=2.0, clock=lambda: now[0])
    >>> [pacer.due(ts) for ts in (50.0, 51.0, 54.0, 53.0)]
    [100.0, 100.5, 102.0, 101.5]
    >>> pacer = Pacer(rate=4.0, clock=lambda: now[0])
    >>> [pacer.due(None) for _ in range(3)]
    [100.0, 100.25, 100.5]
    """

    def __init__(self, *, rate: float | None = None, speed: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and speed is not None:
            raise ValueError("pace by --rate or by the timestamps (--speed/--realtime), not both")
        if rate is not None and not rate > 0:
            raise ValueError(f"--rate must be above 0 items/s, got {rate}")
        if speed is not None and not speed > 0:
            raise ValueError(f"--speed must be above 0, got {speed}")
        self.rate = rate
        self.speed = speed
        self._clock = clock
        self._start: float | None = None
        self._first_ts: float | None = None
        self._count = 0

    @property
    def paced(self) -> bool:
        """Whether items wait for their time at all."""
        return self.rate is not None or self.speed is not None

    @property
    def by_timestamp(self) -> bool:
        """Whether items need a ``ts``."""
        return self.speed is not None

    def due(self, ts: float | None) -> float | None:
        """When the next item is due (monotonic seconds); None = now, unpaced.

        Raises
        ------
        ValueError
            Pacing by timestamps and the item has none.
        """
        if self.rate is None and self.speed is None:
            return None
        if self._start is None:
            self._start = self._clock()
        if self.rate is not None:
            due = self._start + self._count / self.rate
            self._count += 1
            return due
        if ts is None:
            raise ValueError("the item has no ts: replaying at the stream's own pace needs one "
                             "(a ts column or field); use --rate instead")
        if self._first_ts is None:
            self._first_ts = ts
        return self._start + (ts - self._first_ts) / self.speed  # type: ignore[operator]
