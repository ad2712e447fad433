"""The open-request queue of the labelling page: who sees which request, and when it is done.

Pure Python, no I/O. ``next(annotator, now)`` hands out the most uncertain open request
(:attr:`LabelRequest.uncertainty`, largest first; ties: the oldest) and claims it for
``claim_seconds``; an unanswered claim runs out and the request returns to the queue, so two
annotators never hold the same item at once. Answering or skipping needs the claim's token.

Every request read ends in exactly one of: answered, skipped, expired (older than the pending
TTL: the service forgot it), a duplicate (a redelivery of an id already open or done), or it is
still open. Each finished one is handed to ``on_finished`` (the edge commits its offset).
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamer.label.edge import ReadRequest


class Refused(Exception):
    """An answer or skip that cannot be taken; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Entry:
    read: ReadRequest
    token: str | None = None  # the live claim's token
    annotator: str | None = None
    until: float = 0.0  # the claim runs out at this time


class ClaimQueue:
    """Open label requests, claimed one at a time by annotators.

    >>> from streamer.label.requests import LabelRequest
    >>> tokens = (f"t{n}" for n in itertools.count())
    >>> q = ClaimQueue(claim_seconds=60, pending_ttl_seconds=3600, token=tokens.__next__)
    >>> for i, p in enumerate((0.9, 0.55)):  # uncertainty 0.1, then 0.45
    ...     q.add(ReadRequest("p", i, LabelRequest(f"r{i}", "x", {"x": p}, 1, 100.0)), 100.0)
    >>> [(read.request.id, token) for read, token in (q.next("ann", 101.0), q.next("bob", 101.0))]
    [('r1', 't0'), ('r0', 't1')]
    >>> q.next("cat", 101.0) is None  # both are claimed
    True
    >>> q.answer("r1", "t1", 102.0)
    Traceback (most recent call last):
    ...
    streamer.label.claims.Refused: r1 is claimed by someone else (or your claim ran out): open the next item
    >>> q.answer("r1", "t0", 102.0).offset
    1
    >>> q.next("cat", 170.0)[0].request.id  # bob's claim ran out at 161: r0 is open again
    'r0'
    """

    def __init__(self, claim_seconds: float, pending_ttl_seconds: float,
                 on_finished: Callable[[ReadRequest], None] | None = None,
                 token: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self.claim_seconds = claim_seconds
        self.ttl = pending_ttl_seconds
        self.on_finished = on_finished or (lambda _: None)
        self._token = token
        self._open: dict[str, _Entry] = {}  # id -> open entry (claimed or not)
        self._done: set[str] = set()  # answered or skipped ids, remembered for the pending TTL
        self._ready: list[tuple[float, float, int, str]] = []  # (-uncertainty, requested_at, seq, id)
        self._claims: list[tuple[float, str, str]] = []  # (until, id, token)
        self._ages: list[tuple[float, int, str]] = []  # (requested_at, seq, id): TTL order
        self._seq = itertools.count()
        self.counts = {"read": 0, "answered": 0, "skipped": 0, "expired": 0, "duplicates": 0}

    def add(self, read: ReadRequest, now: float) -> None:
        """Queue one request read from the topic (a duplicate or an expired one is finished)."""
        request = read.request
        self.counts["read"] += 1
        if request.id in self._open or request.id in self._done:
            self.counts["duplicates"] += 1
            self.on_finished(read)
            return
        if self._too_old(request.requested_at, now):
            self.counts["expired"] += 1
            self.on_finished(read)
            return
        self._open[request.id] = _Entry(read)
        seq = next(self._seq)
        heapq.heappush(self._ready, (-request.uncertainty, request.requested_at, seq, request.id))
        if request.requested_at > 0:
            heapq.heappush(self._ages, (request.requested_at, seq, request.id))

    def next(self, annotator: str, now: float) -> tuple[ReadRequest, str] | None:
        """Claim the most uncertain unclaimed request for ``annotator``: (request, token)."""
        self.tidy(now)
        while self._ready:
            *_, item_id = heapq.heappop(self._ready)
            entry = self._open.get(item_id)
            if entry is None or entry.token is not None:
                continue  # finished or claimed since it was queued
            entry.token, entry.annotator = self._token(), annotator
            entry.until = now + self.claim_seconds
            heapq.heappush(self._claims, (entry.until, item_id, entry.token))
            return entry.read, entry.token
        return None

    def answer(self, item_id: str, token: str, now: float) -> ReadRequest:
        """Take the claimed request out of the queue for its answer; :meth:`reopen` it if the
        label cannot be sent."""
        read = self._take(item_id, token, now)
        self.counts["answered"] += 1
        return read

    def skip(self, item_id: str, token: str, now: float) -> ReadRequest:
        """Finish the claimed request without a label."""
        read = self._take(item_id, token, now)
        self.counts["skipped"] += 1
        self.on_finished(read)
        return read

    def reopen(self, read: ReadRequest) -> None:
        """An answer whose label was not sent: the request is open again."""
        self.counts["answered"] -= 1
        self._done.discard(read.request.id)
        self._open[read.request.id] = _Entry(read)
        request = read.request
        heapq.heappush(self._ready, (-request.uncertainty, request.requested_at, next(self._seq),
                                     request.id))

    def forget(self, partitions: Iterable[Any]) -> int:
        """Drop the open requests of partitions that went to another consumer (it re-reads
        them); return how many."""
        gone = set(partitions)
        dropped = [i for i, e in self._open.items() if e.read.partition in gone]
        for item_id in dropped:
            del self._open[item_id]
        return len(dropped)

    def tidy(self, now: float) -> None:
        """Return run-out claims to the queue; drop requests older than the pending TTL."""
        while self._claims and self._claims[0][0] <= now:
            _, item_id, token = heapq.heappop(self._claims)
            entry = self._open.get(item_id)
            if entry is not None and entry.token == token:
                entry.token = entry.annotator = None
                request = entry.read.request
                heapq.heappush(self._ready, (-request.uncertainty, request.requested_at,
                                             next(self._seq), item_id))
        while self._ages and self._too_old(self._ages[0][0], now):
            *_, item_id = heapq.heappop(self._ages)
            self._done.discard(item_id)  # a redelivery this old would expire anyway
            entry = self._open.pop(item_id, None)
            if entry is not None:
                self.counts["expired"] += 1
                self.on_finished(entry.read)

    def _take(self, item_id: str, token: str, now: float) -> ReadRequest:
        self.tidy(now)
        entry = self._open.get(item_id)
        if entry is None:
            if item_id in self._done:
                raise Refused(409, f"{item_id} was already answered or skipped")
            raise Refused(404, f"{item_id} is not an open request here (unknown, expired, or "
                          "read by another edge of the group)")
        if entry.token is None or not secrets.compare_digest(entry.token, token):
            raise Refused(409, f"{item_id} is claimed by someone else (or your claim ran out): "
                          "open the next item")
        del self._open[item_id]
        self._done.add(item_id)
        return entry.read

    def _too_old(self, requested_at: float, now: float) -> bool:
        return requested_at > 0 and now - requested_at > self.ttl

    def open_count(self) -> int:
        return len(self._open)

    def claimed_count(self, now: float) -> int:
        return sum(1 for e in self._open.values() if e.token is not None and e.until > now)

    def holder(self, item_id: str) -> str | None:
        """The annotator holding ``item_id``'s claim, if any."""
        entry = self._open.get(item_id)
        return entry.annotator if entry else None
