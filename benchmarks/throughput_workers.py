"""The throughput benchmark's pipelines. Each runs as its own process:
``python benchmarks/throughput.py worker <kind> <config json>`` (see throughput.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from throughput_io import BUDGET, PARTITIONS, Z95, warm_data


def margin_threshold(model: Any, d: int) -> float:
    """The margin below which a river pipeline asks for ~5% of standard-normal items."""
    X = np.random.default_rng(1).normal(size=(4000, d))
    margins = []
    for row in X:
        p = sorted(model.predict_proba_one({f"x{j}": v for j, v in enumerate(row.tolist())}).values())
        margins.append(p[-1] - p[-2])
    return float(np.quantile(margins, BUDGET))


def river_model(d: int) -> Any:
    from river import linear_model, multiclass, preprocessing

    model = preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())
    X, y = warm_data(d)
    for row, label in zip(X.tolist(), y, strict=True):
        x = {f"x{j}": v for j, v in enumerate(row)}
        model["StandardScaler"].learn_one(x)
        model.learn_one(x, label)
    return model


def _ready(cfg: dict[str, Any], consumer: Any) -> None:
    """Tell the harness the consumer has its partitions (an offered load starts then)."""
    path = Path(cfg["ready"])
    if not path.exists() and consumer is not None and consumer.assignment():
        path.touch()


async def send_batches(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: list[tuple[bytes, bytes]]) -> None:
    """``records`` (key, value) as record batches, a new batch whenever one is full."""
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            await producer.send_batch(batch, topic, partition=partition)
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    if batch.record_count():
        await producer.send_batch(batch, topic, partition=partition)


async def worker_ceiling(cfg: dict[str, Any]) -> None:
    """getmany -> decode -> threshold -> produce -> commit, with no model: the most a Python
    consumer here can do. With ``cfg["predictions"]`` it also produces a prediction record per
    item (to ``out``; the 5% to ``requests``): the same output work as the service."""
    consumer = AIOKafkaConsumer(cfg["items"], bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=10, max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], linger_ms=2, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    seen, loads, dumps = 0, orjson.loads, orjson.dumps
    predicting = bool(cfg.get("predictions"))
    asks_topic = cfg["requests"] if predicting else cfg["out"]
    try:
        while seen < cfg["n"]:
            batches = await consumer.getmany(timeout_ms=200, max_records=4096)
            _ready(cfg, consumer)
            for tp, records in batches.items():
                asks: list[tuple[bytes, bytes]] = []
                predictions: list[tuple[bytes, bytes]] = []
                for r in records:
                    item = loads(r.value)
                    x0 = item["features"][0]
                    if x0 > Z95:
                        asks.append((r.key, r.value))
                    if predicting:
                        predictions.append((r.key, dumps({"id": item["id"], "prediction": int(x0 > 0),
                                                          "confidence": 0.5, "model_version": 1})))
                await send_batches(producer, asks_topic, tp.partition, asks)
                await send_batches(producer, cfg["out"], tp.partition, predictions)
                seen += len(records)
            if batches:
                await consumer.commit()
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


async def worker_naive(cfg: dict[str, Any]) -> None:
    d = cfg["d"]
    model = river_model(d)
    scaler = model["StandardScaler"]
    threshold = margin_threshold(model, d)
    names = [f"x{j}" for j in range(d)]
    consumer = AIOKafkaConsumer(cfg["items"], bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
                                enable_auto_commit=True, auto_offset_reset="earliest", fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], linger_ms=2)
    await consumer.start()
    await producer.start()
    seen = 0
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=1)  # only joins: nothing produced yet
        _ready(cfg, consumer)
        async for record in consumer:  # one item at a time
            item = orjson.loads(record.value)
            x = dict(zip(names, item["features"], strict=True))
            proba = model.predict_proba_one(x)
            scaler.learn_one(x)
            label, confidence = max(proba.items(), key=lambda kv: kv[1])
            await producer.send(cfg["out"], orjson.dumps({
                "id": item["id"], "prediction": label, "confidence": confidence, "model_version": 1,
            }), key=record.key)
            top = sorted(proba.values())
            if top[-1] - top[-2] < threshold:
                await producer.send(cfg["requests"], orjson.dumps({
                    "id": item["id"], "features": item["features"],
                    "proba": {str(k): v for k, v in proba.items()},
                    "reason": "uncertainty", "model_version": 1,
                }), key=record.key)
            seen += 1
            if seen >= cfg["n"]:
                break
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


async def worker_streamer(cfg: dict[str, Any]) -> None:
    from streamer.app import build_service, serve
    from streamer.config import Settings

    settings = Settings(
        bootstrap_servers=cfg["bootstrap"], items_topic=cfg["items"], predictions_topic=cfg["out"],
        label_requests_topic=cfg["requests"], labels_topic=cfg["labels"],
        dead_letters_topic=cfg["dead"], group_id=cfg["group"], topic_partitions=PARTITIONS,
        budget=BUDGET, metrics_port=0, n_features=cfg["d"],
        **{**cfg.get("settings", {}), **json.loads(os.environ.get("STREAMER_BENCH_SETTINGS", "{}"))},
    )
    service = await build_service(settings)
    X, y = warm_data(cfg["d"])
    service.sampler.model.observe(X)
    began = time.perf_counter()
    for start in range(0, len(y), 8):  # label batches as the service gets them
        service.sampler.learn(X[start:start + 8], y[start:start + 8])
    learn_rate = len(y) / (time.perf_counter() - began)  # labels/s: what learning costs
    stop = asyncio.Event()

    async def until_done() -> None:
        while service.counts["items"] + service.counts["dead_letters"] < cfg["n"]:
            if service.consuming:  # the items consumer holds its partitions
                Path(cfg["ready"]).touch()
            await asyncio.sleep(0.05)
        stop.set()

    watcher = asyncio.create_task(until_done())
    await serve(settings, stop, service)
    watcher.cancel()
    print(json.dumps({"status": {k: service.status().get(k) for k in ("items_seen", "label_requests",
                                                                        "dead_letters", "spend",
                                                                        "model_race")},
                      "labels_applied": service.counts["labels_applied"],
                      "warm_labels_per_s": round(learn_rate, 1),
                      "loop_lag": loop_lag_summary(service.metrics.loop_lag)}))


def loop_lag_summary(histogram: Any) -> dict[str, Any]:
    """How many of the event loop's 10 ms timers ran late by more than each bucket bound."""
    (metric,) = histogram.collect()
    buckets = {s.labels["le"]: s.value for s in metric.samples if s.name.endswith("_bucket")}
    total = buckets["+Inf"]
    return {"timers": int(total), **{f"late_over_{float(le) * 1000:g}ms": int(total - count)
                                     for le, count in buckets.items() if le != "+Inf" and float(le) >= 0.005}}


def worker_faust_sampling(cfg: dict[str, Any]) -> None:
    """Not a coroutine: the faust worker runs its own event loop."""
    from faust_agent import run_worker, tansu_app

    from streamer.faust_sampling import sampling_agent

    app = tansu_app(cfg["group"], cfg["bootstrap"], PARTITIONS)
    handle = sampling_agent(
        app, cfg["items"], labels_topic=cfg["labels"], label_requests_topic=cfg["requests"],
        predictions_topic=cfg["out"], dead_letters_topic=cfg["dead"], store=cfg.get("redis_url"),
        settings={"budget": BUDGET, "n_features": cfg["d"], **cfg.get("settings", {})},
    )
    X, y = warm_data(cfg["d"])
    handle.sampler.model.observe(X)
    handle.sampler.learn(X, y)

    done = False

    @app.timer(0.05)
    async def until_done() -> None:
        nonlocal done
        if handle.ready:
            Path(cfg["ready"]).touch()
        status = handle.status()
        if not done and status.get("items_seen", 0) + status.get("dead_letters", 0) >= cfg["n"]:
            done = True
            # faust sends print() to its log; the harness reads this line from stdout
            sys.__stdout__.write(json.dumps({"status": {k: status[k] for k in (
                "items_seen", "label_requests", "dead_letters", "spend")}}) + "\n")
            sys.__stdout__.flush()
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's graceful stop, as faust_agent's

    run_worker(app)


WORKERS = {"ceiling": worker_ceiling, "naive": worker_naive, "streamer": worker_streamer,
           "faust-sampling": worker_faust_sampling}
