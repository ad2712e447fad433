"""The throughput benchmark's broker side: the items, producing them (at full speed or at an
offered rate), reading the outputs' timestamps back, and the annotator that answers label
requests while a latency run goes on (so the service learns while it decides)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PARTITIONS = 4
BUDGET = 0.05
WARM_ROWS = 200
Z95 = 1.6448536269514722  # P(N(0,1) > Z95) = 5%: the ceiling's "model"
F32 = "application/x-float32"
# A feeder sends what is due every 5 ms, as a Kafka producer with the default linger.ms (5) does;
# 1 ms ticks make Tansu store 4x more batches, and its in-memory log slows with their number.
TICK_S = 0.005
ANSWER_DELAY_S = 0.2  # the annotator answers each label request this long after it was sent


# -- items ---------------------------------------------------------------------------------------


def warm_data(d: int) -> tuple[np.ndarray, list[int]]:
    """The rows every model learns before a run (same for all pipelines)."""
    X = np.random.default_rng(0).normal(size=(WARM_ROWS, d))
    return X, [int(x0 > 0) for x0 in X[:, 0]]


def item_values(d: int, n: int, seed: int, raw: bool) -> tuple[list[bytes], list[bytes]]:
    """``n`` items of ``d`` standard-normal features: keys (ids) and values."""
    X = np.random.default_rng(seed).normal(size=(n, d))
    keys = [f"i{seed}-{k}".encode() for k in range(n)]
    if raw:
        values = [row.tobytes() for row in X.astype("<f4")]
    else:
        values = [
            orjson.dumps({"id": key.decode(), "features": row})
            for key, row in zip(keys, X.tolist(), strict=True)
        ]
    return keys, values


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


def _headers(raw: bool) -> list[tuple[str, bytes]]:
    return [("content-type", F32.encode())] if raw else []


async def produce_all(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes], raw: bool) -> float:
    """Produce every item as fast as possible (send_batch); return items/s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        headers = _headers(raw)
        chunk = 8192
        for start in range(0, len(values), chunk):
            futures += await _send_chunk(producer, topic, keys[start:start + chunk],
                                         values[start:start + chunk], headers, start)
            if len(futures) > 256:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(values) / (time.perf_counter() - started)


async def _send_chunk(producer: AIOKafkaProducer, topic: str, keys: list[bytes], values: list[bytes],
                      headers: list[tuple[str, bytes]], offset: int) -> list[Any]:
    futures = []
    batches = {p: producer.create_batch() for p in range(PARTITIONS)}
    for j, (key, value) in enumerate(zip(keys, values, strict=True)):
        p = (offset + j) % PARTITIONS
        if batches[p].append(key=key, value=value, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batches[p], topic, partition=p))
            batches[p] = producer.create_batch()
            batches[p].append(key=key, value=value, timestamp=None, headers=headers)
    for p, batch in batches.items():
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=p))
    return futures


async def produce_paced(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes],
                        rate: float, raw: bool, tick_s: float = TICK_S) -> float:
    """Produce at ``rate`` items/s, what is due every ``tick_s``; return the rate achieved."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=512 * 1024)
    await producer.start()
    headers = _headers(raw)
    sent = 0
    started = time.perf_counter()
    try:
        while sent < len(values):
            due = min(len(values), int((time.perf_counter() - started) * rate) + 1)
            if due > sent:
                await _send_chunk(producer, topic, keys[sent:due], values[sent:due], headers, sent)
                sent = due
            await asyncio.sleep(tick_s)
        await producer.flush()
    finally:
        await producer.stop()
    return sent / (time.perf_counter() - started)


async def read_stamps(bootstrap: str, topic: str, expect: int, idle_s: float = 3.0,
                      timeout_s: float = 600.0) -> dict[bytes, int]:
    """key -> record timestamp (ms) of every record of ``topic``: at least ``expect`` of them,
    then until nothing new came for ``idle_s`` (Tansu's end offsets cannot say where it ends)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    out: dict[bytes, int] = {}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=100_000)
            for records in batches.values():
                for r in records:
                    out[r.key] = r.timestamp
                last_new = time.monotonic()
            if time.monotonic() - last_new >= (idle_s if len(out) >= expect else 30.0):
                break
    finally:
        await consumer.stop()
    return out


def truth(values: list[bytes]) -> dict[bytes, int]:
    """id -> the class the annotator gives (the first feature's sign, as the warm-up rows')."""
    out = {}
    for value in values:
        item = orjson.loads(value)
        out[item["id"].encode()] = int(item["features"][0] > 0)
    return out


async def annotate(bootstrap: str, requests_topic: str, labels_topic: str, answers: dict[bytes, int],
                   stop: asyncio.Event, delay_s: float = ANSWER_DELAY_S) -> int:
    """Answer every label request ``delay_s`` after it was sent, until ``stop``; return how many."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(requests_topic, p) for p in range(PARTITIONS)])
    due: deque[tuple[float, bytes]] = deque()
    answered = 0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=20, max_records=10_000)
            for records in batches.values():
                for r in records:
                    due.append((r.timestamp / 1000.0 + delay_s, r.key))
            now = time.time()
            while due and due[0][0] <= now:
                _, key = due.popleft()
                if key in answers:
                    label = orjson.dumps({"id": key.decode(), "label": answers[key], "annotator": "bench"})
                    await producer.send(labels_topic, label, key=key)
                    answered += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return answered


def percentiles_ms(latencies: np.ndarray) -> dict[str, float]:
    """p50, p99 and p999 of latencies in ms (one decimal: record timestamps are whole ms)."""
    return {name: round(float(np.percentile(latencies, q)), 1)
            for name, q in (("p50_ms", 50), ("p99_ms", 99), ("p999_ms", 99.9))}
