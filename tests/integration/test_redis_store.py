"""RedisPendingStore against a real redis-server: the shared contract, replicas, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis

from streamer.store.base import JoinOutcome
from streamer.store.factory import StoreUnavailableError, open_store
from streamer.store.redis import RedisPendingStore
from tests.fixtures_redis import free_port, start_redis_server
from tests.store_contract import T0, TTL, StoreContract, features

pytestmark = pytest.mark.integration


class TestRedisStoreContract(StoreContract):
    @pytest.fixture
    async def store(self, redis_url: str, redis_prefix: str) -> AsyncIterator[RedisPendingStore]:
        store = RedisPendingStore(redis_url, prefix=redis_prefix)
        yield store
        await store.close()


@pytest.fixture
async def replicas(redis_url: str, redis_prefix: str) -> AsyncIterator[list[RedisPendingStore]]:
    """Three stores with their own connections on one Redis, like three service replicas."""
    stores = [RedisPendingStore(redis_url, prefix=redis_prefix) for _ in range(3)]
    yield stores
    for store in stores:
        await store.close()


async def test_replicas_racing_for_one_label_join_it_exactly_once(
    replicas: list[RedisPendingStore],
) -> None:
    ids = [f"i{k}" for k in range(20)]
    await replicas[0].put_many(ids, features(20), requested_at=T0, ttl_seconds=TTL)

    results = await asyncio.gather(
        *(store.take(item_id, now=T0 + 1) for item_id in ids for store in replicas for _ in "ab")
    )

    joined = [j.item_id for outcome, j in results if outcome is JoinOutcome.JOINED and j]
    assert sorted(joined) == sorted(ids)


async def test_replicas_sweeping_together_count_each_expiry_once(
    replicas: list[RedisPendingStore],
) -> None:
    ids = [f"i{k}" for k in range(300)]
    await replicas[0].put_many(ids, features(300), requested_at=T0, ttl_seconds=10)

    counts = await asyncio.gather(*(store.sweep(now=T0 + 20) for store in replicas))

    assert sum(counts) == 300


async def test_sweep_expires_more_items_than_one_script_call_handles(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisPendingStore(redis_url, prefix=redis_prefix, sweep_chunk=7)
    try:
        await store.put_many([f"i{k}" for k in range(50)], features(50), T0, ttl_seconds=10)

        assert await store.sweep(now=T0 + 20) == 50
        assert await store.pending_count() == 0
    finally:
        await store.close()


async def test_items_whose_redis_ttl_ran_out_before_a_sweep_are_late_and_counted(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisPendingStore(redis_url, prefix=redis_prefix, expiry_grace_seconds=0.0)
    try:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=0.05)
        await asyncio.sleep(0.2)  # Redis deletes the hash itself; only the zset entry remains

        assert (await store.take("a", now=T0 + 1))[0] is JoinOutcome.LATE
        assert await store.sweep(now=T0 + 1) == 1
    finally:
        await store.close()


async def test_features_are_stored_as_float64_bytes(redis_url: str, redis_prefix: str) -> None:
    store = RedisPendingStore(redis_url, prefix=redis_prefix)
    X = features(1, d=3)
    try:
        await store.put_many(["a"], X, requested_at=T0, ttl_seconds=TTL)
        raw = redis.Redis.from_url(redis_url).hget(f"{{{redis_prefix}}}:p:a", "f")
        assert raw == X[0].astype("<f8").tobytes()
    finally:
        await store.close()


async def test_stores_with_different_prefixes_do_not_see_each_other(
    redis_url: str, redis_prefix: str
) -> None:
    one = RedisPendingStore(redis_url, prefix=redis_prefix)
    other = RedisPendingStore(redis_url, prefix=redis_prefix + "-other")
    try:
        await one.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        assert await other.pending_count() == 0
        assert (await other.take("a", now=T0 + 1))[0] is JoinOutcome.UNKNOWN
    finally:
        await one.close()
        await other.close()
        cleanup = redis.Redis.from_url(redis_url)
        for key in cleanup.scan_iter(match=f"{{{redis_prefix}-other}}:*"):
            cleanup.delete(key)


async def test_open_store_with_a_url_returns_a_working_redis_store(
    redis_url: str, redis_prefix: str
) -> None:
    store = await open_store(redis_url, prefix=redis_prefix)
    try:
        assert isinstance(store, RedisPendingStore)
        await store.put_many(["a"], np.ones((1, 2)), requested_at=T0, ttl_seconds=TTL)
        assert await store.pending_count() == 1
    finally:
        await store.close()


async def test_open_store_names_the_unreachable_url_without_its_password() -> None:
    url = f"redis://default:s3cret@127.0.0.1:{free_port()}/0"

    with pytest.raises(StoreUnavailableError) as excinfo:
        await open_store(url)

    message = str(excinfo.value)
    assert message.startswith("cannot reach Redis at redis://default:***@127.0.0.1:")
    assert "s3cret" not in message


async def test_ping_is_false_while_redis_is_down_and_true_after_restart() -> None:
    server = start_redis_server()
    store = RedisPendingStore(server.url, socket_timeout=1.0)
    try:
        assert await store.ping() is True
        server.kill()
        assert await store.ping() is False
        server.start()
        assert await store.ping() is True
    finally:
        await store.close()
        server.stop()


async def test_an_evicting_redis_is_refused_at_start(private_redis) -> None:
    """Defect 5 (issue 18): an evicting Redis silently drops pending items, applied marks or
    the checkpoint; the service refuses it at start and says which setting to change."""
    import redis as sync_redis

    from streamer.store.factory import StoreUnavailableError, open_store

    client = sync_redis.Redis.from_url(private_redis.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(StoreUnavailableError, match="maxmemory-policy=allkeys-lru.*noeviction"):
        await open_store(private_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    store = await open_store(private_redis.url)
    await store.close()
