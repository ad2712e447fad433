"""Scale-out: throughput of 1 vs 2 replicas, and how fast a new model version reaches a scorer.

Every replica is a real ``streamer run`` process (role ``all``, Redis store, one consumer group
over a 4-partition items topic on the embedded Tansu broker); all of them start from the same
warmed model (a checkpoint written to Redis first), so none decides cold.

- **Throughput**: the replicas join and are frozen (SIGSTOP) while the items are produced,
  then thawed together and drain the backlog; the rate comes from the prediction records'
  timestamps (``outputs / (last - first)``), as in ``benchmarks/throughput.py``. The
  baseline is one replica measured the same way in the same run. On this 2-core machine the
  broker, Redis and the replicas share the cores, so a second replica can add only what the
  first left idle.
- **Version propagation**: two replicas decide items offered at a steady rate while an
  annotator answers every label request; the learner publishes new versions, the other
  replica records how old each version was when it started using it
  (``streamer_model_staleness_seconds``, read from its ``/metrics``). The label share the
  two asked together is compared with the budget.

Writes ``benchmarks/results/scale_out.json`` and prints a table. ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import machine  # noqa: E402
from throughput import (  # noqa: E402
    PARTITIONS,
    create_topics,
    item_values,
    produce_all,
    read_stamps,
    redis_url,
    warm_data,
)

BUDGET = 0.05
KEY = "scale-out-benchmark-key-0123456789"
RESULTS = ROOT / "benchmarks" / "results" / "scale_out.json"
LOGS = Path(tempfile.mkdtemp(prefix="streamer-scale-out-"))


class Replica:
    """One ``streamer run`` process."""

    def __init__(self, name: str, bootstrap: str, flags: dict[str, Any]) -> None:
        from streamer.broker import free_port

        self.name = name
        self.port = free_port()
        argv = [sys.executable, "-m", "streamer.cli", "run", "--bootstrap-servers", bootstrap,
                "--metrics-port", str(self.port), "--log-level", "WARNING"]
        for flag, value in flags.items():
            argv += [f"--{flag}"] if value is None else [f"--{flag}", str(value)]
        env = {**os.environ, "STREAMER_CHECKPOINT_KEY": KEY, "OMP_NUM_THREADS": "1"}
        self.log = open(LOGS / f"{name}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def status(self) -> dict[str, Any]:
        return json.loads(self.get("/status")[1] or b"{}")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited; see {self.log.name}")
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(f"replica {self.name} not ready in {timeout} s; see {self.log.name}")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


async def seed_model(url: str, prefix: str, d: int) -> None:
    """Write a checkpoint of the default model warmed on 200 labelled rows under ``prefix``."""
    import redis.asyncio as aioredis

    from streamer.app import sampler_config
    from streamer.config import Settings
    from streamer.core.sampler import Sampler
    from streamer.models import LOGISTIC_MODEL, build_model
    from streamer.store.checkpoint import Checkpoint, dumps

    settings = Settings(redis_url=url, redis_prefix=prefix, checkpoint_key=KEY, budget=BUDGET,
                        n_features=d)
    config = sampler_config(settings)
    sampler = Sampler(build_model(LOGISTIC_MODEL, seed=0), **config)
    X, y = warm_data(d)
    sampler.model.observe(X)
    sampler.learn(X, y)
    blob = dumps(Checkpoint(sampler, model_spec=LOGISTIC_MODEL, sampler_config=config, sequence=1),
                 KEY.encode())
    client = aioredis.Redis.from_url(url)
    try:
        await client.set(f"{{{prefix}}}:checkpoint", blob)
    finally:
        await client.aclose()


def _flags(tag: str, d: int, url: str, prefix: str, **more: Any) -> dict[str, Any]:
    return {"items-topic": f"items-{tag}", "predictions-topic": f"out-{tag}",
            "label-requests-topic": f"requests-{tag}", "labels-topic": f"labels-{tag}",
            "dead-letters-topic": f"dead-{tag}", "group-id": f"g-{tag}", "redis-url": url,
            "redis-prefix": prefix, "budget": BUDGET, "n-features": d,
            "topic-partitions": PARTITIONS, **more}


async def throughput(bootstrap: str, url: str, d: int, n: int, replicas: int) -> dict[str, Any]:
    tag = f"tp{replicas}-{d}-{uuid.uuid4().hex[:6]}"
    prefix = f"bench-scale:{tag}"
    await create_topics(bootstrap, [f"{name}-{tag}" for name in ("items", "out", "requests", "labels", "dead")])
    await seed_model(url, prefix, d)
    # frozen while the items are produced: a long session keeps them in the group
    flags = _flags(tag, d, url, prefix, **{"session-timeout-ms": 60_000})
    procs = [Replica(f"{tag}-{i}", bootstrap, flags) for i in range(replicas)]
    try:
        for proc in procs:
            await asyncio.to_thread(proc.wait_ready)
        await asyncio.sleep(3.0)  # the last join's rebalance settles
        for proc in procs:
            proc.signal(signal.SIGSTOP)
        keys, values = item_values(d, n, seed=d, raw=False)
        await produce_all(bootstrap, f"items-{tag}", keys, values, raw=False)
        for proc in procs:
            proc.signal(signal.SIGCONT)
        stamps = await read_stamps(bootstrap, f"out-{tag}", n)
        per_replica = [proc.status().get("items_seen") for proc in procs]
    finally:
        codes = [proc.stop() for proc in procs]
    ts = np.array(sorted(stamps.values()), dtype=np.float64)
    rate = n * (len(ts) - 1) / len(ts) / ((ts[-1] - ts[0]) / 1000.0) if len(ts) > 1 else None
    return {"replicas": replicas, "features": d, "items": n, "outputs": len(stamps),
            "items_per_s": None if rate is None else round(rate), "items_per_replica": per_replica,
            "exit_codes": codes}


async def propagation(bootstrap: str, url: str, d: int, seconds: float, rate: float,
                      global_budget: bool = True) -> dict[str, Any]:
    tag = f"pv-{d}-{uuid.uuid4().hex[:6]}"
    prefix = f"bench-scale:{tag}"
    await create_topics(bootstrap, [f"{name}-{tag}" for name in ("items", "out", "requests", "labels", "dead")])
    await seed_model(url, prefix, d)
    flags = _flags(tag, d, url, prefix, **{"session-timeout-ms": 6000, "max-batch": 256,
                                           "model-staleness-seconds": 1.0})
    if not global_budget:
        flags["no-global-budget"] = None
    procs = [Replica(f"{tag}-{i}", bootstrap, flags) for i in range(2)]
    n = int(seconds * rate)
    stop = asyncio.Event()
    try:
        for proc in procs:
            await asyncio.to_thread(proc.wait_ready)
        await asyncio.sleep(3.0)
        answering = asyncio.create_task(_annotate(bootstrap, tag, stop))
        keys, values = item_values(d, n, seed=7, raw=False)
        await _produce_at(bootstrap, f"items-{tag}", keys, values, rate)
        await read_stamps(bootstrap, f"out-{tag}", n, idle_s=3.0)
        await asyncio.sleep(2.0)  # the last labels are learned and published
        stop.set()
        answered = await answering
        statuses = [proc.status() for proc in procs]
        scorer = next((p for p, s in zip(procs, statuses, strict=True) if not s.get("learner")), None)
        metrics = scorer.get("/metrics")[1].decode() if scorer is not None else ""
        asked = await read_stamps(bootstrap, f"requests-{tag}", int(n * BUDGET * 0.8), idle_s=2.0)
    finally:
        stop.set()
        codes = [proc.stop() for proc in procs]
    staleness = _histogram(metrics, "streamer_model_staleness_seconds")
    return {"replicas": 2, "features": d, "items": n, "offered_per_s": rate,
            "global_budget": global_budget, "labels_answered": answered,
            "asked": len(asked), "share": round(len(asked) / n, 5), "budget": BUDGET,
            "share_error_relative": round(len(asked) / n / BUDGET - 1.0, 4),
            "learner_versions": [s.get("model_version") for s in statuses],
            "staleness": staleness, "exit_codes": codes}


async def _produce_at(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes],
                      rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        began = time.perf_counter()
        sent = 0
        while sent < len(keys):
            due = min(len(keys), int((time.perf_counter() - began) * rate) + 1)
            for i in range(sent, due):
                await producer.send(topic, values[i], key=keys[i])
            sent = due
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()


async def _annotate(bootstrap: str, tag: str, stop: asyncio.Event) -> int:
    """Answer every label request with the rule the items follow (label = x0 > 0)."""
    consumer = AIOKafkaConsumer(f"requests-{tag}", bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await consumer.start()
    await producer.start()
    answered: set[str] = set()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    request = orjson.loads(record.value)
                    if request["id"] in answered:
                        continue
                    answered.add(request["id"])
                    label = int(request["features"][0] > 0)
                    await producer.send(f"labels-{tag}", orjson.dumps({"id": request["id"], "label": label}),
                                        key=record.key)
    finally:
        await producer.flush()
        await consumer.stop()
        await producer.stop()
    return len(answered)


def _histogram(text: str, name: str) -> dict[str, Any]:
    """count, mean and bucket-bound p50/p99 of a Prometheus histogram in exposition text."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(f"{name}_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count = float(line.rsplit(" ", 1)[1])

    def quantile(q: float) -> float | None:
        for bound, cumulative in buckets:
            if count and cumulative >= q * count:
                return bound
        return None

    return {"versions_picked_up": int(count), "mean_s": round(total / count, 4) if count else None,
            "p50_le_s": quantile(0.5), "p99_le_s": quantile(0.99)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker

    url = redis_url()
    if url is None:
        raise SystemExit("the scale-out benchmark needs Redis (the replicas share it)")
    d, n = (16, 20_000) if args.quick else (args.features, args.items)
    runs: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        for replicas in (1, 2):
            print(f"[throughput] {replicas} replica(s), {n:,} items of {d} features ...", flush=True)
            run = await throughput(bootstrap, url, d, n, replicas)
            runs.append({"kind": "throughput", **run})
            print(f"    {run['items_per_s'] or 0:,} items/s, per replica {run['items_per_replica']}", flush=True)
        seconds = 6.0 if args.quick else args.seconds
        for shared in (True, False):
            print(f"[propagation] 2 replicas, {args.rate:,.0f} items/s for {seconds:.0f} s, "
                  f"global budget {'on' if shared else 'off'} ...", flush=True)
            prop = await propagation(bootstrap, url, d, seconds, args.rate, global_budget=shared)
            runs.append({"kind": "propagation", **prop})
            print(f"    staleness {prop['staleness']}, asked {prop['share']:.4f} of items "
                  f"(budget {BUDGET})", flush=True)
    one = next(r for r in runs if r["kind"] == "throughput" and r["replicas"] == 1)
    two = next(r for r in runs if r["kind"] == "throughput" and r["replicas"] == 2)
    import aiokafka
    import river

    return {
        "benchmark": "scale_out",
        "machine": machine(aiokafka=aiokafka.__version__, river=river.__version__, numpy=np.__version__),
        "setup": {"partitions": PARTITIONS, "budget": BUDGET, "broker": "Tansu (embedded, loopback)",
                  "quick": args.quick},
        "runs": runs,
        "two_over_one": round(two["items_per_s"] / one["items_per_s"], 3)
        if one["items_per_s"] and two["items_per_s"] else None,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"\nscale-out on {report['machine']['cpu']} ({report['machine']['cpu_count']} cores)")
    print(f"{'run':<34} {'items/s':>10} {'staleness mean/p99<=':>22} {'asked/budget':>13}")
    for run in report["runs"]:
        if run["kind"] == "throughput":
            print(f"{'throughput, ' + str(run['replicas']) + ' replica(s)':<34} {run['items_per_s'] or 0:>10,}")
        else:
            s = run["staleness"]
            label = f"propagation, global budget {'on' if run['global_budget'] else 'off'}"
            print(f"{label:<34} {'':>10} {str(s['mean_s']) + ' s / ' + str(s['p99_le_s']) + ' s':>22} "
                  f"{run['share'] / run['budget']:>13.4f}")
    print(f"2 replicas / 1 replica: {report['two_over_one']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (small counts)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered items/s (propagation)")
    parser.add_argument("--seconds", type=float, default=30.0, help="propagation run length")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}; replica logs in {LOGS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
