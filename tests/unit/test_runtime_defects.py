"""Defects a review of the runtime found (issue 18): each test failed before its fix.

The service runs on the in-process store with the in-memory bus's producer, whose
acknowledgements the test gives.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from aiokafka.structs import ConsumerRecord

from streamer.app import build_service
from streamer.config import load_settings
from streamer.runtime.memory_bus import MemoryBus, MemoryProducer
from streamer.wire import encode_item


def _records(count: int, age_s: float, d: int = 3) -> list[ConsumerRecord]:
    rng = np.random.default_rng(0)
    stamp = int((time.time() - age_s) * 1000)
    return [ConsumerRecord("items", i % 3, i, stamp, 0, f"i{i}".encode(),
                           encode_item(f"i{i}", rng.normal(size=d)), None, 0, 0, [])
            for i in range(count)]


async def test_item_latency_is_observed_once_the_broker_acknowledged_the_output() -> None:
    """Defect 8: streamer_item_latency_seconds says "to decision acknowledged by the broker"."""
    service = await build_service(load_settings(model="StandardScaler | LogisticRegression"))
    producer = MemoryProducer(MemoryBus(), auto_ack=False)
    service.attach_producer(producer)  # type: ignore[arg-type]
    count = "streamer_item_latency_seconds_count"
    total = "streamer_item_latency_seconds_sum"
    sends = await service.process_items(_records(8, age_s=1.0))
    registry = service.metrics.registry
    assert sends and producer.sent >= 8
    assert (registry.get_sample_value(count) or 0) == 0, "observed before any acknowledgement"
    await asyncio.sleep(0.3)
    producer.acknowledge()
    await asyncio.gather(*sends)
    await asyncio.sleep(0)  # the callbacks of the acknowledgement
    assert registry.get_sample_value(count) == 8
    assert registry.get_sample_value(total) >= 8 * 1.3, "measured to the acknowledgement"


# Defect 9 (a rebalance re-decided acknowledged items): tests/unit/test_runtime_bus.py::
# test_a_rebalance_commits_what_was_acknowledged_and_the_new_owner_goes_on_from_there, on the
# in-memory bus with a real second group member.


def test_a_label_has_one_canonical_form_on_the_wire() -> None:
    """Defect 3: 1 and "1" were two classes whose proba keys collide ("1" twice on the wire).
    The labels decoder writes a decimal integer string as the integer; other strings stay."""
    from streamer.wire import decode_label

    def label(raw: bytes) -> str | int:
        return decode_label(raw).label

    assert label(b'{"id":"a","label":"1"}') == 1 and type(label(b'{"id":"a","label":"1"}')) is int
    assert label(b'{"id":"a","label":"-12"}') == -12
    assert label(b'{"id":"a","label":1}') == 1
    for text in ("01", "1.0", "+1", " 1", "cat", "\\u0661"):  # not canonical decimal: strings
        assert label(b'{"id":"a","label":"%s"}' % text.encode()) == text.encode().decode("unicode_escape")


async def test_labels_1_and_string_1_teach_one_class() -> None:
    from streamer.wire import encode_label_request

    service = await build_service(load_settings(model="StandardScaler | LogisticRegression"))
    sampler = service.sampler
    from streamer.wire import decode_label

    rows = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])
    labels = [decode_label(b'{"id":"a","label":1}').label, decode_label(b'{"id":"b","label":"1"}').label,
              decode_label(b'{"id":"c","label":"0"}').label]
    sampler.learn(rows, np.array(labels, dtype=object))
    assert sorted(map(str, sampler.model.classes)) == ["0", "1"]
    proba = dict(zip(sampler.model.classes, sampler.model.predict_proba(rows[:1])[0], strict=True))
    keys = orjson_keys(encode_label_request("x", prediction=1, proba=proba, scores={}, reason="u",
                                            model_version=1, requested_at=0.0))
    assert len(keys) == len(set(keys)) == 2


def orjson_keys(raw: bytes) -> list[str]:
    import json

    pairs = json.loads(raw, object_pairs_hook=lambda p: p)
    return [k for k, _ in dict(pairs)["proba"]]


async def _service_with_pending(count: int, **settings: Any) -> tuple[Any, MemoryProducer]:
    service = await build_service(load_settings(model="StandardScaler | LogisticRegression", **settings))
    producer = MemoryProducer(MemoryBus(), auto_ack=True)
    service.attach_producer(producer)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    await service.store.put_many([f"p{i}" for i in range(count)], rng.normal(size=(count, 3)), time.time(), 3600)
    return service, producer


def _label_records(labels: list[Any]) -> list[ConsumerRecord]:
    import orjson

    return [ConsumerRecord("labels", 0, i, 0, 0, f"p{i}".encode(),
                           orjson.dumps({"id": f"p{i}", "label": label}), None, 0, 0, [])
            for i, label in enumerate(labels)]


def _dead_reasons(producer: MemoryProducer) -> list[str]:
    import orjson

    return [orjson.loads(value)["reason"] for value in producer.bus.values("dead-letters")]


async def test_classes_beyond_max_classes_are_dead_letters() -> None:
    """Defect 2: any label became a class for ever (1,202 classes made decide 60x slower)."""
    service, producer = await _service_with_pending(6, max_classes=3)
    await service.process_labels(_label_records(["a", "b", "c", "d", "a", "zebra"]))
    assert sorted(map(str, service.sampler.model.classes)) == ["a", "b", "c"]
    assert _dead_reasons(producer) == ["too_many_classes", "too_many_classes"]
    assert service.status()["labels_applied"] == 4


async def test_declared_classes_refuse_every_other_label() -> None:
    service, producer = await _service_with_pending(4, classes="0, 1")
    await service.process_labels(_label_records(["1", 0, "cat", 2]))
    assert sorted(service.sampler.model.classes) == [0, 1]  # "1" is the class 1 (canonical form)
    assert _dead_reasons(producer) == ["undeclared_class", "undeclared_class"]


async def test_a_label_whose_learning_failed_is_kept_and_its_dead_letter_replays() -> None:
    """Defect 1: a batch whose learn raised was dead-lettered but marked applied, so its
    features were deleted and replaying the dead letter counted a duplicate: the label was lost."""
    import orjson

    service, producer = await _service_with_pending(2)
    sampler = service.sampler
    learn = sampler.learn
    broken = {"on": True}

    def flaky_learn(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise RuntimeError("the model cannot learn right now")
        return learn(*args, **kwargs)

    sampler.learn = flaky_learn  # type: ignore[method-assign]
    records = _label_records([0, 1])
    await service.process_labels(records)
    assert _dead_reasons(producer) == ["learn_failed", "learn_failed"]
    assert service.status()["labels_applied"] == 0
    # the dead letters carry the labels as they came; replayed once the cause is fixed, they join
    broken["on"] = False
    raws = [orjson.loads(v)["raw"].encode() for v in producer.bus.values("dead-letters")]
    replayed = [ConsumerRecord("labels", 0, 10 + i, 0, 0, r.key, raw, None, 0, 0, [])
                for i, (r, raw) in enumerate(zip(records, raws, strict=True))]
    await service.process_labels(replayed)
    status = service.status()
    assert status["labels_applied"] == 2, status["join_outcomes"]
    assert status["join_outcomes"].get("duplicate", 0) == 0


async def test_a_permanent_redis_error_stops_the_service_with_the_reason() -> None:
    """Defect 5: every RedisError was an outage retried for ever, WRONGTYPE, NOPERM and OOM too."""
    import pytest
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import OutOfMemoryError, ResponseError

    from streamer.runtime import StoreRefusedError

    service, _ = await _service_with_pending(1)
    calls = {"n": 0}

    async def refused() -> None:
        calls["n"] += 1
        raise OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")

    with pytest.raises(StoreRefusedError, match="OOM command not allowed.*maxmemory"):
        await asyncio.wait_for(service.health.retry(refused), timeout=5)
    assert calls["n"] == 1, "not retried"
    with pytest.raises(StoreRefusedError, match="WRONGTYPE"):
        await asyncio.wait_for(service.health.retry(
            lambda: _raise(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))),
            timeout=5)

    flaky = {"n": 0}

    async def outage_then_back() -> str:
        flaky["n"] += 1
        if flaky["n"] < 3:
            raise RedisConnectionError("Connection refused")
        return "ok"

    assert await asyncio.wait_for(service.health.retry(outage_then_back), timeout=30) == "ok"  # transient


async def _raise(exc: BaseException) -> None:
    raise exc


def _old_checkpoint(key: bytes, *drop: str) -> bytes:
    """A checkpoint as the previous format (streamer-checkpoint/1) wrote it, from a release
    whose Sampler and budget controller did not have the attributes ``drop`` yet."""
    import hashlib
    import hmac
    import pickle

    from streamer.core.sampler import Sampler
    from streamer.models import build_model
    from streamer.store.checkpoint import Checkpoint

    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.1)
    for name in drop:
        owner, attribute = name.split(".")
        del vars(sampler if owner == "sampler" else sampler.controller)[attribute]
    state = Checkpoint(sampler, {("labels", 0): 7}, sampler_config={"budget": 0.1})
    payload = pickle.dumps({n: getattr(state, n) for n in Checkpoint.__slots__})
    return b"streamer-checkpoint/1\n" + hmac.new(key, payload, hashlib.sha256).digest() + payload


def test_a_checkpoint_of_the_previous_format_loads_with_what_it_lacked_filled_in() -> None:
    """Defect 10: a checkpoint pickled the whole Sampler without a schema version; an attribute
    added in a later release failed at first use after the restore, not at load."""
    from streamer.store.checkpoint import loads

    key = b"0123456789abcdef0123"
    restored = loads(_old_checkpoint(key, "sampler._by_reason", "controller._owed"), key)
    assert restored.label_offsets == {("labels", 0): 7}
    decisions = restored.sampler.decide(np.zeros((4, 3)), ids=["a", "b", "c", "d"])
    assert len(decisions.prediction) == 4  # usable at once, not failing at first use
    restored.sampler.learn(np.zeros((2, 3)), np.array([0, 1]), ids=["a", "b"])


def test_a_checkpoint_of_a_newer_format_is_refused_with_what_to_do() -> None:
    import hashlib
    import hmac
    import pickle

    import pytest

    from streamer.store.checkpoint import CheckpointError, loads

    key = b"0123456789abcdef0123"
    payload = pickle.dumps({"format": 99})
    data = b"streamer-checkpoint/99\n" + hmac.new(key, payload, hashlib.sha256).digest() + payload
    with pytest.raises(CheckpointError, match="format 99.*newer streamer"):
        loads(data, key)


def _sampler_with_in_flight(count: int) -> Any:
    from streamer.core.sampler import Sampler
    from streamer.models import build_model

    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.1)
    sampler._remember([f"id{i}" for i in range(count)], [0.5] * count)
    return sampler


def test_a_checkpoint_of_format_2_keeps_its_in_flight_ids() -> None:
    """Format 2 pickled the in-flight ids inside the sampler; format 3 carries them beside it."""
    import pickle

    from streamer.signed import seal
    from streamer.store.checkpoint import Checkpoint, loads

    key = b"0123456789abcdef0123"
    sampler = _sampler_with_in_flight(50)
    fields = {name: getattr(Checkpoint(sampler, {("labels", 0): 3}), name) for name in Checkpoint.__slots__}
    data = seal(b"streamer-checkpoint/2\n", key, pickle.dumps(fields))
    restored = loads(data, key)
    assert list(restored.sampler._in_flight) == [f"id{i}" for i in range(50)]
    assert restored.label_offsets == {("labels", 0): 3}


async def test_a_checkpoint_is_serialized_in_chunks_while_decisions_go_on() -> None:
    """Defect 10: pickling a sampler with 100k in-flight ids held the event loop for 18-35 ms.
    The snapshot is taken at one moment; its ids are serialized a chunk at a time, the loop
    running between chunks, and decisions made meanwhile do not leak into it."""
    from streamer.store.checkpoint import (
        IN_FLIGHT_CHUNK,
        Checkpoint,
        dumps_yielding,
        loads,
        snapshot,
    )

    key = b"0123456789abcdef0123"
    count = 5 * IN_FLIGHT_CHUNK
    sampler = _sampler_with_in_flight(count)
    taken = snapshot(Checkpoint(sampler, {("labels", 0): 9}))
    assert len(taken.state) < 100_000, "the sampler is pickled without its in-flight ids"
    assert len(sampler._in_flight) == count, "the live sampler keeps them"
    ticks = 0

    async def loop_turns() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            sampler._remember([f"new{ticks}"], [1.0])  # a decision between two chunks
            await asyncio.sleep(0)

    turning = asyncio.create_task(loop_turns())
    await asyncio.sleep(0)
    blob = await dumps_yielding(taken, key)
    turning.cancel()
    assert ticks >= 5, "the event loop ran between the chunks"
    restored = loads(blob, key)
    assert list(restored.sampler._in_flight) == [f"id{i}" for i in range(count)]
    assert restored.label_offsets == {("labels", 0): 9}
