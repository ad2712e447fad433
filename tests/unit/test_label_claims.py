"""The labelling page's open-request queue: claims, their expiry, duplicates, the pending TTL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streamer.label.claims import ClaimQueue, Refused
from streamer.label.edge import ReadRequest
from streamer.label.requests import LabelRequest

CLAIM = 30.0
TTL = 500.0


def _read(item_id: str, top: float, at: float, offset: int = 0, partition: str = "p") -> ReadRequest:
    return ReadRequest(partition, offset, LabelRequest(item_id, "a", {"a": top, "b": 1 - top}, 1, at))


def _queue(finished: list[ReadRequest] | None = None) -> ClaimQueue:
    tokens = (f"t{n}" for n in itertools.count())
    return ClaimQueue(CLAIM, TTL, on_finished=(finished.append if finished is not None else None),
                      token=tokens.__next__)


def test_the_most_uncertain_first_ties_by_the_oldest() -> None:
    q = _queue()
    q.add(_read("sure", 0.95, 10.0), 20.0)
    q.add(_read("coin-new", 0.5, 12.0), 20.0)
    q.add(_read("coin-old", 0.5, 11.0), 20.0)
    q.add(_read("mid", 0.7, 9.0), 20.0)
    order = [q.next("ann", 21.0)[0].request.id for _ in range(4)]
    assert order == ["coin-old", "coin-new", "mid", "sure"]
    assert q.next("ann", 21.0) is None


def test_a_stale_claim_is_refused_and_the_item_goes_to_the_next_annotator() -> None:
    q = _queue()
    q.add(_read("x", 0.5, 100.0), 100.0)
    _, first = q.next("ann", 100.0)
    assert q.next("bob", 100.0 + CLAIM - 1) is None  # still ann's
    _, second = q.next("bob", 100.0 + CLAIM)  # ann's claim ran out
    assert q.holder("x") == "bob"
    with pytest.raises(Refused) as refused:
        q.answer("x", first, 100.0 + CLAIM + 1)
    assert refused.value.status == 409 and "claimed by someone else" in str(refused.value)
    assert q.answer("x", second, 100.0 + CLAIM + 1).request.id == "x"
    with pytest.raises(Refused) as again:
        q.skip("x", second, 100.0 + CLAIM + 2)
    assert again.value.status == 409 and "already answered" in str(again.value)
    with pytest.raises(Refused) as unknown:
        q.answer("nope", second, 100.0 + CLAIM + 2)
    assert unknown.value.status == 404


def test_redeliveries_and_old_requests_are_finished_at_once() -> None:
    finished: list[ReadRequest] = []
    q = _queue(finished)
    q.add(_read("x", 0.5, 100.0, offset=1), 100.0)
    q.add(_read("x", 0.5, 100.0, offset=2), 101.0)  # redelivered while open
    read, token = q.next("ann", 102.0)
    q.answer("x", token, 102.0)
    q.add(_read("x", 0.5, 100.0, offset=3), 103.0)  # redelivered after its answer
    q.add(_read("old", 0.5, 103.0, offset=4), 104.0 + TTL)  # older than the TTL
    assert [r.offset for r in finished] == [2, 3, 4]
    assert q.counts == {"read": 4, "answered": 1, "skipped": 0, "expired": 1, "duplicates": 2}


def test_open_requests_expire_with_the_pending_ttl_even_when_claimed() -> None:
    finished: list[ReadRequest] = []
    q = _queue(finished)
    q.add(_read("x", 0.5, 100.0), 100.0)
    q.add(_read("y", 0.6, 100.0), 100.0)
    _, token = q.next("ann", 100.0)
    q.tidy(100.0 + TTL + 1)
    assert q.open_count() == 0 and q.counts["expired"] == 2 and len(finished) == 2
    with pytest.raises(Refused) as refused:
        q.answer("x", token, 100.0 + TTL + 1)
    assert refused.value.status == 404


def test_reopen_after_a_failed_send_and_forget_after_a_rebalance() -> None:
    q = _queue()
    q.add(_read("x", 0.5, 100.0), 100.0)
    q.add(_read("y", 0.5, 100.0, partition="q"), 100.0)
    read, token = q.next("ann", 100.0)
    q.answer(read.request.id, token, 100.0)
    q.reopen(read)
    assert q.counts["answered"] == 0 and q.open_count() == 2
    assert q.forget(["q"]) == 1 and q.next("ann", 101.0)[0].request.id == "x"
    assert q.next("ann", 101.0) is None


class QueueMachine(RuleBasedStateMachine):
    """Random reads, claims, answers, skips and waits against a model of what must hold."""

    @initialize()
    def start(self) -> None:
        self.finished: list[ReadRequest] = []
        self.q = _queue(self.finished)
        self.now = 1000.0
        self.offset = 0
        self.reads: dict[int, ReadRequest] = {}  # offset -> every request read
        self.given: dict[str, tuple[str, float]] = {}  # id -> (token, until) of handed-out claims
        self.ended: dict[str, str] = {}  # id -> answered / skipped

    @rule(item=st.integers(0, 12), top=st.sampled_from([0.5, 0.6, 0.75, 0.9, 1.0]),
          age=st.sampled_from([0.0, 10.0, 200.0, TTL + 1]))
    def read(self, item: int, top: float, age: float) -> None:
        self.offset += 1
        read = _read(f"i{item}", top, self.now - age, offset=self.offset)
        self.reads[self.offset] = read
        self.q.add(read, self.now)

    @rule(annotator=st.sampled_from(["ann", "bob", "cat"]))
    def claim(self, annotator: str) -> None:
        self.q.tidy(self.now)
        candidates = [e.read.request for e in self.q._open.values()
                      if e.token is None or e.until <= self.now]
        got = self.q.next(annotator, self.now)
        if not candidates:
            assert got is None
            return
        read, token = got
        best = max(candidates, key=lambda r: (r.uncertainty, -r.requested_at))
        assert (read.request.uncertainty, read.request.requested_at) == (best.uncertainty, best.requested_at)
        live = [i for i, (_, until) in self.given.items() if until > self.now and i not in self.ended]
        assert read.request.id not in live, "two live claims on one id"
        self.given[read.request.id] = (token, self.now + CLAIM)

    @precondition(lambda self: self.given)
    @rule(data=st.data(), skip=st.booleans(), forged=st.booleans())
    def finish(self, data: st.DataObject, skip: bool, forged: bool) -> None:
        item_id = data.draw(st.sampled_from(sorted(self.given)))
        token, until = self.given[item_id]
        token = "forged" if forged else token
        valid = (not forged and until > self.now and item_id not in self.ended
                 and self.q.holder(item_id) is not None and self.q._open[item_id].token == token)
        try:
            read = (self.q.skip if skip else self.q.answer)(item_id, token, self.now)
        except Refused as refused:
            assert not valid and refused.status in (404, 409)
            return
        assert valid, "an answer on a stale or forged claim was taken"
        self.ended[item_id] = "skipped" if skip else "answered"
        if not skip:
            self.finished.append(read)  # the web page does this once the label is acknowledged

    @rule(seconds=st.sampled_from([1.0, CLAIM, 100.0, TTL]))
    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.q.tidy(self.now)

    @invariant()
    def every_request_is_accounted_for_once(self) -> None:
        if not hasattr(self, "q"):
            return
        done = [r.offset for r in self.finished]
        assert len(done) == len(set(done)), "an offset finished twice"
        open_offsets = {e.read.offset for e in self.q._open.values()}
        assert open_offsets.isdisjoint(done)
        assert open_offsets | set(done) == set(self.reads)
        c = self.q.counts
        assert c["read"] == len(self.reads)
        assert c["read"] == c["answered"] + c["skipped"] + c["expired"] + c["duplicates"] + len(open_offsets)


QueueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, derandomize=True,
                                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_queue_machine = QueueMachine.TestCase
