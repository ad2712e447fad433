"""What the Label Studio bridge has sent for each task, and why Label Studio alone cannot keep it.

The record lives in the task's ``meta`` (``streamer``: ``sent`` annotation id -> answer, and the
annotation ids ``skipped``, ``deleted`` and ``no_choice``), so a restarted bridge reads it back
with the task. But Label Studio's own annotation endpoints save the whole task row they loaded
at the start of the request: a PATCH of an annotation that loaded the task just before the
bridge wrote its record writes the old ``meta`` back, and the record is gone. The next poll
would then take a correction for a first answer.

So the bridge also keeps every record it wrote for ``KEEP_SECONDS``, and reads a task's record
as the union of both. Such a stale save also moves the task's ``updated_at``, so the bridge reads
the task again at its next poll, sees that ``meta`` lacks what it remembers, and writes it
again. Only a bridge that crashes between the stale save and that next poll forgets the record.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 3600.0  # a stale save lands within one request; the repair at the next poll
_SETS = ("skipped", "deleted", "no_choice")


@dataclass(slots=True)
class TaskRecord:
    """One task's record: the answer sent per annotation id, and the ids seen per event."""

    sent: dict[str, str] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=lambda: {key: set() for key in _SETS})

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TaskRecord:
        stored = meta.get("streamer") or {}
        return cls(dict(stored.get("sent") or {}), {key: set(stored.get(key) or []) for key in _SETS})

    def merged(self, other: TaskRecord) -> TaskRecord:
        """Both records; ``other`` wins where both name one annotation (it is the newer)."""
        return TaskRecord({**self.sent, **other.sent},
                          {key: self.seen[key] | other.seen[key] for key in _SETS})

    def as_meta(self) -> dict[str, Any]:
        """The ``streamer`` value to store: empty parts left out, ids sorted (a stable form)."""
        out: dict[str, Any] = {"sent": dict(sorted(self.sent.items()))} if self.sent else {}
        out.update({key: sorted(ids) for key, ids in self.seen.items() if ids})
        return out

    def copy(self) -> TaskRecord:
        return TaskRecord(dict(self.sent), {key: set(ids) for key, ids in self.seen.items()})


class RecentRecords:
    """The records this bridge wrote in the last ``keep_seconds``, by task id."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, clock=time.monotonic) -> None:
        self.keep_seconds = keep_seconds
        self.clock = clock
        self._records: OrderedDict[Any, tuple[float, TaskRecord]] = OrderedDict()  # oldest first

    def recall(self, task_id: Any) -> TaskRecord | None:
        self._forget_old()
        kept = self._records.get(task_id)
        return None if kept is None else kept[1].copy()

    def remember(self, task_id: Any, record: TaskRecord) -> None:
        self._records.pop(task_id, None)
        self._records[task_id] = (self.clock(), record.copy())
        self._forget_old()

    def _forget_old(self) -> None:
        horizon = self.clock() - self.keep_seconds
        while self._records and next(iter(self._records.values()))[0] < horizon:
            self._records.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
