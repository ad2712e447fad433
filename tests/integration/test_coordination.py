"""The learner lease, the model board and the budget ledger in a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis

from streamer.core.budget import BudgetController
from streamer.store.base import LeaseLostError
from streamer.store.coordination import BudgetLedger, LearnerLease, ModelBoard
from streamer.store.redis import RedisPendingStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str):
    redis = aioredis.Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


@pytest.fixture
def prefix() -> str:
    return f"coord-{uuid.uuid4().hex[:8]}"


async def test_only_one_replica_holds_the_lease_until_it_expires(client, prefix) -> None:
    first = LearnerLease(client, prefix, "a", seconds=0.5)
    second = LearnerLease(client, prefix, "b", seconds=0.5)
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.renew()  # renewing our own lease
    await asyncio.sleep(0.7)  # the holder died: no renewal
    assert await second.acquire()
    assert not await first.renew()
    assert await second.holder() == "b"


async def test_a_released_lease_is_free_at_once(client, prefix) -> None:
    first = LearnerLease(client, prefix, "a", seconds=30)
    await first.acquire()
    await LearnerLease(client, prefix, "b", seconds=30).release()  # not ours: no effect
    assert await first.holder() == "a"
    await first.release()
    assert await LearnerLease(client, prefix, "b", seconds=30).acquire()


async def test_a_checkpoint_fenced_by_a_lost_lease_writes_nothing(redis_url, client, prefix) -> None:
    store = RedisPendingStore(redis_url, prefix=prefix)
    try:
        old = LearnerLease(client, prefix, "old", seconds=0.3)
        assert await old.acquire()
        await store.put_many(["x"], np.zeros((1, 2)), 1.0, 60.0)
        await store.claim("x", 2.0, "labels:0")
        await asyncio.sleep(0.5)
        assert await LearnerLease(client, prefix, "new", seconds=30).acquire()
        with pytest.raises(LeaseLostError, match="taken over"):
            await store.commit(["x"], b"stale checkpoint", fence=old.fence())
        assert await store.load_checkpoint() is None
        assert not await client.exists(f"{{{prefix}}}:a:x")  # not marked applied either
        await store.commit(["x"], b"checkpoint", fence=LearnerLease(client, prefix, "new", 30).fence())
        assert await store.load_checkpoint() == b"checkpoint"
    finally:
        await store.close()


async def test_scorers_fetch_a_model_only_when_a_new_one_was_published(client, prefix) -> None:
    board = ModelBoard(client, prefix)
    assert await board.latest() is None
    first = await board.publish(3, b"model-v3", now=100.0)
    latest = await board.latest()
    assert latest is not None and (latest.sequence, latest.version, latest.blob) == (first, 3, None)
    # a learner that took over may publish a lower model version: the sequence still moves
    second = await board.publish(2, b"model-v2", now=101.0)
    fetched = await board.fetch()
    assert second > first
    assert fetched is not None and (fetched.version, fetched.blob, fetched.published_at) == (2, b"model-v2", 101.0)


async def test_the_ledger_sums_every_replica_and_counts_the_live_ones(client, prefix) -> None:
    a = BudgetLedger(client, prefix, "a", horizon_seconds=10)
    b = BudgetLedger(client, prefix, "b", horizon_seconds=10)
    await a.sync(50.0, 48, now=1000.0)
    totals = await b.sync(50.0, 55, now=1001.0)
    assert (totals.planned, totals.asked, totals.replicas) == (100.0, 103, 2)
    totals = await a.sync(0.0, 0, now=1020.0)  # b has not synced for 19 s: gone
    assert totals.replicas == 1 and totals.deficit == -3.0


def test_a_replica_steers_by_its_share_of_the_others_deficit() -> None:
    scores = np.random.default_rng(0).random(2000)
    alone = BudgetController(0.05, seed=0, explore=0.0)
    behind = BudgetController(0.05, seed=0, explore=0.0)
    ahead = BudgetController(0.05, seed=0, explore=0.0)
    behind.external = 20.0  # the other replicas are 20 labels short: pay back a share
    ahead.external = -20.0  # they overspent: hold back
    asked = [int(c.decide(scores)[0].sum()) for c in (alone, behind, ahead)]
    assert asked[1] > asked[0] > asked[2]
    # the counters stay this replica's own
    assert behind.planned == pytest.approx(alone.planned) == pytest.approx(2000 * 0.05)


async def test_a_deposed_learner_cannot_publish(client, prefix) -> None:
    """Defect 4 (issue 18): publication was not fenced, and the sequence was taken before the
    write, so a deposed learner could publish, and an older model overwrite a newer one."""
    from streamer.store.base import LeaseLostError

    board = ModelBoard(client, prefix)
    old = LearnerLease(client, prefix, "old-learner", seconds=0.5)
    assert await old.acquire()
    assert await board.publish(1, b"model-v1", fence=old.fence()) == 1
    await asyncio.sleep(0.7)  # the old learner stalls; its lease expires
    new = LearnerLease(client, prefix, "new-learner", seconds=5)
    assert await new.acquire()
    assert await board.publish(5, b"model-v5", fence=new.fence()) == 2
    with pytest.raises(LeaseLostError):
        await board.publish(2, b"model-v2-stale", fence=old.fence())
    published = await board.fetch()
    assert (published.sequence, published.version, published.blob) == (2, 5, b"model-v5")


async def test_a_publication_notifies_the_scorers_at_once(client, prefix) -> None:
    """Defect 11: scorers polled once per staleness bound; now each publication is announced."""
    board = ModelBoard(client, prefix)
    notices = await board.subscribe()
    try:
        sequence = await board.publish(3, b"model bytes")
        message = None
        for _ in range(20):  # the subscribe confirmation may come first
            message = await notices.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                break
        assert message is not None, "no notice of the publication"
        assert int(message["data"]) == sequence
    finally:
        await notices.aclose()


async def test_a_lease_held_by_a_process_that_died_on_this_host_is_taken_at_once(client, prefix) -> None:
    """After kill -9 the restarted learner waited out the dead one's lease (5 s by default)."""
    import subprocess
    import sys

    from streamer.metrics import Metrics
    from streamer.runtime.health import Health
    from streamer.runtime.lease import LearnerRole, replica_token

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host, namespace, _, tail = replica_token().split("/")
    dead = LearnerLease(client, prefix, f"{host}/{namespace}/{child.pid}/{tail}", seconds=60)
    assert await dead.acquire()
    metrics = Metrics()
    role = LearnerRole("all", LearnerLease(client, prefix, replica_token(), 60), Health(metrics), metrics)
    try:
        assert not await role.try_lease(), "its holder still runs"
        child.kill()
        child.wait()
        assert await role.try_lease(), "taken from the dead holder without waiting"
        assert await role.lease.holder() == role.lease.token
    finally:
        if role.keeper is not None:
            role.keeper.cancel()
        child.kill()
