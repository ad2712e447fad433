"""MemoryPendingStore: the shared store contract, plus its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.store.base import JoinOutcome
from streamer.store.factory import open_store
from streamer.store.memory import MemoryPendingStore
from tests.store_contract import T0, TTL, StoreContract, features


class TestMemoryStoreContract(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryPendingStore:
        return MemoryPendingStore()


async def test_a_full_store_expires_the_oldest_item_and_counts_it() -> None:
    store = MemoryPendingStore(max_pending=3)
    await store.put_many(["a", "b", "c"], features(3), requested_at=T0, ttl_seconds=TTL)

    await store.put_many(["d"], features(1), requested_at=T0 + 1, ttl_seconds=TTL)

    assert await store.pending_count() == 3
    assert await store.sweep(now=T0 + 2) == 1
    assert (await store.take("a", now=T0 + 2))[0] is JoinOutcome.LATE
    assert (await store.take("d", now=T0 + 2))[0] is JoinOutcome.JOINED


async def test_putting_a_pending_id_again_into_a_full_store_evicts_nothing() -> None:
    store = MemoryPendingStore(max_pending=2)
    await store.put_many(["a", "b"], features(2), requested_at=T0, ttl_seconds=TTL)

    await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

    assert await store.sweep(now=T0 + 1) == 0
    assert await store.pending_count() == 2


async def test_applied_ids_are_remembered_up_to_max_applied() -> None:
    store = MemoryPendingStore(max_applied=2)
    await store.put_many(["a", "b", "c"], features(3), requested_at=T0, ttl_seconds=TTL)
    for item_id in ("a", "b", "c"):
        await store.take(item_id, now=T0 + 1)

    assert (await store.take("c", now=T0 + 2))[0] is JoinOutcome.DUPLICATE
    assert (await store.take("a", now=T0 + 2))[0] is JoinOutcome.UNKNOWN  # forgotten


async def test_tombstones_are_forgotten_after_tombstone_seconds() -> None:
    store = MemoryPendingStore(tombstone_seconds=100)
    await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=10)
    await store.sweep(now=T0 + 20)

    assert (await store.take("a", now=T0 + 50))[0] is JoinOutcome.LATE
    await store.sweep(now=T0 + 200)
    assert (await store.take("a", now=T0 + 200))[0] is JoinOutcome.UNKNOWN


async def test_memory_stays_bounded_when_items_are_taken_before_their_deadline() -> None:
    store = MemoryPendingStore()
    X = np.zeros((100, 2))
    for batch in range(100):
        ids = [f"{batch}-{k}" for k in range(100)]
        await store.put_many(ids, X, requested_at=T0, ttl_seconds=3600)
        for item_id in ids:
            await store.take(item_id, now=T0 + 1)

    assert await store.pending_count() == 0
    assert len(store._deadlines) <= 2 * 1024  # stale heap entries are compacted


async def test_features_are_copied_so_callers_may_reuse_their_array() -> None:
    store = MemoryPendingStore()
    X = features(1)
    expected = X[0].copy()
    await store.put_many(["a"], X, requested_at=T0, ttl_seconds=TTL)
    X[:] = 0.0

    _, joined = await store.take("a", now=T0 + 1)

    assert joined is not None and joined.features.tobytes() == expected.tobytes()


async def test_open_store_without_a_url_gives_a_memory_store_with_its_bound() -> None:
    store = await open_store(None, max_pending=7)

    assert isinstance(store, MemoryPendingStore)
    assert store.max_pending == 7
