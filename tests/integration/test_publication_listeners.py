"""Issue 19: a learner with no scorer listening does not sign and publish a model per label
batch (work on the event loop nobody reads); once a scorer subscribes, every batch is
published at once again (issue 18, defect 11). Real Redis; the in-memory bus for Kafka."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from streamer.config import load_settings
from streamer.runtime.memory_bus import MemoryBus
from streamer.wire import encode_item
from tests.integration.test_learner_takeover import answer_requests, learning_replica

pytestmark = pytest.mark.integration


async def test_publications_follow_every_label_batch_only_while_a_scorer_listens(redis_url: str) -> None:
    bus = MemoryBus(partitions=1)
    settings = load_settings(
        model="StandardScaler | LogisticRegression", budget=0.5, warmup_labels=0, seed=1,
        redis_url=redis_url, redis_prefix=f"listeners-{uuid.uuid4().hex[:8]}",
        checkpoint_key="integration-test-key-0123456789", model_staleness_seconds=600.0,
    )
    rng = np.random.default_rng(5)
    for i in range(200):
        bus.append("items", 0, f"i{i}".encode(), encode_item(f"i{i}", rng.normal(size=3)))
    learner = await learning_replica(settings, bus)
    answer_requests(bus)
    labels = bus.partitions("labels")[0]
    board = learner.publication.board
    assert len(labels) >= 30

    await learner.process_labels(labels[:10])  # the first model is published at once
    first = await board.latest()
    assert first is not None and first.version == learner.sampler.model.version
    await learner.process_labels(labels[10:20])  # nobody listens: not again within 300 s
    assert (await board.latest()).sequence == first.sequence
    assert learner.sampler.model.version > first.version

    notices = await board.subscribe()  # a scorer starts
    try:
        assert await board.listeners() == 1
        await learner.process_labels(labels[20:30])
        latest = await board.latest()
        assert latest.sequence > first.sequence
        assert latest.version == learner.sampler.model.version  # the newest, at once
    finally:
        await notices.aclose()
        await learner.close()
