"""Which label-request offsets an edge may commit, when requests finish out of order.

A person answers the fifth request before the second; the committed offset of a partition may
only pass requests that are finished (a task exists, a label was sent, it was skipped or it
expired). A restarted edge then re-reads exactly the requests that were not finished.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

Partition = TypeVar("Partition")


class OpenOffsets(Generic[Partition]):
    """Offsets read but not finished, per partition.

    >>> offsets = OpenOffsets()
    >>> for n in (5, 6, 7):
    ...     offsets.opened("p", n)
    >>> offsets.finished("p", 6); offsets.committable()
    {'p': 5}
    >>> offsets.finished("p", 5); offsets.committable()
    {'p': 7}
    >>> offsets.finished("p", 7); offsets.committable()
    {'p': 8}
    >>> offsets.committable()  # nothing new since
    {}
    """

    def __init__(self) -> None:
        self._open: dict[Partition, list[int]] = {}  # heap of open offsets
        self._done: dict[Partition, set[int]] = {}  # finished, still above an open one
        self._next: dict[Partition, int] = {}  # one past the highest offset read
        self._committed: dict[Partition, int] = {}

    def opened(self, partition: Partition, offset: int) -> None:
        heapq.heappush(self._open.setdefault(partition, []), offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: Partition, offset: int) -> None:
        self._done.setdefault(partition, set()).add(offset)
        heap = self._open.get(partition, [])
        done = self._done[partition]
        while heap and heap[0] in done:
            done.discard(heapq.heappop(heap))

    def open_count(self) -> int:
        return sum(len(heap) - len(self._done.get(p, ())) for p, heap in self._open.items())

    def committable(self) -> dict[Partition, int]:
        """Per partition, the offset to commit where it moved since the last call."""
        moved = {}
        for partition, following in self._next.items():
            heap = self._open.get(partition)
            position = heap[0] if heap else following
            if self._committed.get(partition) != position:
                moved[partition] = self._committed[partition] = position
        return moved

    def forget(self, partitions: list[Partition]) -> None:
        """The partitions went to another consumer (a rebalance): it re-reads what was open."""
        for partition in partitions:
            for table in (self._open, self._done, self._next, self._committed):
                table.pop(partition, None)
