"""Throughput and decision latency through the real broker, against the baselines, in one run.

For items of 16, 64 and 512 features (budget 5%, 4 partitions, the embedded Tansu broker on
loopback), every pipeline below runs as its own process, one at a time
(benchmarks/throughput_workers.py):

- ``ceiling``: raw aiokafka ``getmany`` -> orjson decode -> threshold -> produce 5% with
  ``send_batch`` -> commit. No model: the most any Python consumer here can do with the output
  volume of ``streamer-requests``.
- ``ceiling-predictions``: the same, also producing a prediction record per item: the output
  work of ``streamer`` (a prediction per item plus 5% label requests, as record batches).
- ``streamer``: the service (``streamer.app.serve``: HTTP endpoints, metrics, Redis pending
  store and checkpoints when Redis answers) with one logistic model, warmed on 200 labelled
  rows, emitting a prediction for every item and label requests for 5%.
- ``streamer-inproc``: the same with the in-process pending store (no Redis).
- ``streamer-requests``: ``streamer`` emitting label requests only (measured on them).
- ``streamer-f32``: ``streamer`` with the opt-in raw float32 content type (16 features only).
- ``streamer-auto``: ``streamer`` with the default ``--model auto`` (the portfolio), warmed on
  the same rows in label batches of 8; the race picks the leader, which the results record.
- ``naive``: a per-item service on the same broker: consume one -> ``predict_proba_one`` ->
  produce the prediction (and a label request for the least certain 5%) -> next.
- ``faust-event`` / ``faust-take``: the same per-item logic as a faust-streaming agent,
  per event and with ``stream.take()`` (benchmarks/faust_agent.py).
- ``faust-sampling``: our Faust integration, ``streamer.faust_sampling.sampling_agent``, in the
  same faust app as the two above, warmed like ``streamer``, emitting predictions and requests.

Full speed: the items are produced first; each pipeline then drains them from the start and
its rate is ``outputs / (last output time - first output time)`` from the output records'
timestamps, so start-up (a consumer-group join takes ~5 s on Tansu) is not counted.
``--rounds N`` alternates the pipelines (A B C A B C) and reports the best round of each.

Offered load (16 features): a producer in this process sends items at a fixed rate (20k, 40k
and 50k items/s, what is due every 5 ms) to ``ceiling-predictions``, ``streamer-inproc`` and
``streamer``, while an annotator answers every label request 0.2 s after it was sent, so the
service learns while it decides. The ceiling's 5% are answered too, so the broker -- which
shares the 2 cores and whose in-memory log slows as it grows -- carries the same traffic for
every pipeline. Decision latency is the prediction record's timestamp minus the item record's
(both stamped on this machine's clock): p50, p99 and p999, every round reported.

Writes ``benchmarks/results/throughput.json`` and prints a table. ``--quick`` is a smoke run.

Usage::

    python benchmarks/throughput.py --rounds 2   # the full run (about 30 minutes on 2 cores)
    python benchmarks/throughput.py --quick      # 16 features, small counts
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, redis_server_version, write_result  # noqa: E402
from throughput_io import (  # noqa: E402
    BUDGET,
    PARTITIONS,
    annotate,
    create_topics,
    item_values,
    percentiles_ms,
    produce_all,
    produce_paced,
    read_stamps,
    truth,
)
from throughput_workers import WORKERS  # noqa: E402

from streamer.models import LOGISTIC_MODEL  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
LOGS = Path(tempfile.mkdtemp(prefix="streamer-throughput-"))  # each worker's stderr


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
    p999_ms: float | None = None
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


async def _until_ready(cfg: dict[str, Any], proc: subprocess.Popen[str]) -> None:
    """Until the worker's consumer holds its partitions (a group join takes ~5 s on Tansu)."""
    ready = Path(cfg["ready"])
    began = time.monotonic()
    while not ready.exists() and proc.poll() is None and time.monotonic() - began < 120:
        await asyncio.sleep(0.01)


def _profile(tag: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the running service from now on (start-up left out), when
    STREAMER_BENCH_PYSPY names a folder for its raw output."""
    folder = os.environ.get("STREAMER_BENCH_PYSPY")
    if not folder:
        return None
    beside = Path(sys.executable).with_name("py-spy")  # the venv's, which PATH may not list
    pyspy = str(beside) if beside.exists() else "py-spy"
    return subprocess.Popen([pyspy, "record", "--format", "raw", "--rate", "1000", "--idle",
                             "--nonblocking", "--output", str(Path(folder) / f"{tag}.txt"),
                             "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _configure(kind: str, cfg: dict[str, Any], redis: str | None, tag: str) -> tuple[str, str]:
    """The worker a pipeline runs and the topic its rate is measured on; fills ``cfg``."""
    name = kind.split("-", 1)[0] if kind.startswith(("streamer", "ceiling")) else kind
    measured = cfg["out"]
    settings: dict[str, Any] = {}
    if kind == "ceiling-predictions":
        cfg["predictions"] = True
    if kind == "streamer-requests":  # label requests only, like the ceiling: measured on them
        settings["emit_predictions"] = False
        measured = cfg["requests"]
    if name in ("streamer", "faust-sampling"):
        settings["model"] = AUTO_PIPELINES.get(kind, SINGLE_MODEL)
    if name == "streamer" and redis and kind != "streamer-inproc":
        settings.update(redis_url=redis, redis_prefix=f"bench:{tag}:{time.time_ns()}",
                        checkpoint_key="throughput-benchmark-key")
    if name == "faust-sampling" and redis:  # the same store, opened by sampling_agent
        cfg["redis_url"] = redis
        settings["redis_prefix"] = f"bench:{tag}:{time.time_ns()}"
    if settings:
        cfg["settings"] = settings
    return name, measured


async def run_pipeline(kind: str, bootstrap: str, d: int, items_topic: str, n: int, tag: str,
                       load: float | None, keys: list[bytes] | None = None,
                       values: list[bytes] | None = None, raw: bool = False,
                       redis: str | None = None) -> Run:
    """One pipeline over ``items_topic``: preloaded (load None) or fed live at ``load`` items/s,
    with an annotator answering the service's label requests."""
    out, requests, labels = f"out-{tag}", f"requests-{tag}", f"labels-{tag}"
    await create_topics(bootstrap, [out, requests, labels, f"dead-{tag}"])
    cfg: dict[str, Any] = {"bootstrap": bootstrap, "items": items_topic, "out": out, "requests": requests,
                           "labels": labels, "dead": f"dead-{tag}", "group": f"g-{tag}",
                           "d": d, "n": n, "ready": str(LOGS / f"{tag}.ready")}
    name, measured = _configure(kind, cfg, redis, tag)
    argv, env = _worker_cmd(name, cfg)
    run = Run(pipeline=kind, features=d, load=load, items=n)
    log = open(LOGS / f"{tag}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=log, text=True, cwd=ROOT)
    annotating = asyncio.Event()
    annotator = profiler = None
    try:
        if load is not None:  # every pipeline at an offered load shares the broker with the annotator
            assert values is not None
            annotator = asyncio.create_task(annotate(bootstrap, requests, labels, truth(values), annotating))
        if load is not None or name == "streamer":
            await _until_ready(cfg, proc)
        if name == "streamer":
            profiler = _profile(tag, proc.pid)
        if load is not None:
            assert keys is not None and values is not None
            await asyncio.sleep(1.0)  # the join settles before items flow
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
        annotating.set()
        if annotator is not None:
            run.extra["labels_given"] = await annotator
        if proc.poll() is None:
            proc.kill()
        if profiler is not None:
            profiler.wait(timeout=60)  # py-spy ends with the process, writing its samples
        log.close()
    expect = int(n * BUDGET * 0.8) if measured == requests or kind == "ceiling" else n
    outputs = await read_stamps(bootstrap, measured, expect)
    run.outputs = len(outputs)
    stamps = np.array(sorted(outputs.values()), dtype=np.float64)
    if len(stamps) > 1 and stamps[-1] > stamps[0]:
        run.items_per_s = round(n * (len(stamps) - 1) / len(stamps) / ((stamps[-1] - stamps[0]) / 1000.0))
    if load is not None:
        born = await read_stamps(bootstrap, items_topic, n)
        lat = np.array([ts - born[k] for k, ts in outputs.items() if k in born], dtype=np.float64)
        if lat.size:
            for name_, value in percentiles_ms(lat).items():
                setattr(run, name_, value)
    return run


def plan(quick: bool) -> dict[int, int]:
    return {16: 20_000} if quick else {16: 600_000, 64: 300_000, 512: 50_000}


PIPELINES = ["ceiling", "ceiling-predictions", "streamer", "streamer-inproc", "streamer-requests",
             "streamer-f32", "streamer-auto", "naive", "faust-event", "faust-take", "faust-sampling"]
LATENCY_PIPELINES = ["ceiling-predictions", "streamer-inproc", "streamer"]
SLOW = {"naive", "faust-event", "faust-take", "faust-sampling"}
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
            kinds = [k for k in pipelines if d == 16 or not k.endswith("-f32")]
            if "streamer-f32" in kinds:
                await create_topics(bootstrap, [f"{topic}-f32"])
                fkeys, fvalues = item_values(d, n, seed=d, raw=True)
                await produce_all(bootstrap, f"{topic}-f32", fkeys, fvalues, raw=True)
            # rounds alternate the pipelines (A B A B): the machine's drift hits every one alike;
            # the best round of each is the figure
            for round_, kind in [(r, k) for r in range(args.rounds) for k in kinds]:
                count = slow_items(kind, d, n) if kind in SLOW else n
                source = f"{topic}-f32" if kind.endswith("-f32") else topic
                print(f"[{d} features] {kind}: {count:,} items at full speed ...", flush=True)
                run = await run_pipeline(kind, bootstrap, d, source, count, f"{kind}-{d}-full-{round_}", None,
                                         raw=kind.endswith("-f32"), redis=url)
                run.extra["round"] = round_
                runs.append(run)
                print(f"    {run.items_per_s or 0:,.0f} items/s ({run.outputs:,} outputs) {run.note}", flush=True)
            if d in args.latency_features:
                runs += await latency_runs(args, bootstrap, d, [k for k in LATENCY_PIPELINES if k in kinds],
                                           best_rates(runs, d), loads, url)
    return {
        "benchmark": "throughput",
        "setup": {"partitions": PARTITIONS, "budget": BUDGET, "broker": "Tansu (embedded, loopback)",
                  "redis": url is not None, "quick": args.quick, "load_seconds": args.load_seconds,
                  "rounds": args.rounds, "latency_rounds": args.latency_rounds,
                  # settings the streamer pipelines ran with beyond the defaults (e.g. the model)
                  "streamer_settings": json.loads(os.environ.get("STREAMER_BENCH_SETTINGS", "{}"))},
        "runs": [r.__dict__ for r in runs],
        "ratios": ratios(runs),
    }


def best_rates(runs: list[Run], d: int) -> dict[str, float]:
    """pipeline -> its best full-speed items/s at ``d`` features."""
    full: dict[str, float] = {}
    for r in runs:
        if r.features == d and r.load is None:
            full[r.pipeline] = max(full.get(r.pipeline, 0.0), r.items_per_s or 0.0)
    return full


async def latency_runs(args: argparse.Namespace, bootstrap: str, d: int, kinds: list[str],
                       full: dict[str, float], loads: list[float], url: str | None) -> list[Run]:
    """Each pipeline at each offered load, ``--latency-rounds`` times, alternating; a pipeline
    whose full speed is under 1.2x the load is not run at it (it could only fall behind)."""
    runs: list[Run] = []
    for load in loads:
        count = int(load * args.load_seconds)
        lkeys, lvalues = item_values(d, count, seed=int(load) + d, raw=False)
        for round_, kind in [(r, k) for r in range(args.latency_rounds) for k in kinds]:
            if full.get(kind, 0) < 1.2 * load:
                if round_ == 0:
                    runs.append(Run(kind, d, load, count, note=f"not run: full speed {full.get(kind, 0):,.0f}/s"))
                continue
            live = f"live-{kind}-{d}-{int(load)}-{round_}"
            await create_topics(bootstrap, [live])
            print(f"[{d} features] {kind}: {count:,} items offered at {load:,.0f}/s ...", flush=True)
            run = await run_pipeline(kind, bootstrap, d, live, count, f"{kind}-{d}-{int(load)}-{round_}", load,
                                     keys=lkeys, values=lvalues, redis=url)
            run.extra["round"] = round_
            runs.append(run)
            print(f"    p50 {run.p50_ms} ms, p99 {run.p99_ms} ms, p999 {run.p999_ms} ms, "
                  f"labels given {run.extra.get('labels_given', '-')}", flush=True)
    return runs


def ratios(runs: list[Run]) -> dict[str, Any]:
    """The goals' ratios, from runs of the same width in the same broker."""
    out: dict[str, Any] = {}
    full: dict[tuple[str, int], float] = {}
    for r in runs:  # the best round of each pipeline
        if r.load is None and r.items_per_s:
            full[(r.pipeline, r.features)] = max(full.get((r.pipeline, r.features), 0.0), r.items_per_s)

    def ratio(name: str, a: str, b: str, d: int, digits: int = 3) -> None:
        if full.get((a, d)) and full.get((b, d)):
            out[f"{name}@{d}"] = round(full[(a, d)] / full[(b, d)], digits)

    for d in sorted({r.features for r in runs}):
        ratio("streamer/ceiling-predictions", "streamer", "ceiling-predictions", d)  # equal output work
        ratio("streamer-inproc/ceiling-predictions", "streamer-inproc", "ceiling-predictions", d)
        ratio("streamer-requests/ceiling", "streamer-requests", "ceiling", d)  # 5% out, both
        for other in ("naive", "faust-event", "faust-take"):
            ratio(f"streamer/{other}", "streamer", other, d, 2)
        for auto in AUTO_PIPELINES:
            ratio(f"{auto}/streamer", auto, "streamer", d)
        ratio("faust-sampling/faust-take", "faust-sampling", "faust-take", d, 2)
        ratio("faust-sampling/streamer", "faust-sampling", "streamer", d)
    if full.get(("streamer-f32", 16)):
        out["streamer-f32@16 items/s"] = full[("streamer-f32", 16)]
    out.update(latency_ratios(runs))
    return out


def latency_ratios(runs: list[Run]) -> dict[str, list[float]]:
    """p99 of each streamer pipeline over the ceiling's p99 in the same round at the same load."""
    ceiling = {(r.features, r.load, r.extra.get("round")): r.p99_ms for r in runs
               if r.pipeline == "ceiling-predictions" and r.load and r.p99_ms}
    out: dict[str, list[float]] = {}
    for r in runs:
        base = ceiling.get((r.features, r.load, r.extra.get("round")))
        if r.pipeline.startswith("streamer") and r.load and r.p99_ms is not None and base:
            out.setdefault(f"p99 {r.pipeline}/ceiling-predictions@{r.features}@{r.load:.0f}/s", []).append(
                round(r.p99_ms / base, 2))
    return out


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nthroughput through Tansu on {m['cpu']} ({m['cpu_count']} cores), commit {m.get('git_commit')}")
    print(f"{'pipeline':<21}{'features':>9}{'offered/s':>11}{'items':>10}{'items/s':>11}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'p999 ms':>9}  note")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for r in report["runs"]:
        offered = f"{r['load']:,.0f}" if r["load"] else "full"
        rate = f"{r['items_per_s']:,.0f}" if r["items_per_s"] else "-"
        print(f"{r['pipeline']:<21}{r['features']:>9}{offered:>11}{r['items']:>10,}{rate:>11}"
              f"{ms(r['p50_ms']):>9}{ms(r['p99_ms']):>9}{ms(r.get('p999_ms')):>9}  {r['note']}")
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
        _run_worker(kind, cfg)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 features, 20k items")
    parser.add_argument("--features", type=int, nargs="*", help="widths to run (default 16 64 512)")
    parser.add_argument("--items", type=int, help="items per width (overrides the plan)")
    parser.add_argument("--loads", type=float, nargs="*", default=[20_000, 40_000, 50_000])
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--latency-features", type=int, nargs="*", default=[16],
                        help="widths measured at the offered loads")
    parser.add_argument("--latency-rounds", type=int, default=2,
                        help="rounds per pipeline and load, alternating; every round is reported")
    parser.add_argument("--rounds", type=int, default=1,
                        help="full-speed rounds per pipeline, alternating; the best is reported")
    parser.add_argument("--pipelines", nargs="*", default=PIPELINES)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = Start.now()
    report = asyncio.run(main_async(args))
    report = write_result(args.out, report, started, redis_server=redis_server_version(redis_url()))
    print_table(report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
