"""How long a checkpoint holds the event loop (the items loop's decisions) up.

A checkpoint of a sampler with ``--in-flight`` ids asked and unanswered (the service keeps up
to ``max_pending``, 100,000 by default) is written while a ticker task measures the longest gap
between two of its turns. Two ways, alternating, in the same run:

- **baseline** (format 2, before issue 18): the whole checkpoint, in-flight ids inside the
  sampler, pickled and signed in one synchronous step;
- **streamer** (format 3): :func:`streamer.store.checkpoint.snapshot` at one moment, then
  :func:`~streamer.store.checkpoint.dumps_yielding` (the ids in chunks, signing in a thread).

Writes ``benchmarks/results/checkpoint_stall.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, write_result  # noqa: E402

from streamer.core.sampler import Sampler  # noqa: E402
from streamer.models import build_model  # noqa: E402
from streamer.signed import seal  # noqa: E402
from streamer.store.checkpoint import Checkpoint, dumps_yielding, loads, snapshot  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "checkpoint_stall.json"
KEY = b"benchmark-key-0123456789"


def _sampler(in_flight: int, seed: int = 0) -> Sampler:
    rng = np.random.default_rng(seed)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression", seed=seed), budget=0.05)
    X = rng.normal(size=(256, 16))
    sampler.learn(X, (X[:, 0] > 0).astype(int).tolist())
    ids = [f"{seed}-{i:08d}-{rng.integers(1 << 62):x}" for i in range(in_flight)]  # uuid-like length
    sampler._remember(ids, [0.05] * in_flight)
    return sampler


def _baseline(checkpoint: Checkpoint) -> bytes:
    """Format 2: one synchronous pickle of every field, the in-flight ids inside the sampler."""
    payload = pickle.dumps({name: getattr(checkpoint, name) for name in Checkpoint.__slots__},
                           protocol=pickle.HIGHEST_PROTOCOL)
    return seal(b"streamer-checkpoint/2\n", KEY, payload)


async def _longest_gap(write: Any) -> tuple[float, float, int]:
    """(longest loop gap in ms, write time in ms, bytes) while ``write()`` runs."""
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    gaps.clear()
    began = time.perf_counter()
    blob = await write()
    took = time.perf_counter() - began
    await asyncio.sleep(0.01)
    running = False
    await task
    return 1e3 * max(gaps), 1e3 * took, len(blob)


async def _measure(in_flight: int, rounds: int) -> dict[str, Any]:
    sampler = _sampler(in_flight)
    checkpoint = Checkpoint(sampler, {("labels", 0): 1})
    runs: dict[str, list[tuple[float, float, int]]] = {"baseline": [], "streamer": []}

    async def baseline() -> bytes:
        return _baseline(checkpoint)

    async def ours() -> bytes:
        return await dumps_yielding(snapshot(checkpoint), KEY)

    for _ in range(rounds):  # alternating, so load on the machine hits both alike
        runs["baseline"].append(await _longest_gap(baseline))
        runs["streamer"].append(await _longest_gap(ours))
    restored = loads(await ours(), KEY)
    assert len(restored.sampler._in_flight) == in_flight
    row: dict[str, Any] = {"in_flight": in_flight}
    for name, values in runs.items():
        row[name] = {"max_gap_ms_median": round(statistics.median(v[0] for v in values), 2),
                     "write_ms_median": round(statistics.median(v[1] for v in values), 2),
                     "bytes": values[-1][2], "max_gap_ms": [round(v[0], 2) for v in values]}
    row["gap_ratio_vs_baseline"] = round(row["streamer"]["max_gap_ms_median"]
                                         / row["baseline"]["max_gap_ms_median"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = Start.now()
    rows = [asyncio.run(_measure(n, args.rounds)) for n in args.in_flight]
    print(f"{'in flight':>10} | {'baseline gap ms':>15} | {'streamer gap ms':>15} | {'ratio':>6} | "
          f"{'baseline MB':>11} | {'streamer MB':>11}")
    for row in rows:
        print(f"{row['in_flight']:>10} | {row['baseline']['max_gap_ms_median']:>15} | "
              f"{row['streamer']['max_gap_ms_median']:>15} | {row['gap_ratio_vs_baseline']:>6} | "
              f"{row['baseline']['bytes'] / 1e6:>11.2f} | {row['streamer']['bytes'] / 1e6:>11.2f}")
    if not args.no_write:
        write_result(args.out, {"benchmark": "checkpoint_stall", "rounds": args.rounds, "rows": rows}, started)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
