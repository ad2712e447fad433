"""Where the service's time goes under load: a py-spy profile of ``streamer run``.

Runs the throughput benchmark's ``streamer`` pipeline (one logistic model, 16 features,
budget 5%, 4 partitions, the embedded Tansu broker) under ``py-spy record`` at an offered load
with the annotator answering every label request 0.2 s later -- the latency benchmark's
setting -- and at full speed over a preloaded topic. Each profile is summed into the functions
that hold the most samples, by themselves (self) and with what they call (incl), and grouped
by the stage of the hot path they belong to.

Writes ``benchmarks/results/throughput_profile.json`` and ``throughput_profile.txt``.

Usage::

    python benchmarks/profile_service.py                 # 40k items/s for 8 s, then full speed
    python benchmarks/profile_service.py --load 20000 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput  # noqa: E402
from machine import Start, redis_server_version, write_result  # noqa: E402
from throughput_io import create_topics, item_values, produce_all  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RATE_HZ = 1000  # py-spy's sampling rate (throughput.py asks for it)
# innermost frames of a thread that waits: the event loop in select, an idle pool thread
IDLE_FRAMES = ("EpollSelector.select", "select (selectors.py", "_worker (concurrent/futures/thread.py:81)",
               "wait (threading.py")

# a frame's file decides its stage of the hot path (the first match, innermost frame first)
STAGES = [
    ("aiokafka fetch + decode records", ("aiokafka/consumer/",)),
    ("aiokafka produce", ("aiokafka/producer/",)),
    ("aiokafka network + protocol", ("aiokafka/conn.py", "aiokafka/protocol/", "aiokafka/record/",
                                     "aiokafka/client.py", "asyncio/streams.py", "asyncio/selector_events.py")),
    ("item decode", ("streamer/wire/items.py", "streamer/wire/item_paths.py", "streamer/wire/formats.py")),
    ("model scoring", ("streamer/models/", "river/")),
    ("gates + budget", ("streamer/core/", "streamer/gates/", "streamer/budget/")),
    ("output encoding", ("streamer/wire/encode.py", "streamer/kafka/produce.py", "streamer/runtime/outputs.py")),
    ("labels: join + learn", ("streamer/runtime/labels.py", "streamer/runtime/learner.py")),
    ("pending store", ("streamer/store/",)),
    ("metrics", ("prometheus_client/", "streamer/metrics.py")),
    ("runtime bookkeeping", ("streamer/runtime/",)),
    ("numpy", ("numpy/",)),
    ("event loop", ("asyncio/",)),
]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def summarize(raw: Path, top: int = 30) -> dict[str, Any]:
    """Self/incl shares of the busy samples of every thread (the event loop waiting in
    ``select`` and an idle pool thread are idle), and shares by stage, from py-spy's raw output
    (recorded with ``--idle``)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    busy = idle = loop_busy = loop_idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1].startswith(IDLE_FRAMES):  # nothing to run: waiting for the network or work
            idle += count
            loop_idle += count if frames[-1].startswith(IDLE_FRAMES[:2]) else 0
            continue
        busy += count
        loop_busy += count if any("base_events.py" in f for f in frames) else 0
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        stages[stage_of(frames)] += count
    def share(n: int) -> float:
        return round(100.0 * n / busy, 1) if busy else 0.0

    return {
        "busy_samples": busy,
        "idle_samples": idle,
        # the event loop's thread: the share of its samples with work to do
        "busy_fraction": round(loop_busy / (loop_busy + loop_idle), 3) if loop_busy + loop_idle else None,
        "stages_percent": {k: share(v) for k, v in stages.most_common()},
        "self_percent": [[f, share(n)] for f, n in own.most_common(top)],
        "incl_percent": [[f, share(n)] for f, n in inclusive.most_common(top)
                         if "streamer/" in f or "aiokafka/" in f][:top],
    }


async def profile(load: float | None, seconds: float, items: int, folder: Path) -> dict[str, Any]:
    from streamer.broker import EmbeddedBroker

    os.environ["STREAMER_BENCH_PYSPY"] = str(folder)
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        if load is None:
            await create_topics(bootstrap, ["items"])
            keys, values = item_values(16, items, seed=16, raw=False)
            await produce_all(bootstrap, "items", keys, values, raw=False)
            run = await throughput.run_pipeline("streamer", bootstrap, 16, "items", items, "profile-full", None,
                                                redis=throughput.redis_url())
            tag = "profile-full"
        else:
            count = int(load * seconds)
            keys, values = item_values(16, count, seed=int(load), raw=False)
            await create_topics(bootstrap, ["live"])
            run = await throughput.run_pipeline("streamer", bootstrap, 16, "live", count, "profile-load", load,
                                                keys=keys, values=values, redis=throughput.redis_url())
            tag = "profile-load"
    raw = folder / f"{tag}.txt"
    if not raw.exists():
        raise SystemExit(f"py-spy wrote no profile to {raw}: is py-spy installed (pip install py-spy)?")
    return {"load": load, "items": run.items, "items_per_s": run.items_per_s, "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms, "p999_ms": run.p999_ms, "labels_given": run.extra.get("labels_given"),
            "profile": summarize(raw)}


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# py-spy profile of `streamer run` (streamer pipeline of benchmarks/throughput.py), "
             f"commit {m.get('git_commit')}, {m['cpu']} ({m['cpu_count']} cores)",
             "# shares are of the busy samples of all threads (idle: waiting in select or for work); self = in the "
             "function itself, incl = with what it calls"]
    for name, part in report["profiles"].items():
        p = part["profile"]
        lines += ["", f"## {name}: {part['items']:,} items, {part['items_per_s'] or 0:,.0f} items/s, "
                  f"p50/p99/p999 {part['p50_ms']}/{part['p99_ms']}/{part['p999_ms']} ms, "
                  f"event loop busy {p['busy_fraction']} of its samples (the rest: waiting in select)", "",
                  "by stage (shares of the busy samples):"]
        lines += [f"  {share:5.1f}%  {stage}" for stage, share in p["stages_percent"].items()]
        lines += ["", "self:"] + [f"  {share:5.1f}%  {frame}" for frame, share in p["self_percent"]]
        lines += ["", "incl (streamer and aiokafka frames):"]
        lines += [f"  {share:5.1f}%  {frame}" for frame, share in p["incl_percent"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", type=float, default=40_000, help="offered items/s of the loaded profile")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--items", type=int, default=300_000, help="items of the full-speed profile")
    parser.add_argument("--only", choices=["load", "full"], help="one of the two profiles")
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput_profile.json")
    args = parser.parse_args()
    started = Start.now()
    folder = Path(tempfile.mkdtemp(prefix="streamer-profile-"))
    profiles = {}
    for name, load in ((f"offered {args.load:,.0f} items/s, annotator answering", args.load),
                       ("full speed, preloaded topic", None)):
        if args.only and (load is None) != (args.only == "full"):
            continue
        print(f"profiling: {name} ...", flush=True)
        profiles[name] = asyncio.run(profile(load, args.seconds, args.items, folder))
    report = {"benchmark": "throughput_profile",
              "setup": {"features": 16, "budget": throughput.BUDGET, "partitions": throughput.PARTITIONS,
                        "model": "logistic", "rate_hz": RATE_HZ, "seconds": args.seconds},
              "profiles": profiles}
    report = write_result(args.out, report, started,
                          redis_server=redis_server_version(throughput.redis_url()))
    text = render(report)
    args.out.with_suffix(".txt").write_text(text)
    print(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
