"""Three replicas on the real broker and Redis: one learner, a kill -9, a replica added.

Two ``streamer run`` replicas (role ``all``) share the items partitions in one consumer group
and one Redis prefix; the first to take the learner lease learns, the other scores with the
models it publishes. Mid-stream the learner is killed with ``kill -9`` (its standby takes
the lease over from the last checkpoint) and later a third replica joins. Afterwards:

- no label is lost or applied twice: the final checkpoint counts every label the annotator
  sent, the applied ids in Redis are exactly the annotated ids, all of them joined;
- every item got a prediction, and the re-decided ones stay within a micro-batch per moved
  partition;
- the budget held for the deployment as a whole, not per replica;
- every replica ends on the learner's model version, and stamped its outputs with versions
  the learner published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from streamer.replay import Annotator, LabelledStream
from streamer.store.checkpoint import loads
from tests.integration.harness import (
    ServiceProcess,
    annotate,
    consume_all,
    produce_steadily,
    sea_stream,
)

pytestmark = pytest.mark.integration

KEY = "integration-test-key-0123456789"  # the harness passes it as STREAMER_CHECKPOINT_KEY
ITEMS = 9000
RATE = 300  # items per second
BUDGET = 0.05
MAX_BATCH = 64
PARTITIONS = 4
STALENESS = 1.0


@pytest.fixture(scope="module")
def stream() -> LabelledStream:
    return sea_stream(ITEMS, seed=5)


def _seen(replicas: list[ServiceProcess]) -> int:
    total = 0
    for replica in replicas:
        if replica.process is not None and replica.process.poll() is None:
            total += replica.status()["items_seen"]
    return total


async def test_replicas_share_items_one_learner_fails_over_and_the_budget_holds_globally(
    kafka, redis_url: str, stream: LabelledStream, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"{name.removesuffix('-topic')}-{tag}" for name in (
        "items-topic", "label-requests-topic", "labels-topic", "predictions-topic",
        "dead-letters-topic")}
    prefix = f"scale-{tag}"
    flags = {**topics, "group-id": f"g-{tag}", "budget": BUDGET, "redis-url": redis_url,
             "redis-prefix": prefix, "seed": 1, "max-batch": MAX_BATCH,
             "topic-partitions": PARTITIONS, "session-timeout-ms": 3000,
             "learner-lease-seconds": 2.0, "model-staleness-seconds": STALENESS,
             "checkpoint-every-labels": 40, "checkpoint-every-seconds": 1.0}
    bootstrap = kafka.bootstrap_servers

    def replica(name: str) -> ServiceProcess:
        return ServiceProcess(bootstrap, flags, tmp_path / f"{name}.log").start()

    first = await asyncio.to_thread(replica, "a")
    second = await asyncio.to_thread(replica, "b")
    replicas = [first, second]
    annotator = Annotator(stream.truth, delay=0.05)
    stop_annotating = asyncio.Event()
    annotating = asyncio.create_task(annotate(bootstrap, topics, annotator, stop_annotating))
    producing = asyncio.create_task(produce_steadily(bootstrap, topics["items-topic"], stream, ITEMS, RATE))
    events: dict[str, Any] = {}
    try:
        learners = [r for r in replicas if r.status()["learner"]]
        assert len(learners) == 1, [r.status()["learner"] for r in replicas]
        learner = learners[0]
        standby = second if learner is first else first

        # kill -9 the learner once labels flow and a third of the stream was decided
        await asyncio.to_thread(
            _wait, lambda: _seen(replicas) >= ITEMS // 3 and learner.status()["labels_applied"] > 20,
            60, "a third of the items decided, labels learned",
        )
        killed_at = time.monotonic()
        await asyncio.to_thread(learner.kill9)
        replicas.remove(learner)
        status = await asyncio.to_thread(standby.wait_for, lambda s: s["learner"], 30,
                                         "the standby takes the learner lease over")
        events["takeover_s"] = time.monotonic() - killed_at
        events["takeover_restored"] = status["checkpoints"]["restored"]

        # a third replica joins at two thirds
        await asyncio.to_thread(_wait, lambda: _seen(replicas) >= 2 * ITEMS // 3 - 800, 90,
                                "two thirds decided")
        third = await asyncio.to_thread(replica, "c")
        replicas.append(third)
        await producing

        predictions = await consume_all(bootstrap, topics["predictions-topic"], idle_s=8.0,
                                        timeout_s=180.0, expect=None)
        new_learner = standby
        await asyncio.to_thread(
            new_learner.wait_for,
            lambda s: annotator.sent == len(annotator.answered) and s["labels_applied"] >= annotator.sent,
            120, "every label applied",
        )
        stop_annotating.set()
        await annotating
        final = await asyncio.to_thread(
            new_learner.wait_for, lambda s: s["labels_applied"] >= annotator.sent, 60,
            "the last labels applied",
        )
        # every replica picks the learner's newest version up within the staleness bound
        version = final["model_version"]
        started = time.monotonic()
        for other in replicas:
            await asyncio.to_thread(other.wait_for, lambda s: s["model_version"] == version,
                                    10 * STALENESS, "the learner's version")
        events["converged_s"] = time.monotonic() - started
        statuses = [r.status() for r in replicas]
        requests = await consume_all(bootstrap, topics["label-requests-topic"], idle_s=3.0,
                                     timeout_s=60.0, expect=None)
    finally:
        producing.cancel()
        stop_annotating.set()
        codes = [await asyncio.to_thread(r.stop) for r in replicas]
    assert codes == [0] * len(replicas), [r.log() for r in replicas]

    client = aioredis.Redis.from_url(redis_url)
    try:
        checkpoint = loads(await client.get(f"{{{prefix}}}:checkpoint"), KEY.encode())
        applied_ids = {key.decode().split(":a:", 1)[1]
                       async for key in client.scan_iter(match=f"{{{prefix}}}:a:*", count=1000)}
        ledger = {k.decode(): float(v) for k, v in (await client.hgetall(f"{{{prefix}}}:budget")).items()}
    finally:
        await client.aclose()

    sent = annotator.sent
    ids = [p["id"] for p in predictions]
    duplicates = len(ids) - len(set(ids))
    asked = {r["id"] for r in requests}
    share = len(asked) / ITEMS
    published = {p["model_version"] for p in predictions}
    print(f"\nscale-out: {sent} labels sent, checkpoint applied {checkpoint.applied}, outcomes "
          f"{checkpoint.outcomes}; takeover {events['takeover_s']:.1f} s after the kill from "
          f"checkpoint {events['takeover_restored']}; {duplicates} duplicate predictions; asked "
          f"{len(asked)} of {ITEMS} items = {share:.4f} (budget {BUDGET}); ledger {ledger}; "
          f"replicas converged on version {version} in {events['converged_s']:.2f} s; "
          f"{len(published)} model versions stamped on predictions; "
          f"replicas sharing the budget {[s['global_budget'] for s in statuses]}")

    # no label lost, none applied twice
    assert sent > 200, f"only {sent} labels flowed"
    assert checkpoint.applied == sent, (checkpoint.applied, sent)
    assert applied_ids == annotator.answered
    assert checkpoint.outcomes["joined"] == sent and checkpoint.outcomes["duplicate"] == 0
    # every item predicted; a kill re-decides at most the unacknowledged batches of its partitions
    assert set(ids) == set(stream.ids[:ITEMS])
    assert duplicates <= PARTITIONS * 3 * MAX_BATCH, duplicates
    # the deployment's budget: within 2% (relative) over the stream, whatever the replicas did
    assert abs(share - BUDGET) <= 0.02 * BUDGET + 1.0 / ITEMS, (share, BUDGET)
    # one learner at the end, every replica on its version
    assert [s["learner"] for s in statuses].count(True) == 1
    assert all(s["model_version"] == version for s in statuses)
    assert events["takeover_s"] < 15, events


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not reached in {timeout} s")
