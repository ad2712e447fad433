"""Scale-out: throughput of 1 vs 2 replicas, how fast a model version reaches a scorer, accuracy.

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
- **Accuracy** (issue 18, defect 11): a real two-class stream (the first 10,000 rows of the
  data dir's ``weather.csv.gz``, NOAA daily weather, rain or not) is offered at 1,000 items/s
  to one replica and to two (cold, the default model, budget 5%), alternating, ``--repeats``
  times each; an annotator answers every label request with the item's true label 0.3 s
  later. Prequential accuracy is each item's first prediction (predictions topic) against its
  true label, over every item. With ``--before COMMIT`` the two-replica case also runs on the
  code of that commit (``git archive``, e.g. ``29e623f``, before models were published per
  label batch and announced): the behaviour the defect describes cannot be set by flags any
  more. Weather rather than the bundled phishing stream: phishing has 1,250 rows, so 10,000
  items would replay it eight times over. Each run also records who decided what (an item's
  partition, the partitions each replica held), the accuracy on the learner's and on the
  scorer's partitions, how many labels behind the learner the scorer's model was for each
  item it decided (the learner's newest version stamped on its own predictions by then,
  minus the scorer's), the scorer's ``streamer_model_staleness_seconds``, the accuracy, the
  mean model version and the label requests per 1,000 items, and the portfolio's race.

Writes ``benchmarks/results/scale_out.json`` (throughput, propagation) and
``benchmarks/results/scale_out_accuracy.json`` (accuracy) and prints a table. ``--only
accuracy`` runs one scenario; ``--quick`` is a smoke run.
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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, redis_server_version, write_result  # noqa: E402
from throughput import redis_url  # noqa: E402
from throughput_io import (  # noqa: E402
    PARTITIONS,
    create_topics,
    item_values,
    produce_all,
    read_stamps,
    warm_data,
)

BUDGET = 0.05
KEY = "scale-out-benchmark-key-0123456789"
RESULTS = ROOT / "benchmarks" / "results" / "scale_out.json"
ACCURACY_RESULTS = ROOT / "benchmarks" / "results" / "scale_out_accuracy.json"
SCENARIOS = ("throughput", "propagation", "accuracy")
LOGS = Path(tempfile.mkdtemp(prefix="streamer-scale-out-"))


class Replica:
    """One ``streamer run`` process."""

    def __init__(self, name: str, bootstrap: str, flags: dict[str, Any], tree: Path | None = None) -> None:
        """``tree``: run the ``streamer`` package of that source tree (another commit's code)."""
        from streamer.broker import free_port

        self.name = name
        self.port = free_port()
        argv = [sys.executable, "-m", "streamer.cli", "run", "--bootstrap-servers", bootstrap,
                "--metrics-port", str(self.port), "--log-level", "WARNING"]
        for flag, value in flags.items():
            argv += [f"--{flag}"] if value is None else [f"--{flag}", str(value)]
        env = {**os.environ, "STREAMER_CHECKPOINT_KEY": KEY, "OMP_NUM_THREADS": "1"}
        if tree is not None:  # found before the editable install's finder
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
        self.log = open(LOGS / f"{name}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=tree)

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


def accuracy_stream(n: int, path: Path | None = None) -> Any:
    """The first ``n`` rows of the accuracy stream (a LabelledStream): ``path``, else the data
    dir's ``weather.csv.gz``."""
    from streamer.data import find_stream
    from streamer.replay import load_stream

    path = path or find_stream("weather.csv.gz")
    if path is None:
        raise SystemExit("the accuracy scenario reads weather.csv.gz from the data dir "
                         "($STREAMER_DATA_DIR or ../shared/data); pass --data FILE otherwise")
    stream = load_stream(path, max_items=n)
    if len(stream) < n:
        raise SystemExit(f"{path} has {len(stream)} rows, fewer than the {n} asked for")
    return stream


async def accuracy(bootstrap: str, url: str, stream: Any, rate: float, delay: float, replicas: int,
                   tree: Path | None = None, model: str | None = None) -> dict[str, Any]:
    """Offer ``stream`` at ``rate`` items/s to cold ``replicas`` (role all, one group, Redis) while
    an annotator answers every label request ``delay`` s later; score each item's first prediction."""
    from aiokafka.partitioner import DefaultPartitioner

    from streamer.replay import Annotator, produce_items

    tag = f"acc{replicas}{'b' if tree else ''}-{uuid.uuid4().hex[:6]}"
    prefix = f"bench-scale:{tag}"
    names = {kind: f"{kind}-{tag}" for kind in ("items", "out", "requests", "labels", "dead")}
    await create_topics(bootstrap, list(names.values()))
    flags = _flags(tag, stream.X.shape[1], url, prefix, seed=0)
    if model is not None:
        flags["model"] = model
    procs = [Replica(f"{tag}-{i}", bootstrap, flags, tree) for i in range(replicas)]
    n = len(stream)
    annotator = Annotator(stream.truth, delay=delay)
    stop = asyncio.Event()
    requests = AIOKafkaConsumer(names["requests"], bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                metadata_max_age_ms=1000)
    labels = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    clients: list[Any] = []
    try:
        for proc in procs:
            await asyncio.to_thread(proc.wait_ready)
        await asyncio.sleep(3.0)  # the last join's rebalance settles
        for client in (requests, labels):
            await client.start()
            clients.append(client)
        answering = asyncio.create_task(annotator.run(requests, labels, names["labels"], stop))
        items = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await items.start()
        began = time.perf_counter()
        try:
            await produce_items(items, names["items"], stream, rate=rate)
        finally:
            await items.stop()
        offered = n / (time.perf_counter() - began)
        first, duplicates = await _read_predictions(bootstrap, names["out"], set(stream.ids))
        asks, _ = await _read_predictions(bootstrap, names["requests"], set(), idle_s=1.0)
        decided_s = time.perf_counter() - began
        await asyncio.sleep(delay + 1.0)  # the last answers reach the learner (for its status)
        stop.set()
        await answering
        statuses = [proc.status() for proc in procs]
        metrics = [proc.get("/metrics")[1].decode() for proc in procs]
    finally:
        stop.set()
        for client in clients:
            await client.stop()
        codes = [proc.stop() for proc in procs]

    truth = stream.truth
    correct = {i: p["prediction"] is not None and str(p["prediction"]) == str(truth[i])
               for i, p in first.items()}
    # who decided what: an item's partition (the producer's default partitioner on its key)
    # and the partitions each replica held at the end (no rebalance after the start)
    partitioner = DefaultPartitioner()
    everything = list(range(PARTITIONS))
    part = {i: partitioner(i.encode(), everything, everything) for i in stream.ids}
    per_replica = []
    for status, text in zip(statuses, metrics, strict=True):
        held = {int(name.rsplit("[", 1)[1].rstrip("]"))
                for name in ((status.get("consumers") or {}).get("items") or {}).get("partitions", [])}
        mine = [i for i in stream.ids if part[i] in held]
        per_replica.append({
            "learner": status.get("learner"), "partitions": sorted(held),
            "items_seen": status.get("items_seen"), "labels_applied": status.get("labels_applied"),
            "model_version": status.get("model_version"),
            "model_publication": status.get("model_publication"),
            "model_race": status.get("model_race"),
            "accuracy": round(sum(correct.get(i, False) for i in mine) / len(mine), 4) if mine else None,
            "staleness": _histogram(text, "streamer_model_staleness_seconds"),
        })
    asked = sum(s.get("label_requests") or 0 for s in statuses)
    learner_parts = set().union(*(set(r["partitions"]) for r in per_replica if r["learner"]))
    return {"replicas": replicas, "code": "pre-fix" if tree else "HEAD", "items": n,
            "offered_per_s": round(offered), "decided_in_s": round(decided_s, 2),
            "predicted": len(first), "duplicate_predictions": duplicates,
            "accuracy": round(sum(correct.values()) / n, 4),
            "asked": asked, "share": round(asked / n, 5), "labels_answered": annotator.sent,
            "curve": _curve(stream.ids, correct),
            "version_curve": _version_curve(stream.ids, first),
            "asks_curve": [sum(i in asks for i in stream.ids[k:k + 1000]) for k in range(0, n, 1000)],
            "asks_by_reason": dict(Counter(a.get("reason") for a in asks.values())),
            "scorer_lag": _lag(first, correct, part, learner_parts) if replicas > 1 else None,
            "replicas_detail": per_replica, "exit_codes": codes}


def _curve(ids: list[str], correct: dict[str, bool], window: int = 1000) -> list[float]:
    """Accuracy over each ``window`` items in stream order."""
    return [round(sum(correct.get(i, False) for i in ids[k:k + window]) / len(ids[k:k + window]), 4)
            for k in range(0, len(ids), window)]


def _version_curve(ids: list[str], first: dict[str, dict[str, Any]], window: int = 1000) -> list[float]:
    """The mean model version (labels learned) that decided each ``window`` items."""
    return [round(float(np.mean([first[i]["model_version"] for i in ids[k:k + window] if i in first])), 1)
            for k in range(0, len(ids), window)]


def _lag(first: dict[str, dict[str, Any]], correct: dict[str, bool], part: dict[str, int],
         learner_parts: set[int]) -> dict[str, Any]:
    """How far behind the learner the scorers decided: for each item a scorer decided, the
    learner's newest version stamped on its own predictions at or before then (producer
    timestamps, ms) minus the version that decided it -- the labels its model lacked. Items
    decided before the learner had learned anything are counted apart (``cold``)."""
    learned = sorted((p["_ms"], p["model_version"]) for i, p in first.items() if part[i] in learner_parts)
    stamps = np.array([t for t, _ in learned], dtype=np.int64)
    newest = np.maximum.accumulate(np.array([v for _, v in learned], dtype=np.int64))
    lags, right, cold = [], [], 0
    for i, p in first.items():
        if part[i] in learner_parts:
            continue
        k = int(np.searchsorted(stamps, p["_ms"], side="right")) - 1
        if k < 0 or newest[k] == 0:  # the learner had learned nothing yet either
            cold += 1
            continue
        lags.append(max(0, int(newest[k]) - p["model_version"]))
        right.append(correct[i])
    lag, ok = np.array(lags, dtype=np.int64), np.array(right, dtype=bool)
    behind = lag >= 1
    return {"items": int(lag.size) + cold, "cold": cold, "behind": int(behind.sum()),
            "mean_labels_behind": round(float(lag.mean()), 3) if lag.size else None,
            "max_labels_behind": int(lag.max()) if lag.size else None,
            "accuracy_behind": round(float(ok[behind].mean()), 4) if behind.any() else None,
            "accuracy_current": round(float(ok[~behind].mean()), 4) if (~behind).any() else None}


async def _read_predictions(bootstrap: str, topic: str, ids: set[str], idle_s: float = 5.0,
                            timeout_s: float = 300.0) -> tuple[dict[str, dict[str, Any]], int]:
    """Each id's first record of ``topic`` (predictions or label requests; in its partition's
    order) and the count of repeats: until every one of ``ids`` has one (all records when
    ``ids`` is empty), or nothing new came for ``idle_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50)
    await consumer.start()
    first: dict[str, dict[str, Any]] = {}
    duplicates = 0
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline and (not ids or len(first) < len(ids)):
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for record in records:
                    prediction = orjson.loads(record.value)
                    prediction["_ms"] = record.timestamp  # when the replica produced it
                    if prediction["id"] in first:
                        duplicates += 1
                    else:
                        first[prediction["id"]] = prediction
                    last_new = time.monotonic()
            if (first or ids) and time.monotonic() - last_new >= idle_s:
                break
    finally:
        await consumer.stop()
    return first, duplicates


def summarise_accuracy(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and each run per configuration, and the gaps (points) against one replica."""
    groups: dict[str, list[float]] = {}
    for run in runs:
        groups.setdefault(_config(run), []).append(run["accuracy"])
    summary = {name: {"mean": round(float(np.mean(values)), 4), "runs": values,
                      "spread": round(max(values) - min(values), 4)} for name, values in groups.items()}
    base = summary.get("1 replica")
    for name, entry in summary.items():
        if base is not None and name != "1 replica":
            entry["gap_points"] = round(100 * (entry["mean"] - base["mean"]), 2)
            entry["ratio"] = round(entry["mean"] / base["mean"], 4)
    return summary


def _config(run: dict[str, Any]) -> str:
    name = f"{run['replicas']} replica{'s' if run['replicas'] > 1 else ''}"
    return name + (", pre-fix code" if run["code"] != "HEAD" else "")


def export_tree(commit: str) -> Path:
    """The ``streamer`` package of ``commit`` in a temporary directory (``git archive``)."""
    tree = Path(tempfile.mkdtemp(prefix=f"streamer-{commit[:8]}-"))
    archive = subprocess.run(["git", "archive", commit, "streamer"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


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


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Run the scenarios asked for; one report per results file."""
    from streamer.broker import EmbeddedBroker

    url = redis_url()
    if url is None:
        raise SystemExit("the scale-out benchmark needs Redis (the replicas share it)")
    only = set(args.only or SCENARIOS)
    reports: dict[str, dict[str, Any]] = {}
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        if only & {"throughput", "propagation"}:
            reports["scale_out"] = await _throughput_and_propagation(bootstrap, url, args, only)
        if "accuracy" in only:
            reports["accuracy"] = await _accuracy_report(bootstrap, url, args)
    return reports


async def _throughput_and_propagation(bootstrap: str, url: str, args: argparse.Namespace,
                                      only: set[str]) -> dict[str, Any]:
    d, n = (16, 20_000) if args.quick else (args.features, args.items)
    runs: list[dict[str, Any]] = []
    if "throughput" in only:
        for replicas in (1, 2):
            print(f"[throughput] {replicas} replica(s), {n:,} items of {d} features ...", flush=True)
            run = await throughput(bootstrap, url, d, n, replicas)
            runs.append({"kind": "throughput", **run})
            print(f"    {run['items_per_s'] or 0:,} items/s, per replica {run['items_per_replica']}", flush=True)
    if "propagation" in only:
        seconds = 6.0 if args.quick else args.seconds
        for shared in (True, False):
            print(f"[propagation] 2 replicas, {args.rate:,.0f} items/s for {seconds:.0f} s, "
                  f"global budget {'on' if shared else 'off'} ...", flush=True)
            prop = await propagation(bootstrap, url, d, seconds, args.rate, global_budget=shared)
            runs.append({"kind": "propagation", **prop})
            print(f"    staleness {prop['staleness']}, asked {prop['share']:.4f} of items "
                  f"(budget {BUDGET})", flush=True)
    one = next((r for r in runs if r["kind"] == "throughput" and r["replicas"] == 1), None)
    two = next((r for r in runs if r["kind"] == "throughput" and r["replicas"] == 2), None)
    return {
        "benchmark": "scale_out",
        "setup": {"partitions": PARTITIONS, "budget": BUDGET, "broker": "Tansu (embedded, loopback)",
                  "quick": args.quick},
        "runs": runs,
        "two_over_one": round(two["items_per_s"] / one["items_per_s"], 3)
        if one and two and one["items_per_s"] and two["items_per_s"] else None,
    }


async def _accuracy_report(bootstrap: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    n = 2_000 if args.quick else args.accuracy_items
    stream = accuracy_stream(n, args.data)
    tree = export_tree(args.before) if args.before else None
    configs: list[tuple[int, Path | None]] = [(1, None), (2, None)] + ([(2, tree)] if tree else [])
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for round_ in range(1 if args.quick else args.repeats):  # alternating: the box's noise is shared
        for replicas, code in configs:
            print(f"[accuracy] round {round_ + 1}: {replicas} replica(s){' (pre-fix code)' if code else ''}, "
                  f"{n:,} items of {stream.name} at {args.accuracy_rate:,.0f}/s, label delay "
                  f"{args.label_delay} s ...", flush=True)
            run = await accuracy(bootstrap, url, stream, args.accuracy_rate, args.label_delay, replicas, code,
                                 args.model)
            run["round"] = round_ + 1
            runs.append(run)
            print(f"    accuracy {run['accuracy']:.4f} (per replica "
                  f"{[r['accuracy'] for r in run['replicas_detail']]}), asked {run['share']:.4f}, "
                  f"offered {run['offered_per_s']:,}/s, {run['duplicate_predictions']} repeats", flush=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    before = None
    if args.before:
        before = subprocess.run(["git", "rev-parse", args.before], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    return {
        "benchmark": "scale_out_accuracy",
        "commit": commit,
        "setup": {"stream": f"{stream.name} (first {n:,} rows of {stream.source.name if stream.source else '?'})",
                  "items": n, "offered_per_s": args.accuracy_rate, "budget": BUDGET,
                  "label_delay_s": args.label_delay, "partitions": PARTITIONS,
                  "replicas": "role all, Redis store, one consumer group, cold start",
                  "model": args.model or "the default (auto)",
                  "model_staleness_seconds": 1.0, "rounds": 1 if args.quick else args.repeats,
                  "pre_fix_commit": before, "broker": "Tansu (embedded, loopback)", "quick": args.quick},
        "runs": runs,
        "summary": summarise_accuracy(runs),
        "elapsed_s": round(time.perf_counter() - started, 1),
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


def print_accuracy(report: dict[str, Any]) -> None:
    setup = report["setup"]
    print(f"\nprequential accuracy, {setup['stream']}, {setup['offered_per_s']:,.0f} items/s, budget "
          f"{setup['budget']}, label delay {setup['label_delay_s']} s "
          f"({report['machine']['cpu_count']} cores, commit {report['commit'][:10]})")
    print(f"{'configuration':<30} {'mean':>7} {'gap (points)':>13}  runs")
    for name, entry in report["summary"].items():
        gap = entry.get("gap_points")
        print(f"{name:<30} {entry['mean']:>7.4f} {'' if gap is None else f'{gap:+.2f}':>13}  "
              f"{', '.join(f'{v:.4f}' for v in entry['runs'])}")
    for run in report["runs"]:
        if run["replicas"] > 1:
            parts = "; ".join(
                f"{'learner' if r['learner'] else 'scorer'} {r['accuracy']} on {r['partitions']}"
                + ("" if r["learner"] else f", {r['staleness']['versions_picked_up']} versions picked up, "
                   f"mean {r['staleness']['mean_s']} s old") for r in run["replicas_detail"])
            lag = run["scorer_lag"]
            print(f"  round {run['round']}, {_config(run)}: {parts}; scorer items behind the learner "
                  f"{lag['behind']}/{lag['items'] - lag['cold']} (mean {lag['mean_labels_behind']} labels, max "
                  f"{lag['max_labels_behind']}; accuracy behind {lag['accuracy_behind']}, current "
                  f"{lag['accuracy_current']})")
    print("accuracy per 1,000 items:")
    for run in report["runs"]:
        print(f"  round {run['round']}, {_config(run):<26} {' '.join(f'{a:.3f}' for a in run['curve'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (small counts)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered items/s (propagation)")
    parser.add_argument("--seconds", type=float, default=30.0, help="propagation run length")
    parser.add_argument("--accuracy-items", type=int, default=10_000)
    parser.add_argument("--accuracy-rate", type=float, default=1000.0, help="offered items/s (accuracy)")
    parser.add_argument("--label-delay", type=float, default=0.3, help="the annotator's delay (s)")
    parser.add_argument("--repeats", type=int, default=3, help="accuracy rounds (each configuration once)")
    parser.add_argument("--data", type=Path, help="the accuracy stream (default: weather.csv.gz)")
    parser.add_argument("--model", help="the replicas' --model in the accuracy scenario (default: theirs)")
    parser.add_argument("--before", metavar="COMMIT",
                        help="also run two replicas on this commit's code (e.g. 29e623f, before the fix)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--accuracy-out", type=Path, default=ACCURACY_RESULTS)
    args = parser.parse_args(argv)
    started = Start.now()
    reports = asyncio.run(main_async(args))
    redis_server = redis_server_version(redis_url())
    for name, out in (("scale_out", args.out), ("accuracy", args.accuracy_out)):
        if name not in reports:
            continue
        report = write_result(out, reports[name], started, redis_server=redis_server)
        (print_table if name == "scale_out" else print_accuracy)(report)
        print(f"wrote {out}")
    print(f"replica logs in {LOGS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
