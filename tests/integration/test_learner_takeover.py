"""A standby that scored with published models takes the learner role over exactly once.

Real Redis (the lease, the board, the checkpoint), the in-memory bus for the topics. The
learner is "killed": it stops renewing its lease and writes no final checkpoint, as after
``kill -9``.
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from streamer.app import build_service
from streamer.config import load_settings
from streamer.runtime.memory_bus import MemoryBus, MemoryProducer
from streamer.wire import encode_item, encode_label

pytestmark = pytest.mark.integration

KEY = "integration-test-key-0123456789"


async def learning_replica(settings, bus: MemoryBus):  # noqa: ANN201 -- a Service
    """A replica holding the learner lease that decided the bus's items (on partition 0)."""
    learner = await build_service(settings)
    learner.attach_producer(MemoryProducer(bus))
    assert await learner.role.try_lease()
    learner.role.start_learning()
    await learner.process_items(bus.partitions("items")[0])
    return learner


def answer_requests(bus: MemoryBus) -> dict[str, int]:
    """Answer every label request on the bus (class: the item number's parity)."""
    import orjson

    truth = {}
    for value in bus.values("label-requests"):
        item_id = orjson.loads(value)["id"]
        truth[item_id] = int(item_id[1:]) % 2
        bus.append("labels", 0, item_id.encode(), encode_label(item_id, truth[item_id]))
    return truth


def _rows_learned(service) -> int:
    """Rows the logistic regression stepped on (one SGD step per learned label)."""
    return max(c.optimizer.n_iterations for c in service.sampler.model._classifier.classifiers.values())


async def test_a_standby_that_used_published_models_relearns_from_the_checkpoint_once(redis_url: str) -> None:
    bus = MemoryBus(partitions=1)
    settings = load_settings(
        model="StandardScaler | LogisticRegression", budget=0.5, warmup_labels=0, seed=1,
        redis_url=redis_url, redis_prefix=f"takeover-{uuid.uuid4().hex[:8]}", checkpoint_key=KEY,
        learner_lease_seconds=1.0, checkpoint_every_labels=10_000, checkpoint_every_seconds=3600,
    )
    rng = np.random.default_rng(3)
    for i in range(400):
        x = rng.normal(size=3)
        bus.append("items", 0, f"i{i}".encode(), encode_item(f"i{i}", x))
    truth = {}

    learner = await learning_replica(settings, bus)
    truth.update(answer_requests(bus))
    labels = bus.partitions("labels")[0]
    assert len(labels) >= 60
    half = len(labels) // 2
    await learner.process_labels(labels[:half])
    assert await learner.checkpoint("test")
    checkpointed = learner.sampler.model.version
    await learner.process_labels(labels[half:])  # learned and published, never checkpointed
    await learner.publication.publish(force=True)
    final = _rows_learned(learner)
    assert final == len(labels) and checkpointed < learner.sampler.model.version
    # kill -9: the lease is no longer renewed, no final checkpoint, nothing released
    learner.role.keeper.cancel()

    standby = await build_service(settings, clients=bus.clients(settings))
    assert standby.restored == 1
    stop = asyncio.Event()
    running = asyncio.create_task(standby.run(stop))
    try:
        # it scores with the learner's newest publication until the lease expires, then
        # learns the labels after the checkpoint again: each once
        for _ in range(200):
            if standby.learning and standby.counts["labels_applied"] >= len(labels):
                break
            await asyncio.sleep(0.05)
        assert standby.learning
        assert standby.counts["labels_applied"] == len(labels)
        await asyncio.sleep(0.3)
        assert _rows_learned(standby) == final, f"the model learned {_rows_learned(standby) - final} labels twice"
    finally:
        stop.set()
        await running
        await learner.close_store()


async def _learner(redis_url: str, prefix: str):
    settings = load_settings(model="StandardScaler | LogisticRegression", redis_url=redis_url,
                             redis_prefix=prefix, checkpoint_key=KEY, learner_lease_seconds=30.0)
    service = await build_service(settings)
    service.attach_producer(MemoryProducer(MemoryBus()))
    assert await service.role.try_lease()
    service.role.start_learning()
    service.role.keeper.cancel()  # the test plays the pause: nothing renews
    return service


async def test_a_learner_whose_lease_expired_unclaimed_while_paused_learns_on(redis_url: str) -> None:
    """A frozen learner (SIGSTOP longer than its lease) found its lease gone at its next fenced
    write and stopped checkpointing for good, though nobody had taken over."""
    import redis.asyncio as aioredis

    prefix = f"takeover-{uuid.uuid4().hex[:8]}"
    service = await _learner(redis_url, prefix)
    try:
        assert await service.checkpoint("before the pause")
        client = aioredis.Redis.from_url(redis_url)
        await client.delete(service.role.lease.key)  # expired while paused
        assert await service.checkpoint("after the pause"), "the unclaimed lease is taken again"
        assert service.learning and await client.get(service.role.lease.key) is not None
        # another replica took it and checkpointed: this one is deposed, and stops
        await client.delete(service.role.lease.key)
        rival = await _learner(redis_url, prefix)
        assert await rival.checkpoint("the rival learns")
        from streamer.store.base import LeaseLostError
        with pytest.raises(LeaseLostError):
            await service.checkpoint("deposed")
        assert not service.learning
        await client.aclose()
        await rival.close_store()
    finally:
        await service.close_store()
