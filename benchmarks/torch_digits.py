"""Label efficiency of the torch head on digits_frames, against random sampling in the same run.

``streamer.simulate.run_simulation`` (prequential, the protocol of the data README) on
``../shared/data/digits_frames.csv.gz`` at budgets 10% and 20%, seeds 0-4: the torch head
with margin sampling, the same head with random sampling at the same budget (the baseline),
and the river default model with margin sampling for reference. Writes
``benchmarks/results/torch_head_digits.json`` and prints a table.

Usage::

    .venv/bin/python benchmarks/torch_digits.py [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, write_result  # noqa: E402

from streamer.data import find_stream  # noqa: E402
from streamer.models import LOGISTIC_MODEL  # noqa: E402
from streamer.simulate import run_simulation  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "torch_head_digits.json"
ROWS = [("torch:mlp", "margin"), ("torch:mlp", "random"), (LOGISTIC_MODEL, "margin")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.1, 0.2])
    parser.add_argument("--quick", action="store_true", help="one seed, 600 items")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = Start.now()
    data = find_stream("digits_frames.csv.gz")  # $STREAMER_DATA_DIR's copy, else the bundled one
    seeds = range(1 if args.quick else args.seeds)
    results: list[dict[str, Any]] = []
    for budget in args.budgets:
        for model, policy in ROWS:
            accuracies, shares = [], []
            began = time.perf_counter()
            for seed in seeds:
                run = run_simulation(data, budget=budget, model=model, policy=policy, seed=seed,
                                     max_items=600 if args.quick else None, batch_size=8)
                accuracies.append(run["accuracy"])
                shares.append(run["query_rate"])
            results.append({"budget": budget, "model": model, "policy": policy,
                            "accuracy_mean": round(statistics.fmean(accuracies), 4),
                            "accuracy_by_seed": [round(a, 4) for a in accuracies],
                            "query_rate_mean": round(statistics.fmean(shares), 4),
                            "seconds": round(time.perf_counter() - began, 1)})
            print(f"budget {budget:.0%}  {model:<38} {policy:<7} accuracy "
                  f"{results[-1]['accuracy_mean']:.4f}  asked {results[-1]['query_rate_mean']:.4f}",
                  flush=True)
    report = {"benchmark": "torch_head_digits",
              "setup": {"data": data.name, "seeds": list(seeds), "batch_size": 8,
                        "protocol": "prequential, streamer.simulate.run_simulation",
                        "quick": args.quick},
              "results": results}
    write_result(args.out, report, started)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
