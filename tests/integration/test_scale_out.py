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

A second test measures what scaling out costs in accuracy (issue 18, defect 11): the same
labelled stream, offered at 1,000 items/s with labels 0.3 s after each request, to one
replica and to two; the two replicas' prequential accuracy stays close to the one's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from streamer.replay import Annotator, LabelledStream, produce_items
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


# -- what scaling out costs in accuracy (issue 18, defect 11) ---------------------------------

ACCURACY_ITEMS = 4000
ACCURACY_RATE = 1000  # items per second, as in the issue
LABEL_DELAY = 0.3  # seconds from a label request to its answer, as in the issue
ROUNDS = 3  # each configuration this many times, alternating; the bound is on the means
# One model, not the default portfolio: on 4,000 items the portfolio's leader switches moved a
# run's accuracy by 2-4 points either way (one replica: 0.674-0.793 over 8 runs), which would
# drown the 1-point bound. With this model, on this 2-core machine, one replica reached
# 0.735-0.771 and two 0.758-0.783 over 14 rounds (two minus one: -1.0 to +4.8 points, mean
# +1.3, s.d. 1.5 per round: a 3-round mean 1 point short is well under a 1-in-100 event); the code
# before the fix (29e623f) gave two replicas 0.714-0.739 against 0.755-0.764 (-2.2 to -4.2
# points, mean -3.1 per round), which this bound fails.
MODEL = "StandardScaler | LogisticRegression"
TOLERANCE = 0.01  # the bound: two replicas at most 1 point below one, on the means


async def prequential_accuracy(bootstrap: str, redis_url: str, logs: Path, stream: LabelledStream,
                               replicas: int, model: str | None = None) -> dict[str, Any]:
    """Offer ``stream`` at ACCURACY_RATE to ``replicas`` cold replicas (role all, one group, one
    Redis prefix) while an annotator answers every request LABEL_DELAY s later; each item's
    first prediction against its true label, over every item."""
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"{name.removesuffix('-topic')}-{tag}" for name in (
        "items-topic", "label-requests-topic", "labels-topic", "predictions-topic",
        "dead-letters-topic")}
    flags = {**topics, "group-id": f"g-{tag}", "budget": BUDGET, "redis-url": redis_url,
             "redis-prefix": f"acc-{tag}", "seed": 1, "topic-partitions": PARTITIONS,
             "model-staleness-seconds": STALENESS, "model": model}
    procs: list[ServiceProcess] = []
    annotator = Annotator(stream.truth, delay=LABEL_DELAY)
    stop = asyncio.Event()
    annotating: asyncio.Task[None] | None = None
    try:
        for i in range(replicas):
            procs.append(await asyncio.to_thread(
                ServiceProcess(bootstrap, flags, logs / f"acc-{tag}-{i}.log").start))
        # the group settled: every partition held, each replica some
        for proc in procs:
            await asyncio.to_thread(
                proc.wait_for, lambda s: len(s["consumers"]["items"]["partitions"]) in (
                    PARTITIONS // replicas, PARTITIONS // replicas + PARTITIONS % replicas),
                60, "the items partitions shared out")
        annotating = asyncio.create_task(annotate(bootstrap, topics, annotator, stop))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            await produce_items(producer, topics["items-topic"], stream, rate=ACCURACY_RATE)
        finally:
            await producer.stop()
        predictions = await consume_all(bootstrap, topics["predictions-topic"], expect=len(stream),
                                        timeout_s=120.0)
        statuses = [proc.status() for proc in procs]
        staleness = [_metric(proc.get("/metrics")[1].decode(), "streamer_model_staleness_seconds_count")
                     for proc in procs]
    finally:
        stop.set()
        if annotating is not None:
            await annotating
        codes = [await asyncio.to_thread(proc.stop) for proc in procs]
    assert codes == [0] * replicas, [proc.log() for proc in procs]
    first: dict[str, Any] = {}
    for prediction in predictions:
        first.setdefault(prediction["id"], prediction["prediction"])
    truth = stream.truth
    assert set(first) == set(truth), f"{len(truth) - len(first)} items without a prediction"
    quarter = stream.ids[: len(stream.ids) // 4]
    return {"accuracy": sum(first[i] == truth[i] for i in truth) / len(truth),
            "first_quarter": round(sum(first[i] == truth[i] for i in quarter) / len(quarter), 4),
            "asked": sum(s["label_requests"] for s in statuses),
            "learners": [s["learner"] for s in statuses],
            "leader": [(s["model_race"] or {}).get("leader") for s in statuses if s["learner"]],
            "publications": [s["model_publication"] for s in statuses],
            "versions_picked_up": staleness}


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_two_replicas_are_as_accurate_as_one(private_kafka, redis_url: str, tmp_path: Path) -> None:
    """Issue 18, defect 11: a scorer used to poll for the learner's model once a second, so at
    1,000 items/s it decided hundreds of items with a stale model and two replicas were 3.4
    points less accurate than one. Now each label batch's model is published and announced,
    and the scorer swaps it in at once.

    On a broker of its own: the session's Tansu keeps every earlier test's messages in memory.
    Late in a full CI run (at d8c2252) two of three two-replica rounds fell to 0.72 and 0.74
    against 0.76 for one replica; no round of this test on a fresh broker has (14 rounds before,
    9 more at 69e21cf). But benchmarks/scale_out.py at 883d5c2 (weather, the default portfolio,
    30 runs on one broker) saw two of ten two-replica runs fall to 0.68-0.69, both replicas
    alike, where the pre-fix code and one replica did not: the cause is open."""
    kafka = private_kafka
    stream = sea_stream(ACCURACY_ITEMS, seed=11)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(ROUNDS):  # alternating: the two cores' noise falls on both
        for replicas in (1, 2):
            runs[replicas].append(await prequential_accuracy(
                kafka.bootstrap_servers, redis_url, tmp_path, stream, replicas, MODEL))
    one = sum(r["accuracy"] for r in runs[1]) / ROUNDS
    two = sum(r["accuracy"] for r in runs[2]) / ROUNDS
    print(f"\nprequential accuracy over {ACCURACY_ITEMS} items at {ACCURACY_RATE}/s, labels "
          f"{LABEL_DELAY} s late: one replica {one:.4f} {[round(r['accuracy'], 4) for r in runs[1]]}, "
          f"two {two:.4f} {[round(r['accuracy'], 4) for r in runs[2]]}, gap {100 * (two - one):+.2f} "
          f"points; asked: one {[r['asked'] for r in runs[1]]}, two {[r['asked'] for r in runs[2]]}; "
          f"first quarter: one {[r['first_quarter'] for r in runs[1]]}, two {[r['first_quarter'] for r in runs[2]]}; "
          f"two replicas: {[(r['learners'], r['publications'], r['versions_picked_up']) for r in runs[2]]}")
    for run in runs[2]:
        assert run["learners"].count(True) == 1, run
        learner, scorer = run["learners"].index(True), run["learners"].index(False)
        # the scorer swapped in most of what the learner published (announced, not polled:
        # a poll every quarter second would pick up about 18 of the ~140 publications)
        assert run["versions_picked_up"][scorer] >= run["publications"][learner] / 3, run
    assert two >= one - TOLERANCE, (one, two)
