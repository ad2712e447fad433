"""Garbage through a real broker: does every bad message become a dead letter, and nothing else?

A seeded stream of garbage items and labels of every kind (invalid JSON or msgpack, missing or
non-string ids, wrong feature counts, NaN/inf, values nested 1,000 deep, 2 MB messages, unknown
content types, tombstones, ...) is interleaved with good items over every partition of the
items topic, and sent through a real Tansu broker to a real ``streamer run`` process (the
in-process store). Then labels with unusual classes (new strings, 64-bit integers, 256-character
names) answer the label requests, and a second wave of good items checks the service still
decides. It passes when:

- the service is alive and ready at the end, with no error (crashes = 0);
- every bad message has exactly its dead letter (matched by topic, partition and offset) with
  the expected reason, and no good message has one;
- every good item has a prediction (none lost, no partition blocked), including one sentinel
  item sent last to every partition;
- the dead letters counted in ``/metrics`` add up to those on the topic, reason by reason.

The baseline, measured in the same run: the same service deciding a clean stream of good items
only; the garbage run's throughput is reported against it.

Usage::

    .venv/bin/python benchmarks/fuzz_broker.py                     # 20,000 garbage messages
    .venv/bin/python benchmarks/fuzz_broker.py --garbage 2000 --out /tmp/fuzz

``tests/integration/test_fuzz_broker.py`` runs :func:`run_fuzz` at a smaller scale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # streamer, and the harness of the integration tests

import msgpack  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.machine import Start, write_result  # noqa: E402
from streamer.wire import JSON, MSGPACK  # noqa: E402

N_FEATURES = 4
PARTITIONS = 3
TWO_MB = 2_000_000
# Classes the annotators answer with after the first wave: a binary start, then classes the
# model has never seen, of other types and sizes.
LABEL_CLASSES: list[str | int] = [0, 1, 0, 1, "zebra", 2**63 - 1, -7, "é" * 256, "1"]


@dataclass
class Message:
    """One message sent, and what the service must make of it."""

    topic: str  # "items" or "labels"
    kind: str
    expect: str  # "predicted", "dead" (a dead letter), "either" (one of the two), "counted"
    reason: str | None  # the dead letter's reason when expect is "dead"
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = None
    item_id: str | None = None  # the prediction to look for
    partition: int = 0
    offset: int = -1  # set once the broker acknowledged it


def _ct(content_type: str) -> list[tuple[str, bytes]]:
    return [("content-type", content_type.encode())]


def _js(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _mp(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ---------------------------------------------------------------- garbage items
# Each maker takes (rng, serial) and returns (value, headers, expected dead-letter reason).

Made = tuple[bytes | None, list[tuple[str, bytes]], str]


def _row(rng: random.Random, n: int = N_FEATURES) -> list[float]:
    return [rng.gauss(0.0, 1.0) for _ in range(n)]


def _item(rng: random.Random, serial: int, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": f"bad-{serial}", "features": _row(rng)}
    obj.update(fields)
    return {k: v for k, v in obj.items() if v is not _DROP}


_DROP = object()


def _bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


ITEM_GARBAGE: dict[str, Callable[[random.Random, int], Made]] = {
    "binary_garbage": lambda r, s: (b"\xff" + _bytes(r, r.randrange(200)), [], "bad_json"),
    "truncated_json": lambda r, s: (
        (v := _js(_item(r, s)))[: r.randrange(1, len(v) - 1)], [], "bad_json"),
    "python_json_nan": lambda r, s: (
        json.dumps(_item(r, s, features=[math.nan, math.inf, -math.inf, 1.0])).encode(), [],
        "bad_json"),
    "not_an_object": lambda r, s: (
        _js(r.choice([[1, 2, 3], 42, "item", None, [{"id": "a"}], True])), [], "not_object"),
    "id_missing": lambda r, s: (_js(_item(r, s, id=_DROP)), [], "missing_id"),
    "id_not_string": lambda r, s: (
        _js(_item(r, s, id=r.choice([12, None, 1.5, ["a"], {"id": "a"}, True]))), [], "bad_id"),
    "id_empty": lambda r, s: (_js(_item(r, s, id="")), [], "bad_id"),
    "id_too_long": lambda r, s: (_js(_item(r, s, id="x" * r.randrange(257, 20_000))), [],
                                 "bad_id"),
    "id_nested_1000_deep": lambda r, s: (
        b'{"id": ' + _deep(1000) + b', "features": [1.0, 2.0, 3.0, 4.0]}', [], "bad_id"),
    "features_missing": lambda r, s: (_js(_item(r, s, features=_DROP)), [], "bad_features"),
    "features_not_a_list": lambda r, s: (
        _js(_item(r, s, features=r.choice(["1,2,3,4", 4, None, True]))), [], "bad_features"),
    "features_empty": lambda r, s: (_js(_item(r, s, features=[])), [], "bad_features"),
    "features_wrong_count": lambda r, s: (
        _js(_item(r, s, features=_row(r, r.choice([1, 2, 3, 5, 8, 100])))), [], "feature_count"),
    "feature_not_a_number": lambda r, s: (
        _js(_item(r, s, features=[*_row(r, 3), r.choice(["2", True, None, [1.0], {"x": 1}])])),
        [], "bad_features"),
    "feature_nested_1000_deep": lambda r, s: (
        b'{"id": "deep-' + str(s).encode() + b'", "features": [1.0, 2.0, 3.0, '
        + _deep(1000) + b"]}", [], "bad_features"),
    "features_named_on_a_list_stream": lambda r, s: (
        _js(_item(r, s, features={"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})), [], "bad_features"),
    "feature_nan_or_inf_msgpack": lambda r, s: (
        _mp(_item(r, s, features=[*_row(r, 3), r.choice([math.nan, math.inf, -math.inf])])),
        _ct(MSGPACK), "non_finite"),
    "ts_not_a_number": lambda r, s: (_js(_item(r, s, ts=r.choice(["noon", [1], True]))), [],
                                     "bad_field"),
    "stream_not_a_string": lambda r, s: (_js(_item(r, s, stream=r.choice([3, [1], {"a": 1}]))),
                                         [], "bad_field"),
    "stream_too_long": lambda r, s: (_js(_item(r, s, stream="s" * r.randrange(257, 5000))), [],
                                     "bad_field"),
    "meta_not_an_object": lambda r, s: (_js(_item(r, s, meta=r.choice([[1], "m", 7]))), [],
                                        "bad_field"),
    "unknown_content_type": lambda r, s: (
        _js(_item(r, s)), _ct(r.choice(["text/csv", "application/xml", "avro", "json!", "\u00e9"])),
        "bad_content_type"),
    "json_sent_as_msgpack": lambda r, s: (_js(_item(r, s)), _ct(MSGPACK), "bad_msgpack"),
    "msgpack_sent_as_json": lambda r, s: (_mp(_item(r, s)), _ct(JSON), "bad_json"),
    "msgpack_garbage": lambda r, s: (b"\xc1" + _bytes(r, r.randrange(50)), _ct(MSGPACK),
                                     "bad_msgpack"),
    "tombstone": lambda r, s: (None, [], "null_value"),
}
# Few of these: each is megabytes on the broker.
ITEM_HUGE: dict[str, Callable[[random.Random, int], Made]] = {
    "huge_garbage_2mb": lambda r, s: (b"{" * TWO_MB, [], "too_large"),
    # label requests echo payload_uri: one this long would make a request over 1 MB
    "payload_uri_too_long_900kb": lambda r, s: (
        _js(_item(r, s, payload_uri="s3://b/" + "k" * 900_000)), [], "bad_field"),
    "huge_item_1_5mb": lambda r, s: (
        _js(_item(r, s, payload_uri="s3://b/" + "k" * 1_500_000)), [], "too_large"),
}

LABEL_GARBAGE: dict[str, Callable[[random.Random, int], Made]] = {
    "binary_garbage": lambda r, s: (b"\xfe" + _bytes(r, r.randrange(100)), [], "bad_json"),
    "not_an_object": lambda r, s: (_js(r.choice([[1], 3, "cat", None])), [], "not_object"),
    "id_missing": lambda r, s: (_js({"label": 1}), [], "missing_id"),
    "id_not_string": lambda r, s: (_js({"id": r.choice([5, None, [1]]), "label": 1}), [],
                                   "bad_id"),
    "id_nested_1000_deep": lambda r, s: (b'{"label": 1, "id": ' + _deep(1000) + b"}", [],
                                         "bad_id"),
    "label_missing": lambda r, s: (_js({"id": f"l-{s}"}), [], "bad_label"),
    "label_bad_type": lambda r, s: (
        _js({"id": f"l-{s}", "label": r.choice([True, False, 0.5, None, [1, 2], {"c": 1}])}), [],
        "bad_label"),
    "label_empty_or_too_long": lambda r, s: (
        _js({"id": f"l-{s}", "label": r.choice(["", "y" * 257])}), [], "bad_label"),
    "label_nested_1000_deep": lambda r, s: (
        b'{"id": "l-' + str(s).encode() + b'", "label": ' + _deep(1000) + b"}", [], "bad_label"),
    "annotator_not_a_string": lambda r, s: (_js({"id": f"l-{s}", "label": 1, "annotator": 7}),
                                            [], "bad_field"),
    "ts_not_a_number": lambda r, s: (_js({"id": f"l-{s}", "label": 1, "ts": "now"}), [],
                                     "bad_field"),
    "unknown_content_type": lambda r, s: (_js({"id": f"l-{s}", "label": 1}), _ct("text/plain"),
                                          "bad_content_type"),
    "msgpack_sent_as_json": lambda r, s: (_mp({"id": f"l-{s}", "label": 1}), [], "bad_json"),
    "tombstone": lambda r, s: (None, [], "null_value"),
}
LABEL_HUGE: dict[str, Callable[[random.Random, int], Made]] = {
    "huge_label_2mb": lambda r, s: (_js({"id": "l", "label": "c" * TWO_MB}), [], "too_large"),
}


def good_item(rng: random.Random, serial: int, prefix: str = "good") -> Message:
    """A valid item in one of the accepted shapes (formats, optional and unknown fields)."""
    item_id = f"{prefix}-{serial}" + rng.choice(["", "", "-é漢", " with space"])
    obj: dict[str, Any] = {"id": item_id, "features": _row(rng)}
    shape = rng.randrange(5)
    if shape == 1:
        obj.update(ts=time.time(), stream="cam3", payload_uri=f"s3://b/{serial}.jpg", meta={"k": 1})
    elif shape == 2:
        obj.update(camera_angle=30, extra={"nested": [1, 2]}, ts=None, meta=None)
    elif shape == 3:
        obj["features"] = [int(v * 10) for v in obj["features"]]  # integers are numbers too
    content_type = rng.choice([None, JSON, "application/json; charset=utf-8", MSGPACK])
    value = _mp(obj) if content_type == MSGPACK else _js(obj)
    return Message("items", "good", "predicted", None, value,
                   _ct(content_type) if content_type else [], item_id.encode(), item_id)


def extreme_item(rng: random.Random, serial: int) -> Message:
    """Finite values beyond the default --max-abs-feature (1e15) are dead letters, out_of_range
    (one 1e308 would poison the running scaler); tiny ones are fine numbers."""
    item_id = f"extreme-{serial}"
    row = [rng.choice([1e308, -1e308, 1.7976931348623157e308, 1e16]),
           rng.choice([5e-324, 1e-300, 1.0]), 1.0]
    value = _js({"id": item_id, "features": [*row, 1.0]})
    return Message("items", "extreme_floats", "dead", "out_of_range", value, [], item_id.encode(),
                   item_id)


def oversize_item(serial: int) -> Message:
    """A valid item of 1,020,000 bytes: over the 1,000,000 default of ``--max-message-bytes``,
    under the decoders' own 1 MiB default. A service that passes the setting to the decoders
    dead-letters it (too_large), one that does not decides it; either way it is not lost."""
    item_id = f"oversize-{serial}"
    obj: dict[str, Any] = {"id": item_id, "features": [1.0, 2.0, 3.0, 4.0], "meta": {"blob": ""}}
    obj["meta"]["blob"] = "k" * (1_020_000 - len(_js(obj)))
    return Message("items", "oversize_valid_1mb", "either", "too_large", _js(obj), [],
                   item_id.encode(), item_id)


def generate(seed: int, n_garbage_items: int, n_good_items: int, n_garbage_labels: int,
             n_huge: int = 1, n_unknown_labels: int = 50) -> list[Message]:
    """The first wave: garbage and good items over every partition, garbage labels, shuffled."""
    rng = random.Random(seed)
    messages: list[Message] = []
    kinds = sorted(ITEM_GARBAGE)
    for serial in range(n_garbage_items):
        kind = kinds[serial % len(kinds)]  # every kind about as often
        value, headers, reason = ITEM_GARBAGE[kind](rng, serial)
        key = rng.choice([None, f"bad-{serial}".encode(), rng.randbytes(8)])
        messages.append(Message("items", kind, "dead", reason, value, headers, key))
    for serial in range(n_huge):
        for kind, make in ITEM_HUGE.items():
            value, headers, reason = make(rng, serial)
            messages.append(Message("items", kind, "dead", reason, value, headers, None))
        for kind, make in LABEL_HUGE.items():
            value, headers, reason = make(rng, serial)
            messages.append(Message("labels", kind, "dead", reason, value, headers, None))
        messages.append(oversize_item(serial))
    for serial in range(n_good_items):
        messages.append(good_item(rng, serial))
    for serial in range(max(1, n_good_items // 50)):
        messages.append(extreme_item(rng, serial))
    label_kinds = sorted(LABEL_GARBAGE)
    for serial in range(n_garbage_labels):
        kind = label_kinds[serial % len(label_kinds)]
        value, headers, reason = LABEL_GARBAGE[kind](rng, serial)
        messages.append(Message("labels", kind, "dead", reason, value, headers, None))
    for serial in range(n_unknown_labels):  # valid labels of items never requested
        value = _js({"id": f"never-requested-{serial}", "label": rng.choice([0, 1, "zebra"])})
        messages.append(Message("labels", "label_for_unknown_item", "counted", None, value))
    rng.shuffle(messages)
    for serial, message in enumerate(messages):
        message.partition = rng.randrange(PARTITIONS)
        if message.value is None and message.key is None:  # Kafka needs one of the two
            message.key = f"tombstone-{serial}".encode()
    return messages


# ---------------------------------------------------------------- the run


async def send_all(bootstrap: str, topics: dict[str, str], messages: list[Message]) -> None:
    """Produce every message to its partition; record the offset the broker gave it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_request_size=4 * TWO_MB, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topics[m.topic], m.value, key=m.key, headers=m.headers or None,
                                partition=m.partition)
            for m in messages
        ]
        for message, metadata in zip(messages, await asyncio.gather(*futures), strict=True):
            message.offset = metadata.offset
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, expect: int = 0, idle_s: float = 0.5,
                     timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` as (partition, offset, value): at least ``expect`` of them,
    then until nothing new came for ``idle_s``.

    The service counts an output when it sends it, a moment before the broker has it, so
    the count it reports is what to wait for. (Tansu's end offsets can lag behind the last
    record batch, so they cannot say where the topic ends.)
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])  # see topic_names
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                out += [(r.partition, r.offset, r.value) for r in records]
                last_new = time.monotonic()
            if len(out) >= expect and time.monotonic() - last_new >= idle_s:
                break
        return out
    finally:
        await consumer.stop()


def dead_letter_metrics(text: str) -> Counter[tuple[str, str]]:
    """``streamer_dead_letters_total`` from a /metrics page, by (source, reason)."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamer_dead_letters_total":
                counts[(sample.labels["source"], sample.labels["reason"])] += int(sample.value)
    return counts


class ServiceCrashed(RuntimeError):
    """The service process exited while messages were being handled."""


async def _wait(service: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                what: str) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(service.wait_for, predicate, timeout, what)
    except (AssertionError, TimeoutError) as exc:
        # /status stopped answering or the work never finished: did the process die?
        try:
            code = await asyncio.to_thread(service.process.wait, 30)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{what}: {exc}\n{service.log()}") from exc
        raise ServiceCrashed(f"the service exited with code {code} before {what}:\n"
                             f"{service.log()}") from exc


def _settled(n_items: int, n_labels: int) -> Callable[[dict[str, Any]], bool]:
    """Every item decided or dead-lettered and every label counted (invalid ones are both)."""
    def check(status: dict[str, Any]) -> bool:
        outcomes = status["join_outcomes"]
        item_letters = status["dead_letters"] - outcomes["invalid"]
        return (status["items_seen"] + item_letters >= n_items
                and sum(outcomes.values()) >= n_labels)
    return check


async def run_fuzz(bootstrap: str, topics: dict[str, str], service: Any, messages: list[Message],
                   n_second_wave: int, seed: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """Send ``messages``, answer label requests with unusual classes, send a second wave of good
    items and a sentinel per partition; check every outcome. ``service`` is a started
    :class:`tests.integration.harness.ServiceProcess`; ``topics`` maps "items", "labels",
    "predictions", "dead-letters" and "label-requests" to topic names."""
    rng = random.Random(seed + 1)
    started = time.perf_counter()
    await send_all(bootstrap, topics, messages)
    n_items = sum(m.topic == "items" for m in messages)
    n_labels = sum(m.topic == "labels" for m in messages)
    status = await _wait(service, _settled(n_items, n_labels), timeout_s, "first wave handled")
    first_wave_s = time.perf_counter() - started

    # annotators answer every label request, with classes the model has never seen
    requests = await read_topic(bootstrap, topics["label-requests"], status["label_requests"])
    answers = []
    for k, (_, _, value) in enumerate(requests):
        item_id = orjson.loads(value)["id"]
        answers.append(Message("labels", "label_unusual_class", "counted", None,
                               _js({"id": item_id, "label": LABEL_CLASSES[k % len(LABEL_CLASSES)]}),
                               partition=rng.randrange(PARTITIONS)))
    second = [good_item(rng, serial, prefix="after") for serial in range(n_second_wave)]
    sentinels = [good_item(rng, p, prefix="sentinel") for p in range(PARTITIONS)]
    for message in second:
        message.partition = rng.randrange(PARTITIONS)
    for p, message in enumerate(sentinels):
        message.partition = p
    await send_all(bootstrap, topics, answers)
    await send_all(bootstrap, topics, second)
    await send_all(bootstrap, topics, sentinels)  # last on their partition: nothing blocks them
    everything = messages + answers + second + sentinels
    n_items += len(second) + len(sentinels)
    n_labels += len(answers)
    status = await _wait(service, _settled(n_items, n_labels), timeout_s, "second wave handled")
    elapsed_s = time.perf_counter() - started

    predictions = await read_topic(bootstrap, topics["predictions"], status["items_seen"])
    letters = await read_topic(bootstrap, topics["dead-letters"], status["dead_letters"])
    code, metrics_page = service.get("/metrics")
    alive = service.process is not None and service.process.poll() is None
    ready = service.get("/readyz")[0]
    status = service.status()
    report = check(everything, topics, predictions, letters, metrics_page.decode())
    report.update(
        service_alive=alive, readyz=ready, service_error=status.get("error"),
        crashes=0 if alive and status.get("error") is None else 1,
        label_requests_answered=len(answers), join_outcomes=status["join_outcomes"],
        classes=status.get("classes"), metrics_http=code,
        first_wave_messages=len(messages), first_wave_seconds=round(first_wave_s, 2),
        messages_per_second=round(len(messages) / first_wave_s, 1),
        elapsed_seconds=round(elapsed_s, 2),
    )
    return report


def check(messages: list[Message], topics: dict[str, str], predictions: list[Any],
          letters: list[Any], metrics_page: str) -> dict[str, Any]:
    """Match every message with its outcome; return per-kind counts and every mismatch."""
    topic_role = {topics["items"]: "items", topics["labels"]: "labels"}
    predicted: Counter[str] = Counter(orjson.loads(v)["id"] for _, _, v in predictions)
    dead: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for _, _, value in letters:
        letter = orjson.loads(value)
        dead[(topic_role.get(letter["source_topic"], letter["source_topic"]), letter["partition"],
              letter["offset"])].append(letter)
    kinds: dict[tuple[str, str], dict[str, Any]] = {}
    problems: list[str] = []
    seen: set[tuple[str, int, int]] = set()
    for m in messages:
        where = (m.topic, m.partition, m.offset)
        seen.add(where)
        row = kinds.setdefault((m.topic, m.kind), {
            "topic": m.topic, "kind": m.kind, "expect": m.expect, "tried": 0, "dead_lettered": 0,
            "predicted": 0, "reasons": Counter(), "expected_reason": m.reason})
        row["tried"] += 1
        found = dead.get(where, [])
        row["dead_lettered"] += bool(found)
        row["reasons"].update(letter.get("reason") for letter in found)
        got_prediction = m.item_id is not None and predicted[m.item_id] > 0
        row["predicted"] += got_prediction
        name = f"{m.topic}[{m.partition}]@{m.offset} {m.kind}"
        if len(found) > 1:
            problems.append(f"{name}: {len(found)} dead letters")
        if m.expect == "dead":
            if not found:
                problems.append(f"{name}: no dead letter")
            elif any(letter.get("reason") != m.reason or not letter.get("error")
                     for letter in found):
                problems.append(f"{name}: reason {found[0].get('reason')!r}, "
                                f"expected {m.reason!r} ({found[0].get('error')})")
        elif m.expect == "predicted":
            if found:
                problems.append(f"{name}: dead letter {found[0].get('reason')!r} "
                                f"({found[0].get('error')})")
            if not got_prediction:
                problems.append(f"{name}: good item {m.item_id!r} has no prediction (lost)")
        elif m.expect == "either":
            if bool(found) == got_prediction:
                problems.append(f"{name}: {'both' if found else 'neither'} a dead letter "
                                "and a prediction")
            elif found and found[0].get("reason") != m.reason:
                problems.append(f"{name}: reason {found[0].get('reason')!r}, expected {m.reason!r}")
        elif found:  # "counted": a valid label, never a dead letter
            problems.append(f"{name}: dead letter {found[0].get('reason')!r}")
    for where in set(dead) - seen:
        problems.append(f"dead letter for a message never sent: {where}")
    on_topic: Counter[tuple[str, str]] = Counter()
    for (role, _, _), found in dead.items():
        for letter in found:
            on_topic[(role, letter.get("reason"))] += 1
    in_metrics = dead_letter_metrics(metrics_page)
    if in_metrics != on_topic:
        problems.append(f"/metrics dead letters {dict(in_metrics)} != on the topic {dict(on_topic)}")
    table = sorted(kinds.values(), key=lambda r: (r["topic"], r["expect"], r["kind"]))
    for row in table:
        row["reasons"] = {str(k): v for k, v in sorted(row["reasons"].items(), key=str)}
    bad = [m for m in messages if m.expect == "dead"]
    good = [m for m in messages if m.expect == "predicted"]
    return {
        "messages_tried": len(messages),
        "bad_messages": len(bad),
        "dead_letters_on_topic": sum(on_topic.values()),
        "dead_letters_by_reason": {f"{s}/{r}": n for (s, r), n in sorted(on_topic.items())},
        "dead_letters_in_metrics": sum(in_metrics.values()),
        "good_items": len(good),
        "good_items_predicted": sum(predicted[m.item_id] > 0 for m in good if m.item_id),
        "good_items_lost": sum(predicted[m.item_id] == 0 for m in good if m.item_id),
        "problems": problems,
        "kinds": table,
    }


# ---------------------------------------------------------------- the script


def topic_names(tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """(roles -> topic names, `streamer run` flags) for one run."""
    roles = {"items": f"items-{tag}", "labels": f"labels-{tag}",
             "predictions": f"predictions-{tag}", "dead-letters": f"dead-letters-{tag}",
             "label-requests": f"label-requests-{tag}"}
    flags: dict[str, Any] = {f"{role}-topic": name for role, name in roles.items()}
    flags.update({"group-id": f"streamer-{tag}", "topic-partitions": PARTITIONS})
    return roles, flags


async def baseline(bootstrap: str, n_good: int, seed: int, log_dir: Path) -> dict[str, Any]:
    """The same service on a clean stream of ``n_good`` good items: its throughput, measured
    like the first wave of the fuzz run (from the first send until all are decided)."""
    from tests.integration.harness import ServiceProcess

    roles, flags = topic_names(uuid.uuid4().hex[:8])
    service = ServiceProcess(bootstrap, {**flags, "n-features": N_FEATURES, "seed": seed},
                             log_dir / "baseline.log")
    await asyncio.to_thread(service.start)
    try:
        rng = random.Random(seed)
        messages = [good_item(rng, k) for k in range(n_good)]
        for m in messages:
            m.partition = rng.randrange(PARTITIONS)
        started = time.perf_counter()
        await send_all(bootstrap, roles, messages)
        await _wait(service, _settled(n_good, 0), 120, "clean stream decided")
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.to_thread(service.stop)
    return {"messages": n_good, "elapsed_seconds": round(elapsed, 2),
            "messages_per_second": round(n_good / elapsed, 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker
    from tests.integration.harness import ServiceProcess

    log_dir = Path(tempfile.mkdtemp(prefix="fuzz-broker-"))
    messages = generate(args.seed, args.garbage, args.good, args.labels, n_huge=args.huge,
                        n_unknown_labels=args.labels // 10)
    with EmbeddedBroker(log=log_dir / "tansu.log") as broker:
        bootstrap = broker.bootstrap_servers
        clean = await baseline(bootstrap, len(messages), args.seed, log_dir)
        roles, flags = topic_names(uuid.uuid4().hex[:8])
        service = ServiceProcess(bootstrap, {**flags, "n-features": N_FEATURES, "seed": args.seed},
                                 log_dir / "service.log")
        await asyncio.to_thread(service.start)
        try:
            report = await run_fuzz(bootstrap, roles, service, messages,
                                    n_second_wave=args.good // 4, seed=args.seed, timeout_s=600)
        except ServiceCrashed as exc:
            report = {"crashes": 1, "crash": str(exc)[-5000:], "problems": [str(exc)[:2000]],
                      "messages_tried": len(messages), "kinds": []}
        finally:
            exit_code = await asyncio.to_thread(service.stop)
    report["exit_code_after_sigterm"] = exit_code
    report["baseline_clean_stream"] = clean
    if "messages_per_second" in report:
        report["garbage_vs_clean_throughput"] = round(
            report["messages_per_second"] / clean["messages_per_second"], 2)
    print(f"service and broker logs: {log_dir}")
    return report


def print_table(report: dict[str, Any]) -> None:
    if "crash" in report:
        print(report["crash"])
        return
    print(f"{'topic':7} {'kind':34} {'expect':9} {'tried':>6} {'dead':>6} {'pred':>6}  reasons")
    for row in report["kinds"]:
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].items()) or "-"
        print(f"{row['topic']:7} {row['kind']:34} {row['expect']:9} {row['tried']:6d} "
              f"{row['dead_lettered']:6d} {row['predicted']:6d}  {reasons}")
    print()
    print(f"messages tried {report['messages_tried']}, bad {report['bad_messages']}, "
          f"dead letters {report['dead_letters_on_topic']} on the topic / "
          f"{report['dead_letters_in_metrics']} in /metrics")
    print(f"good items {report['good_items']}, predicted {report['good_items_predicted']}, "
          f"lost {report['good_items_lost']}; crashes {report['crashes']}, "
          f"/readyz {report['readyz']}, exit code after SIGTERM "
          f"{report.get('exit_code_after_sigterm')}")
    if "baseline_clean_stream" in report:
        print(f"first wave {report['messages_per_second']} msg/s with garbage vs "
              f"{report['baseline_clean_stream']['messages_per_second']} msg/s clean "
              f"(x{report['garbage_vs_clean_throughput']})")
    print(f"problems: {len(report['problems'])}")
    for problem in report["problems"][:30]:
        print("  " + problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--garbage", type=int, default=20_000, help="garbage items")
    parser.add_argument("--good", type=int, default=10_000, help="good items in the first wave")
    parser.add_argument("--labels", type=int, default=3_000, help="garbage labels")
    parser.add_argument("--huge", type=int, default=3, help="2 MB / 1.5 MB / 1 MB messages of each kind")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    started = Start.now()
    report = asyncio.run(main_async(args))
    print_table(report)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_result(args.out / "fuzz_broker.json", {"config": config, **report}, started,
                 dump=lambda doc: json.dumps(doc, indent=1, default=str))
    return 0 if not report["problems"] and report["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
