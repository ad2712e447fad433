"""Consumer-group joins on the embedded broker: a new group, and a restart after kill -9.

Each consumer is its own process (aiokafka, subscribed to a 3-partition topic). Measured from
the consumer's ``start()`` to its first assignment:

- **new group**: a consumer alone in a group nobody used before;
- **restart**: a consumer joined, is killed with SIGKILL, and a new one starts at once in the
  same group (it waits for the dead member to be evicted).

For aiokafka's default session (10 s, the baseline) and for the 2 s session that
``streamer.kafka.groups`` uses on the embedded broker, in the same run.

Writes ``benchmarks/results/group_join.json`` and prints a table. ``--trials`` per case (3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "group_join.json"
SESSIONS = {"aiokafka default (10 s)": 10_000, "embedded (2 s)": 2_000}

# The consumer process: prints the seconds from start() to its first assignment, then waits.
_CONSUMER = """
import asyncio, json, sys, time
from aiokafka import AIOKafkaConsumer
from streamer.kafka.groups import group_timeouts
cfg = json.loads(sys.argv[1])
async def main():
    consumer = AIOKafkaConsumer(bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
                                **group_timeouts(cfg["session_ms"], embedded=True))
    consumer.subscribe([cfg["topic"]])
    began = time.monotonic()
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=20)
    print(json.dumps({"joined_s": time.monotonic() - began}), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def _consumer(bootstrap: str, topic: str, group: str, session_ms: int) -> subprocess.Popen[str]:
    cfg = json.dumps({"bootstrap": bootstrap, "topic": topic, "group": group, "session_ms": session_ms})
    return subprocess.Popen([sys.executable, "-c", _CONSUMER, cfg], stdout=subprocess.PIPE, text=True)


def _joined(process: subprocess.Popen[str]) -> float:
    """The consumer's seconds to its first assignment (its first line of output)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("a consumer exited without joining its group")
    return float(json.loads(line)["joined_s"])


def new_group(bootstrap: str, topic: str, session_ms: int) -> float:
    process = _consumer(bootstrap, topic, f"new-{uuid.uuid4().hex[:8]}", session_ms)
    try:
        return _joined(process)
    finally:
        process.kill()
        process.wait()


def restart(bootstrap: str, topic: str, session_ms: int) -> float:
    group = f"restart-{uuid.uuid4().hex[:8]}"
    first = _consumer(bootstrap, topic, group, session_ms)
    _joined(first)
    first.kill()
    first.wait()
    second = _consumer(bootstrap, topic, group, session_ms)
    try:
        return _joined(second)
    finally:
        second.kill()
        second.wait()


async def _create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()


def run(trials: int) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker

    rows: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        topic = "joins"
        asyncio.run(_create_topic(broker.bootstrap_servers, topic))
        for case, measure in (("new group", new_group), ("restart after kill -9", restart)):
            for name, session_ms in SESSIONS.items():
                times = [round(measure(broker.bootstrap_servers, topic, session_ms), 3) for _ in range(trials)]
                rows.append({"case": case, "session": name, "session_ms": session_ms, "seconds": times,
                             "median_s": round(float(np.median(times)), 3), "max_s": max(times)})
                print(f"  {case:<22} {name:<24} median {rows[-1]['median_s']} s, max {rows[-1]['max_s']} s",
                      flush=True)
    ratios = {}
    for case in ("new group", "restart after kill -9"):
        base, ours = (next(r for r in rows if r["case"] == case and r["session_ms"] == ms)
                      for ms in (10_000, 2_000))
        ratios[f"{case}: default / embedded"] = round(base["median_s"] / ours["median_s"], 2)
    return {"benchmark": "group_join",
            "setup": {"broker": "Tansu (embedded, loopback)", "partitions": 3, "trials": trials},
            "rows": rows, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = Start.now()
    report = run(args.trials)
    for name, value in report["ratios"].items():
        print(f"{name}: {value}x")
    write_result(args.out, report, started)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
