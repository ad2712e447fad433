"""What every PendingStore must do: one suite, run against the memory and the Redis store.

Subclass :class:`StoreContract` in a ``test_*.py`` module and provide a ``store``
fixture (a fresh, empty store per test); every method below then runs against it.
Times are explicit numbers (``now``), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streamer.store.base import JoinOutcome, PendingStore

T0 = 1_000.0  # requested_at of the items put by these checks
TTL = 60.0


def features(n: int, d: int = 4, seed: int = 0) -> np.ndarray:
    """Awkward but finite float64 values: exact round trips must keep every bit."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 10.0 ** rng.integers(-300, 300, size=(n, d))
    X[0, 0] = -0.0
    return X


class StoreContract:
    """The PendingStore contract. Subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> PendingStore:
        raise NotImplementedError("subclasses provide a fresh, empty store")

    async def test_take_joins_with_the_exact_features_and_request_time(
        self, store: PendingStore
    ) -> None:
        X = features(3)
        await store.put_many(["a", "b", "c"], X, requested_at=T0, ttl_seconds=TTL)

        outcome, joined = await store.take("b", now=T0 + 1)

        assert outcome is JoinOutcome.JOINED
        assert joined is not None
        assert joined.item_id == "b"
        assert joined.features.dtype == np.float64
        assert joined.features.tobytes() == X[1].tobytes()
        assert joined.requested_at == T0

    async def test_claims_of_a_batch_answer_in_order_as_claims_one_by_one(self, store: PendingStore) -> None:
        X = features(3)
        await store.put_many(["a", "b", "c"], X, requested_at=T0, ttl_seconds=TTL)
        await store.claim("c", now=T0 + 1, owner="labels:1")

        results = await store.claim_many([("b", "labels:0"), ("zzz", "labels:0"), ("a", "labels:0"),
                                          ("c", "labels:0"), ("c", "labels:1")], now=T0 + 2)

        outcomes = [outcome for outcome, _ in results]
        assert outcomes == [JoinOutcome.JOINED, JoinOutcome.UNKNOWN, JoinOutcome.JOINED,
                            JoinOutcome.DUPLICATE, JoinOutcome.JOINED]  # c: another owner's claim, then its own
        assert results[0][1].features.tobytes() == X[1].tobytes()
        assert results[2][1].item_id == "a" and await store.claim_many([], now=T0 + 3) == []

    async def test_second_take_of_the_same_id_is_duplicate(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)
        await store.take("a", now=T0 + 1)

        assert await store.take("a", now=T0 + 2) == (JoinOutcome.DUPLICATE, None)

    async def test_id_never_put_is_unknown(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        assert await store.take("zzz", now=T0 + 1) == (JoinOutcome.UNKNOWN, None)

    async def test_take_after_the_deadline_is_late(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        assert await store.take("a", now=T0 + TTL + 1) == (JoinOutcome.LATE, None)

    async def test_take_exactly_at_the_deadline_is_late(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        assert (await store.take("a", now=T0 + TTL))[0] is JoinOutcome.LATE

    async def test_late_take_removes_the_item_and_later_labels_stay_late(
        self, store: PendingStore
    ) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)
        await store.take("a", now=T0 + TTL + 1)

        assert await store.pending_count() == 0
        assert (await store.take("a", now=T0 + TTL + 2))[0] is JoinOutcome.LATE

    async def test_sweep_counts_each_expired_item_exactly_once(self, store: PendingStore) -> None:
        await store.put_many(["a", "b", "c"], features(3), requested_at=T0, ttl_seconds=10)
        await store.put_many(["d", "e"], features(2), requested_at=T0, ttl_seconds=100)

        assert await store.sweep(now=T0 + 50) == 3
        assert await store.sweep(now=T0 + 50) == 0
        assert await store.pending_count() == 2
        assert await store.sweep(now=T0 + 200) == 2

    async def test_sweep_before_any_deadline_expires_nothing(self, store: PendingStore) -> None:
        await store.put_many(["a", "b"], features(2), requested_at=T0, ttl_seconds=TTL)

        assert await store.sweep(now=T0 + 1) == 0
        assert await store.pending_count() == 2

    async def test_concurrent_sweeps_count_each_expiry_once(self, store: PendingStore) -> None:
        ids = [f"i{k}" for k in range(50)]
        await store.put_many(ids, features(50), requested_at=T0, ttl_seconds=10)

        counts = await asyncio.gather(*(store.sweep(now=T0 + 20) for _ in range(5)))

        assert sum(counts) == 50

    async def test_label_after_the_sweep_is_late_not_unknown(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=10)
        await store.sweep(now=T0 + 20)

        assert await store.take("a", now=T0 + 21) == (JoinOutcome.LATE, None)

    async def test_late_take_is_counted_by_the_next_sweep(self, store: PendingStore) -> None:
        await store.put_many(["a", "b"], features(2), requested_at=T0, ttl_seconds=10)
        await store.take("a", now=T0 + 20)  # noticed late by the label, not by a sweep

        assert await store.sweep(now=T0 + 20) == 2
        assert await store.sweep(now=T0 + 30) == 0

    async def test_applied_id_stays_duplicate_after_a_sweep(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=10)
        await store.take("a", now=T0 + 1)
        await store.sweep(now=T0 + 100)

        assert (await store.take("a", now=T0 + 101))[0] is JoinOutcome.DUPLICATE

    async def test_pending_count_follows_puts_takes_and_sweeps(self, store: PendingStore) -> None:
        assert await store.pending_count() == 0
        await store.put_many(["a", "b", "c"], features(3), requested_at=T0, ttl_seconds=10)
        await store.put_many(["d"], features(1), requested_at=T0, ttl_seconds=100)
        assert await store.pending_count() == 4
        await store.take("a", now=T0 + 1)
        assert await store.pending_count() == 3
        await store.sweep(now=T0 + 50)
        assert await store.pending_count() == 1

    async def test_putting_a_pending_id_again_replaces_features_and_deadline(
        self, store: PendingStore
    ) -> None:
        await store.put_many(["a"], features(1, seed=1), requested_at=T0, ttl_seconds=10)
        X = features(1, seed=2)
        await store.put_many(["a"], X, requested_at=T0 + 5, ttl_seconds=100)

        assert await store.sweep(now=T0 + 50) == 0
        outcome, joined = await store.take("a", now=T0 + 60)
        assert outcome is JoinOutcome.JOINED
        assert joined is not None and joined.features.tobytes() == X[0].tobytes()
        assert await store.pending_count() == 0

    async def test_put_of_an_empty_batch_does_nothing(self, store: PendingStore) -> None:
        await store.put_many([], np.empty((0, 4)), requested_at=T0, ttl_seconds=TTL)

        assert await store.pending_count() == 0

    async def test_put_with_fewer_ids_than_rows_is_refused(self, store: PendingStore) -> None:
        with pytest.raises(ValueError, match="1 ids but X has 2 rows"):
            await store.put_many(["a"], features(2), requested_at=T0, ttl_seconds=TTL)

    async def test_concurrent_takes_of_one_id_join_exactly_once(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        results = await asyncio.gather(*(store.take("a", now=T0 + 1) for _ in range(25)))

        outcomes = [outcome for outcome, _ in results]
        assert outcomes.count(JoinOutcome.JOINED) == 1
        assert outcomes.count(JoinOutcome.DUPLICATE) == 24

    async def test_ids_with_separators_and_unicode_are_kept_apart(
        self, store: PendingStore
    ) -> None:
        ids = ["a:b", "a", "a:b:c", "ключ-🔑", "x y"]
        X = features(len(ids))
        await store.put_many(ids, X, requested_at=T0, ttl_seconds=TTL)

        for i, item_id in enumerate(ids):
            outcome, joined = await store.take(item_id, now=T0 + 1)
            assert outcome is JoinOutcome.JOINED
            assert joined is not None and joined.features.tobytes() == X[i].tobytes()

    async def test_ping_answers_true(self, store: PendingStore) -> None:
        assert await store.ping() is True

    # -- claim / commit: exactly-once labels across crashes ---------------------------------

    async def test_claim_keeps_the_features_until_commit(self, store: PendingStore) -> None:
        X = features(1)
        await store.put_many(["a"], X, requested_at=T0, ttl_seconds=TTL)

        outcome, joined = await store.claim("a", now=T0 + 1, owner="labels:0")

        assert outcome is JoinOutcome.JOINED and joined is not None
        assert await store.pending_count() == 0  # no longer waiting for a label
        assert await store.sweep(now=T0 + TTL + 10) == 0  # a claimed item never expires
        again, rejoined = await store.claim("a", now=T0 + TTL + 20, owner="labels:0")
        assert again is JoinOutcome.JOINED  # a restarted service re-reading its partition
        assert rejoined is not None and rejoined.features.tobytes() == X[0].tobytes()

    async def test_another_owner_cannot_claim_a_claimed_item(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)
        await store.claim("a", now=T0 + 1, owner="labels:0")

        assert await store.claim("a", now=T0 + 2, owner="labels:1") == (JoinOutcome.DUPLICATE, None)

    async def test_commit_makes_claimed_ids_duplicates(self, store: PendingStore) -> None:
        await store.put_many(["a", "b"], features(2), requested_at=T0, ttl_seconds=TTL)
        await store.claim("a", now=T0 + 1, owner="o")
        await store.claim("b", now=T0 + 1, owner="o")

        await store.commit(["a", "b"], checkpoint=b"state-1")

        assert await store.claim("a", now=T0 + 2, owner="o") == (JoinOutcome.DUPLICATE, None)
        assert await store.claim("b", now=T0 + 2, owner="o") == (JoinOutcome.DUPLICATE, None)
        assert await store.load_checkpoint() == b"state-1"

    async def test_the_newest_checkpoint_wins(self, store: PendingStore) -> None:
        assert await store.load_checkpoint() is None
        await store.commit([], checkpoint=b"one")
        await store.commit([], checkpoint=b"two")

        assert await store.load_checkpoint() == b"two"

    async def test_commit_without_a_checkpoint_keeps_the_last_one(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)
        await store.commit([], checkpoint=b"kept")
        await store.claim("a", now=T0 + 1, owner="o")

        await store.commit(["a"])

        assert await store.load_checkpoint() == b"kept"
        assert (await store.claim("a", now=T0 + 2, owner="o"))[0] is JoinOutcome.DUPLICATE

    async def test_put_skips_ids_already_claimed_or_applied(self, store: PendingStore) -> None:
        await store.put_many(["a", "b"], features(2), requested_at=T0, ttl_seconds=TTL)
        await store.claim("a", now=T0 + 1, owner="o")
        await store.take("b", now=T0 + 1)

        skipped = await store.put_many(["a", "b", "c"], features(3), requested_at=T0 + 2, ttl_seconds=TTL)

        assert sorted(skipped) == ["a", "b"]
        assert await store.pending_count() == 1  # only c waits
        assert (await store.claim("a", now=T0 + 3, owner="o"))[0] is JoinOutcome.JOINED

    async def test_claim_after_the_deadline_is_late(self, store: PendingStore) -> None:
        await store.put_many(["a"], features(1), requested_at=T0, ttl_seconds=TTL)

        assert await store.claim("a", now=T0 + TTL, owner="o") == (JoinOutcome.LATE, None)
        assert await store.sweep(now=T0 + TTL) == 1  # counted once
