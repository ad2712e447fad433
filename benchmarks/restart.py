"""Restart after kill -9: how long until the service decides items and applies labels again.

A real ``streamer run`` process (Redis store, checkpoints) decides items offered at a steady
rate on the embedded Tansu broker while an annotator answers every label request. It is killed
with SIGKILL at a random moment and started again at once, ``--kills`` times. For each restart
the benchmark records, from the kill:

- **ready**: ``/readyz`` answers 200 (the items consumer has its partitions again);
- **first item**: the new process has decided an item (``items_seen`` > 0);
- **first label**: the new process has applied a label beyond what its checkpoint held
  (``labels_applied`` grew).

The same is measured with ``--session-timeout-ms 10000`` (the consumer-group session the
service used on every broker before it learnt to use 2 s on the embedded one) as the baseline,
in the same run. Labels are read without a consumer group in both, so the first label waits
for the process to start and for the dead learner's Redis lease to expire
(``--learner-lease-seconds``, 5 s), not for the group.

Writes ``benchmarks/results/restart.json`` and prints a table. ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, redis_server_version, write_result  # noqa: E402
from scale_out import LOGS, Replica, _annotate, _flags, _produce_at  # noqa: E402
from throughput import redis_url  # noqa: E402
from throughput_io import create_topics, item_values  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "restart.json"
FEATURES = 8
RATE = 300.0  # items/s offered
CONFIGS = {"default": {}, "baseline (session 10 s)": {"session-timeout-ms": 10_000}}


def comeback(replica: Replica, killed: float, timeout: float = 90.0) -> dict[str, Any]:
    """Poll ``/status`` every 50 ms: seconds from ``killed`` to ready, the first item decided
    and the first label applied (beyond the count restored with the checkpoint, read at the
    first answer: labels are learned only once the dead learner's lease expired, seconds
    later). None where it did not happen within ``timeout``."""
    times: dict[str, Any] = {"ready_s": None, "first_item_s": None, "first_label_s": None}
    base: int | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and None in times.values():
        if replica.process.poll() is not None:
            raise RuntimeError(f"{replica.name} exited; see {replica.log.name}")
        status = replica.status()
        now = round(time.monotonic() - killed, 3)
        if status:
            if base is None:
                base = int(status.get("labels_applied", 0))
                times["restored_checkpoint"] = status.get("checkpoints", {}).get("restored")
            for name, happened in (("ready_s", status.get("ready")),
                                   ("first_item_s", status.get("items_seen", 0) > 0),
                                   ("first_label_s", status.get("labels_applied", 0) > base)):
                if happened and times[name] is None:
                    times[name] = now
        time.sleep(0.05)
    return times


async def restarts(bootstrap: str, url: str, config: str, kills: int, seed: int) -> list[dict[str, Any]]:
    tag = f"rs-{uuid.uuid4().hex[:6]}"
    prefix = f"bench-restart:{tag}"
    await create_topics(bootstrap, [f"{name}-{tag}" for name in ("items", "out", "requests", "labels", "dead")])
    flags = _flags(tag, FEATURES, url, prefix, **{"checkpoint-every-seconds": 1.0, **CONFIGS[config]})
    rng = random.Random(seed)
    n = int(RATE * (20 + 25 * kills))
    keys, values = item_values(FEATURES, n, seed=seed, raw=False)
    stop = asyncio.Event()
    replica = Replica(f"{tag}-0", bootstrap, flags)
    results: list[dict[str, Any]] = []
    answering = asyncio.create_task(_annotate(bootstrap, tag, stop))
    producing = asyncio.create_task(_produce_at(bootstrap, f"items-{tag}", keys, values, RATE))
    try:
        await asyncio.to_thread(replica.wait_ready)
        for k in range(kills):
            # let it decide and learn for a while, so the kill lands mid-stream
            await asyncio.sleep(8.0 + rng.uniform(0.0, 4.0))
            before = replica.status()
            replica.signal(signal.SIGKILL)
            killed = time.monotonic()
            replica.process.wait()
            replica.log.close()
            replica = Replica(f"{tag}-{k + 1}", bootstrap, flags)
            times = await asyncio.to_thread(comeback, replica, killed)
            results.append({"config": config, "kill": k + 1, **times,
                            "labels_applied_before_kill": before.get("labels_applied")})
            print(f"    kill {k + 1}: ready {times['ready_s']} s, first item {times['first_item_s']} s, "
                  f"first label {times['first_label_s']} s (checkpoint "
                  f"{times.get('restored_checkpoint')})", flush=True)
    finally:
        stop.set()
        producing.cancel()
        await asyncio.gather(answering, producing, return_exceptions=True)
        replica.stop()
    return results


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for config in CONFIGS:
        rows = [r for r in runs if r["config"] == config]
        table[config] = {
            metric: {"median": _median([r[metric] for r in rows]), "max": _max([r[metric] for r in rows])}
            for metric in ("ready_s", "first_item_s", "first_label_s")
        }
    return table


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.median(known)), 3) if known else None


def _max(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known and len(known) == len(values) else None  # None: a timeout


async def main_async(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker

    kills = 1 if args.quick else args.kills
    runs: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        for config in CONFIGS:
            print(f"[{config}] {kills} kill -9 restarts at {RATE:.0f} items/s ...", flush=True)
            runs += await restarts(broker.bootstrap_servers, url, config, kills, seed=args.seed)
    table = summarise(runs)
    default, baseline = table["default"], table["baseline (session 10 s)"]
    return {
        "benchmark": "restart",
        "setup": {"broker": "Tansu (embedded, loopback)", "store": "Redis", "rate": RATE,
                  "features": FEATURES, "kills": kills, "learner_lease_seconds": 5.0,
                  "quick": args.quick},
        "runs": runs,
        "summary": table,
        "ready_baseline_over_default": _ratio(baseline["ready_s"]["median"], default["ready_s"]["median"]),
        "first_label_baseline_over_default": _ratio(baseline["first_label_s"]["median"],
                                                    default["first_label_s"]["median"]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nkill -9 restarts on {m['cpu']} ({m['cpu_count']} cores), commit {m.get('git_commit')}")
    print(f"{'config':<26} {'ready (median/max)':>20} {'first item':>16} {'first label':>16}")
    for config, row in report["summary"].items():
        cells = [f"{row[k]['median']} / {row[k]['max']} s" for k in ("ready_s", "first_item_s", "first_label_s")]
        print(f"{config:<26} {cells[0]:>20} {cells[1]:>16} {cells[2]:>16}")
    print(f"baseline / default: ready {report['ready_baseline_over_default']}x, "
          f"first label {report['first_label_baseline_over_default']}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="one kill per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = Start.now()
    url = redis_url()
    if url is None:
        raise SystemExit("the restart benchmark needs Redis (checkpoints and the learner lease): "
                         "set STREAMER_BENCH_REDIS, run one on 127.0.0.1:6379, or run it through "
                         "benchmarks/with_redis.py")
    report = asyncio.run(main_async(args, url))
    report = write_result(args.out, report, started, redis_server=redis_server_version(url))
    print_table(report)
    print(f"wrote {args.out}; service logs in {LOGS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
