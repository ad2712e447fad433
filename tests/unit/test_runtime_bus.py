"""The runtime on the in-memory bus: ack-then-commit ordering, rebalances, failures, labels.

Every test runs the real :class:`~streamer.runtime.Service` (its loops, its commits) with the
bus's consumers and producer in place of Kafka's, and the in-process store; seeded, in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import TopicPartition

from streamer.app import build_service
from streamer.config import load_settings
from streamer.runtime import Service
from streamer.runtime.memory_bus import MemoryBus, MemoryClients, MemoryConsumer
from streamer.wire import encode_item, encode_label

SETTINGS = dict(model="StandardScaler | LogisticRegression", budget=0.2, warmup_labels=0, seed=1)


def _items(bus: MemoryBus, start: int, count: int, seed: int = 0) -> dict[str, int]:
    """``count`` items spread over the items partitions; return each id's true class."""
    rng = np.random.default_rng(seed + start)
    truth = {}
    for i in range(start, start + count):
        x = rng.normal(size=3)
        item_id = f"i{i}"
        truth[item_id] = int(x[0] > 0)
        bus.append("items", i % 3, item_id.encode(), encode_item(item_id, x))
    return truth


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def _running(bus: MemoryBus, auto_ack: bool = True, **overrides: Any) -> tuple[Service, MemoryClients, asyncio.Event, asyncio.Task[None]]:
    settings = load_settings(**{**SETTINGS, **overrides})
    clients = bus.clients(settings, auto_ack=auto_ack)
    service = await build_service(settings, clients=clients)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await _until(lambda: service.consuming)
    return service, clients, stop, task


def _committed(bus: MemoryBus, group: str = "streamer") -> dict[TopicPartition, int]:
    return {tp: o for tp, o in bus.committed[group].items() if tp.topic == "items"}


def _ends(bus: MemoryBus) -> dict[TopicPartition, int]:
    return {TopicPartition("items", p): len(log) for p, log in enumerate(bus.partitions("items"))}


async def test_offsets_are_committed_only_after_the_broker_acknowledged_the_outputs() -> None:
    bus = MemoryBus()
    service, clients, stop, task = await _running(bus, auto_ack=False, emit_predictions=True)
    _items(bus, 0, 300)
    producer = clients.producer_made
    await _until(lambda: service.counts["items"] == 300)
    await asyncio.sleep(0.3)  # polls go on: nothing is acknowledged, so nothing is committed
    assert _committed(bus) == {}
    assert producer.unacknowledged > 0
    producer.acknowledge()
    await _until(lambda: _committed(bus) == _ends(bus))
    # commits move forward only, and never past what was produced for
    seen: dict[TopicPartition, int] = {}
    for _, offsets in bus.commits:
        for tp, offset in offsets.items():
            assert offset >= seen.get(tp, 0)
            seen[tp] = offset
    stop.set()
    await task
    predictions = [orjson.loads(v)["id"] for v in bus.values("predictions")]
    assert sorted(predictions) == sorted(f"i{i}" for i in range(300))


async def test_a_batch_acknowledged_late_holds_back_the_commit_of_later_ones() -> None:
    bus = MemoryBus()
    service, clients, stop, task = await _running(bus, auto_ack=False, emit_predictions=True, max_batch=50)
    producer = clients.producer_made
    _items(bus, 0, 50)
    await _until(lambda: service.counts["items"] == 50)
    first = producer.unacknowledged
    _items(bus, 50, 50)
    await _until(lambda: service.counts["items"] == 100)
    # the broker answers every send except the first batch's: nothing may be committed
    held = producer._held[:first]
    producer._held = producer._held[first:]
    producer.acknowledge()
    await asyncio.sleep(0.3)
    assert _committed(bus) == {}, "a later batch's offsets passed an unacknowledged earlier one"
    producer._held = held
    producer.acknowledge()
    await _until(lambda: _committed(bus) == _ends(bus))
    stop.set()
    await task


async def test_outputs_the_broker_refused_stop_the_service_with_their_offsets_uncommitted() -> None:
    bus = MemoryBus()
    service, clients, stop, task = await _running(bus, auto_ack=False, emit_predictions=True)
    _items(bus, 0, 60)
    await _until(lambda: service.counts["items"] == 60)
    clients.producer_made.fail(RuntimeError("broker refused the batch"))
    with pytest.raises(RuntimeError, match="refused"):
        await asyncio.wait_for(task, 10)
    assert _committed(bus) == {}
    assert "refused" in (service.error or "")


async def test_a_rebalance_commits_what_was_acknowledged_and_the_new_owner_goes_on_from_there() -> None:
    bus = MemoryBus()
    first, _, stop1, task1 = await _running(bus, emit_predictions=True)
    _items(bus, 0, 90)
    await _until(lambda: first.counts["items"] == 90)
    # a second replica joins the group: the first's partitions are revoked (and committed) first
    second, _, stop2, task2 = await _running(bus, emit_predictions=True)
    assert _committed(bus) == _ends(bus), "revoke committed every acknowledged offset"
    _items(bus, 90, 90)
    await _until(lambda: first.counts["items"] + second.counts["items"] == 180)
    for stop in (stop1, stop2):
        stop.set()
    await asyncio.gather(task1, task2)
    predicted = [orjson.loads(v)["id"] for v in bus.values("predictions")]
    assert len(predicted) == len(set(predicted)) == 180, "no item was decided twice"
    assert second.counts["items"] > 0 and first.items_watch.status()["assignments"] >= 2


async def test_labels_are_learned_once_and_duplicates_counted() -> None:
    bus = MemoryBus()
    service, _, stop, task = await _running(bus, budget=0.5)
    truth = _items(bus, 0, 200)
    await _until(lambda: service.counts["items"] == 200)
    requested = [orjson.loads(v)["id"] for v in bus.values("label-requests")]
    assert requested
    for item_id in requested + requested[:5]:  # five answered twice
        bus.append("labels", 0, item_id.encode(), encode_label(item_id, truth[item_id]))
    # claims are counted as they join; learning follows in slices that yield to the items
    await _until(lambda: sum(service.outcomes.values()) == len(requested) + 5
                 and service.counts["labels_applied"] >= len(requested))
    assert service.outcomes["joined"] == len(requested)
    assert service.outcomes["duplicate"] == 5
    assert service.counts["labels_applied"] == len(requested)
    stop.set()
    await task
    assert bus.committed["streamer-labels"][TopicPartition("labels", 0)] == len(requested) + 5


async def test_a_store_retry_gives_up_when_the_runtime_stops_not_when_a_kafka_loop_says_so() -> None:
    """The retry depends on the runtime's stopping flag, which the Faust integration sets too."""
    service = await build_service(load_settings(**SETTINGS))
    calls = 0

    async def outage() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("redis is down")

    retrying = asyncio.create_task(service.health.retry(outage))
    await _until(lambda: calls >= 2)
    assert "store" in service.health.degraded and not retrying.done()
    service.begin_stop()
    from streamer.runtime.health import Stopping
    with pytest.raises(Stopping):
        await asyncio.wait_for(retrying, 5)


async def test_the_consumer_group_shares_partitions_and_hears_revokes_first() -> None:
    bus = MemoryBus(partitions=4)
    heard: list[str] = []

    class Listener:
        def __init__(self, name: str) -> None:
            self.name = name

        async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            heard.append(f"{self.name} revoked {len(revoked)}")

        async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            heard.append(f"{self.name} assigned {len(assigned)}")

    a, b = MemoryConsumer(bus, "g"), MemoryConsumer(bus, "g")
    a.subscribe(["t"], Listener("a"))
    b.subscribe(["t"], Listener("b"))
    await a.start()
    await b.start()
    assert len(a.assignment()) == len(b.assignment()) == 2
    assert heard == ["a revoked 0", "a assigned 4", "a revoked 4", "b revoked 0", "a assigned 2", "b assigned 2"]
    await a.stop()
    assert len(b.assignment()) == 4


async def test_a_stall_of_the_event_loop_is_measured() -> None:
    """Issue 19: whatever holds the loop holds every decision; the lag metric shows it."""
    import time

    from streamer.metrics import Metrics
    from streamer.runtime.loop_lag import watch_loop_lag

    metrics = Metrics()
    stop = asyncio.Event()
    watching = asyncio.create_task(watch_loop_lag(metrics.loop_lag, stop, metrics.loop_longest_stall))
    await asyncio.sleep(0.05)
    time.sleep(0.08)  # a stall: nothing else runs meanwhile
    await asyncio.sleep(0.05)
    stop.set()
    await watching
    registry = metrics.registry
    slow = registry.get_sample_value("streamer_event_loop_lag_seconds_count") - registry.get_sample_value(
        "streamer_event_loop_lag_seconds_bucket", {"le": "0.05"})
    assert slow >= 1, "the 80 ms stall was seen"
    assert registry.get_sample_value("streamer_event_loop_lag_seconds_sum") >= 0.06
    assert registry.get_sample_value("streamer_event_loop_longest_stall_seconds") >= 0.06


def test_the_longest_stall_is_kept_for_a_whole_window_then_forgotten() -> None:
    from prometheus_client import CollectorRegistry, Gauge

    from streamer.runtime.loop_lag import LongestStall

    gauge = Gauge("longest", "test", registry=CollectorRegistry())
    stall = LongestStall(gauge, window_s=30.0)
    stall.observe(0.0, now=0.0)
    stall.observe(0.2, now=29.0)  # a 200 ms stall at the end of the first window
    stall.observe(0.001, now=31.0)
    assert gauge._value.get() == 0.2  # still shown in the next window
    stall.observe(0.05, now=45.0)
    stall.observe(0.001, now=61.0)  # two windows on: the 200 ms stall is forgotten
    assert gauge._value.get() == 0.05
    stall.observe(0.001, now=200.0)  # quiet windows with no observation in between
    assert gauge._value.get() == 0.001


async def test_streamer_run_freezes_its_start_up_heap_out_of_full_collections() -> None:
    """Issue 19: full garbage collections walking the start-up heap held the loop 50-70 ms."""
    import gc

    gc.unfreeze()
    bus = MemoryBus()
    settings = load_settings(**SETTINGS)
    service = await build_service(settings, clients=bus.clients(settings))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop, freeze_heap=True))
    try:
        await _until(lambda: service.consuming)
        assert gc.get_freeze_count() > 1000  # the modules, the model, the clients
    finally:
        stop.set()
        await task
        gc.unfreeze()
