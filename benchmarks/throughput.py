"""Throughput and decision latency through the real broker, against the baselines, in one run.

For items of 16, 64 and 512 features (budget 5%, 4 partitions, the embedded Tansu broker on
loopback), every pipeline below runs as its own process, one at a time:

- ``ceiling``: raw aiokafka ``getmany`` -> orjson decode -> threshold -> produce 5% with
  ``send_batch`` -> commit. No model: the most any Python consumer here can do.
- ``streamer``: the service (``streamer.app.serve``: HTTP endpoints, metrics, Redis pending
  store when Redis answers) with the default model, warmed on 200 labelled rows, emitting a
  prediction for every item and label requests for 5%.
- ``streamer-f32``: the same with the opt-in raw float32 content type (16 features only).
- ``streamer-auto``: the same with the default ``--model auto`` (the portfolio; the other
  streamer pipelines run ``StandardScaler | LogisticRegression``), warmed on the same rows in
  label batches of 8; the race picks the leader, which the results record.
- ``naive``: a per-item service on the same broker: consume one -> ``predict_proba_one`` ->
  produce the prediction (and a label request for the least certain 5%) -> next.
- ``faust-event`` / ``faust-take``: the same per-item logic as a faust-streaming agent,
  per event and with ``stream.take()`` (benchmarks/faust_agent.py).
- ``faust-sampling``: our Faust integration, ``streamer.faust_sampling.sampling_agent``, in the same
  faust app as the two above (the service's batch code, model and Redis store behind
  ``stream.take_events``), warmed like ``streamer``, emitting predictions and label requests.

Full speed: the items are produced first; each pipeline then drains them from the start and
its rate is ``outputs / (last output time - first output time)`` from the output records'
timestamps, so start-up (a consumer-group join takes ~5 s on Tansu) is not counted.

Offered load: a producer in this process sends items at a fixed rate (20k and 50k items/s)
while the pipeline runs; decision latency is the output record's timestamp minus the item
record's timestamp (both stamped on this machine's clock), p50 and p99. Pipelines whose full
speed is below the offered load are not run at it (they could only fall behind).

Writes ``benchmarks/results/throughput.json`` and prints a table. ``--quick`` is a smoke run.

Usage::

    python benchmarks/throughput.py            # the full run (about 12 minutes on 2 cores)
    python benchmarks/throughput.py --quick    # 16 features, small counts
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one numeric thread per process (see README)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import machine  # noqa: E402

from streamer.models import LOGISTIC_MODEL  # noqa: E402

PARTITIONS = 4
BUDGET = 0.05
WARM_ROWS = 200
Z95 = 1.6448536269514722  # P(N(0,1) > Z95) = 5%: the ceiling's "model"
F32 = "application/x-float32"
RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
LOGS = Path(tempfile.mkdtemp(prefix="streamer-throughput-"))  # each worker's stderr


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
                        rate: float, raw: bool) -> float:
    """Produce at ``rate`` items/s in 1 ms ticks; return the rate achieved."""
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
            await asyncio.sleep(0.001)
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


# -- pipelines (each runs as `python benchmarks/throughput.py worker <kind> <config json>`) --------


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


async def worker_ceiling(cfg: dict[str, Any]) -> None:
    consumer = AIOKafkaConsumer(cfg["items"], bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=10, max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], linger_ms=2, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    seen, loads = 0, orjson.loads
    try:
        while seen < cfg["n"]:
            batches = await consumer.getmany(timeout_ms=200, max_records=4096)
            _ready(cfg, consumer)
            for tp, records in batches.items():
                batch = producer.create_batch()
                for r in records:
                    if loads(r.value)["features"][0] > Z95:
                        batch.append(key=r.key, value=r.value, timestamp=None)
                if batch.record_count():
                    await producer.send_batch(batch, cfg["out"], partition=tp.partition)
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
                      "warm_labels_per_s": round(learn_rate, 1)}))


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


# -- the harness -----------------------------------------------------------------------------------


@dataclass
class Run:
    pipeline: str
    features: int
    load: float | None  # offered items/s, None = full speed
    items: int
    outputs: int = 0
    items_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _worker_cmd(kind: str, cfg: dict[str, Any]) -> tuple[list[str], dict[str, str] | None]:
    if kind in ("faust-event", "faust-take"):
        from faust_agent import agent_command

        return agent_command(
            cfg["bootstrap"], cfg["items"], cfg["out"], cfg["requests"], n_features=cfg["d"],
            mode=kind.split("-", 1)[1], n_items=cfg["n"], group=cfg["group"], partitions=PARTITIONS,
        )
    return [sys.executable, str(Path(__file__).resolve()), "worker", kind, json.dumps(cfg)], None


async def run_pipeline(kind: str, bootstrap: str, d: int, items_topic: str, n: int, tag: str,
                       load: float | None, keys: list[bytes] | None = None,
                       values: list[bytes] | None = None, raw: bool = False,
                       redis_url: str | None = None) -> Run:
    """One pipeline over ``items_topic``: preloaded (load None) or fed live at ``load`` items/s."""
    out, requests = f"out-{tag}", f"requests-{tag}"
    await create_topics(bootstrap, [out, requests, f"labels-{tag}", f"dead-{tag}"])
    cfg: dict[str, Any] = {"bootstrap": bootstrap, "items": items_topic, "out": out, "requests": requests,
                           "labels": f"labels-{tag}", "dead": f"dead-{tag}", "group": f"g-{tag}",
                           "d": d, "n": n, "ready": str(LOGS / f"{tag}.ready")}
    name = "streamer" if kind.startswith("streamer") else kind
    if kind == "streamer-requests":  # label requests only, like the ceiling: measured on them
        cfg["settings"] = {"emit_predictions": False}
        out = requests
    if name in ("streamer", "faust-sampling"):
        cfg["settings"] = {**cfg.get("settings", {}), "model": AUTO_PIPELINES.get(kind, SINGLE_MODEL)}
    if name == "streamer" and redis_url:
        cfg["settings"] = {**cfg.get("settings", {}), "redis_url": redis_url, "redis_prefix": f"bench:{tag}:{time.time_ns()}",
                           "checkpoint_key": "throughput-benchmark-key"}
    if name == "faust-sampling" and redis_url:  # the same store, opened by sampling_agent
        cfg["redis_url"] = redis_url
        cfg["settings"] = {**cfg["settings"], "redis_prefix": f"bench:{tag}:{time.time_ns()}"}
    argv, env = _worker_cmd(name, cfg)
    run = Run(pipeline=kind, features=d, load=load, items=n)
    log = open(LOGS / f"{tag}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=log, text=True, cwd=ROOT)
    try:
        if load is not None:
            assert keys is not None and values is not None
            # the consumer group join (Tansu: ~5 s) before items flow, then a second to settle
            ready = Path(cfg["ready"])
            began = time.monotonic()
            while not ready.exists() and proc.poll() is None and time.monotonic() - began < 120:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            run.extra["offered_achieved"] = round(await produce_paced(bootstrap, items_topic, keys, values, load, raw))
        timeout = 900.0
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < timeout:
            await asyncio.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            run.note = "timed out"
        stdout, _ = proc.communicate(timeout=60)
        for line in stdout.splitlines():
            with contextlib.suppress(ValueError):
                run.extra.update(json.loads(line))
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    expect = n if out != requests and name != "ceiling" else int(n * BUDGET * 0.8)
    outputs = await read_stamps(bootstrap, out, expect)
    run.outputs = len(outputs)
    stamps = np.array(sorted(outputs.values()), dtype=np.float64)
    if len(stamps) > 1 and stamps[-1] > stamps[0]:
        run.items_per_s = round(n * (len(stamps) - 1) / len(stamps) / ((stamps[-1] - stamps[0]) / 1000.0))
    if load is not None:
        born = await read_stamps(bootstrap, items_topic, n)
        lat = np.array([ts - born[k] for k, ts in outputs.items() if k in born], dtype=np.float64)
        if lat.size:
            run.p50_ms, run.p99_ms = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    return run


def plan(quick: bool) -> dict[int, int]:
    return {16: 20_000} if quick else {16: 600_000, 64: 300_000, 512: 50_000}


PIPELINES = ["ceiling", "streamer", "naive", "faust-event", "faust-take", "faust-sampling"]
SLOW = {"naive", "faust-event", "faust-take"}
# The single-model pipelines run LOGISTIC_MODEL (the default before ``auto``); ``streamer-auto``
# runs the default portfolio, whose decide cost is its leader's (the torch head leads until
# the race shows another member better, when torch is installed).
SINGLE_MODEL = LOGISTIC_MODEL
AUTO_PIPELINES = {"streamer-auto": "auto"}  # per-item pipelines: fewer items, same rate


def slow_items(kind: str, d: int, n: int) -> int:
    if kind.startswith("faust"):  # ~4k items/s: enough items for a steady rate, not more
        return min(n, {16: 50_000, 64: 30_000, 512: 10_000}.get(d, n))
    return min(n, {16: 200_000, 64: 100_000, 512: 20_000}.get(d, n))


def redis_url() -> str | None:
    import redis

    url = os.environ.get("STREAMER_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except Exception:
        return None
    return url


def faust_available() -> bool:
    try:
        import faust  # noqa: F401
    except Exception:
        return False
    return True


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker

    sizes = plan(args.quick)
    if args.features:
        sizes = {d: sizes.get(d, args.items or 100_000) for d in args.features}
    if args.items:
        sizes = {d: args.items for d in sizes}
    loads = [] if args.quick else args.loads
    pipelines = [p for p in args.pipelines if not p.startswith("faust") or faust_available()]
    url = redis_url()
    runs: list[Run] = []
    for d, n in sizes.items():
        with EmbeddedBroker() as broker:  # a fresh memory-only broker per width
            bootstrap = broker.bootstrap_servers
            topic = f"items-{d}"
            await create_topics(bootstrap, [topic])
            keys, values = item_values(d, n, seed=d, raw=False)
            rate = await produce_all(bootstrap, topic, keys, values, raw=False)
            print(f"[{d} features] {n:,} JSON items produced at {rate:,.0f}/s", flush=True)
            kinds = list(pipelines)
            if "streamer" in pipelines:
                kinds.insert(2, "streamer-requests")
                for auto in reversed(AUTO_PIPELINES):
                    kinds.insert(2, auto)
            if d == 16 and "streamer" in pipelines:
                kinds.insert(2, "streamer-f32")
                f32_topic = f"items-{d}-f32"
                await create_topics(bootstrap, [f32_topic])
                fkeys, fvalues = item_values(d, n, seed=d, raw=True)
                await produce_all(bootstrap, f32_topic, fkeys, fvalues, raw=True)
            # rounds alternate the pipelines (A B A B): the machine's drift hits every one alike;
            # the best round of each is the figure
            for round_, kind in [(r, k) for r in range(args.rounds) for k in kinds]:
                count = slow_items(kind, d, n) if kind in SLOW else n
                source = f"items-{d}-f32" if kind.endswith("-f32") else topic
                print(f"[{d} features] {kind}: {count:,} items at full speed ...", flush=True)
                run = await run_pipeline(kind, bootstrap, d, source, count, f"{kind}-{d}-full-{round_}", None,
                                         raw=kind.endswith("-f32"), redis_url=url)
                run.extra["round"] = round_
                runs.append(run)
                print(f"    {run.items_per_s or 0:,.0f} items/s ({run.outputs:,} outputs) {run.note}", flush=True)
            if d > 64:
                continue
            full: dict[str, float] = {}
            for r in runs:
                if r.features == d and r.load is None:
                    full[r.pipeline] = max(full.get(r.pipeline, 0.0), r.items_per_s or 0.0)
            for load in loads:
                count = int(load * args.load_seconds)
                lkeys, lvalues = item_values(d, count, seed=int(load) + d, raw=False)
                for kind in [k for k in kinds if not k.endswith("-f32")]:
                    if full.get(kind, 0) < 1.2 * load:
                        runs.append(Run(kind, d, load, count, note=f"not run: full speed {full.get(kind, 0):,.0f}/s"))
                        continue
                    live = f"live-{kind}-{d}-{int(load)}"
                    await create_topics(bootstrap, [live])
                    print(f"[{d} features] {kind}: {count:,} items offered at {load:,.0f}/s ...", flush=True)
                    run = await run_pipeline(kind, bootstrap, d, live, count, f"{kind}-{d}-{int(load)}", load,
                                             keys=lkeys, values=lvalues, redis_url=url)
                    runs.append(run)
                    print(f"    p50 {run.p50_ms} ms, p99 {run.p99_ms} ms", flush=True)
    return {
        "benchmark": "throughput",
        "machine": machine(**_versions()),
        "setup": {"partitions": PARTITIONS, "budget": BUDGET, "broker": "Tansu (embedded, loopback)",
                  "redis": url is not None, "quick": args.quick, "load_seconds": args.load_seconds,
                  "rounds": args.rounds,
                  # settings the streamer pipelines ran with beyond the defaults (e.g. the model)
                  "streamer_settings": json.loads(os.environ.get("STREAMER_BENCH_SETTINGS", "{}"))},
        "runs": [r.__dict__ for r in runs],
        "ratios": ratios(runs),
    }


def _versions() -> dict[str, str]:
    import aiokafka
    import river

    versions = {"aiokafka": aiokafka.__version__, "river": river.__version__, "numpy": np.__version__}
    with contextlib.suppress(Exception):
        import faust

        versions["faust"] = faust.__version__
    return versions


def ratios(runs: list[Run]) -> dict[str, Any]:
    """The goals' ratios, from runs of the same width in the same broker."""
    out: dict[str, Any] = {}
    full: dict[tuple[str, int], float] = {}
    for r in runs:  # the best round of each pipeline
        if r.load is None and r.items_per_s:
            full[(r.pipeline, r.features)] = max(full.get((r.pipeline, r.features), 0.0), r.items_per_s)
    for d in sorted({r.features for r in runs}):
        s = full.get(("streamer", d))
        if s and full.get(("ceiling", d)):
            out[f"streamer/ceiling@{d}"] = round(s / full[("ceiling", d)], 3)
        if s and full.get(("naive", d)):
            out[f"streamer/naive@{d}"] = round(s / full[("naive", d)], 2)
        for f in ("faust-event", "faust-take"):
            if s and full.get((f, d)):
                out[f"streamer/{f}@{d}"] = round(s / full[(f, d)], 2)
        for auto in AUTO_PIPELINES:
            if s and full.get((auto, d)):
                out[f"{auto}/streamer@{d}"] = round(full[(auto, d)] / s, 3)
        sampling = full.get(("faust-sampling", d))
        if sampling and full.get(("faust-take", d)):
            out[f"faust-sampling/faust-take@{d}"] = round(sampling / full[("faust-take", d)], 2)
        if sampling and s:
            out[f"faust-sampling/streamer@{d}"] = round(sampling / s, 3)
    if full.get(("streamer-f32", 16)):
        out["streamer-f32@16 items/s"] = full[("streamer-f32", 16)]
    return out


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nthroughput through Tansu on {m['cpu']} ({m['cpu_count']} cores), commit {m.get('git_commit')}")
    print(f"{'pipeline':<14}{'features':>9}{'offered/s':>11}{'items':>10}{'items/s':>11}{'p50 ms':>9}{'p99 ms':>9}  note")
    for r in report["runs"]:
        offered = f"{r['load']:,.0f}" if r["load"] else "full"
        rate = f"{r['items_per_s']:,.0f}" if r["items_per_s"] else "-"
        p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-"
        p99 = f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-"
        print(f"{r['pipeline']:<14}{r['features']:>9}{offered:>11}{r['items']:>10,}{rate:>11}{p50:>9}{p99:>9}  {r['note']}")
    for name, value in report["ratios"].items():
        print(f"  {name}: {value}")


def _run_worker(kind: str, cfg: dict[str, Any]) -> None:
    work = WORKERS[kind]
    if asyncio.iscoroutinefunction(work):
        asyncio.run(work(cfg))
    else:  # faust-sampling: faust's worker runs the loop
        work(cfg)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        kind, cfg = argv[1], json.loads(argv[2])
        import logging

        logging.basicConfig(level=logging.WARNING)
        profile = os.environ.get("STREAMER_BENCH_PROFILE")  # a path: pyinstrument's text report
        if profile:
            from pyinstrument import Profiler

            with Profiler(async_mode="disabled", interval=0.0005) as profiler:
                _run_worker(kind, cfg)
            Path(profile).write_text(profiler.output_text(unicode=False, show_all=False))
        else:
            _run_worker(kind, cfg)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 features, 20k items")
    parser.add_argument("--features", type=int, nargs="*", help="widths to run (default 16 64 512)")
    parser.add_argument("--items", type=int, help="items per width (overrides the plan)")
    parser.add_argument("--loads", type=float, nargs="*", default=[20_000, 50_000])
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="full-speed rounds per pipeline, alternating; the best is reported")
    parser.add_argument("--pipelines", nargs="*", default=PIPELINES)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
