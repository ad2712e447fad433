"""Active sampling vs random sampling at the same label budget, on every stream in the data dir.

Runs ``streamer.simulate.run_simulation`` for each CSV file, each strategy and 3 seeds, prints a
table (accuracy mean +- std over seeds, realised query rate) and writes
``benchmarks/results/simulate_vs_random.json``. Random sampling at the same budget is the
baseline measured in the same run.

Usage::

    .venv/bin/python benchmarks/simulate_vs_random.py [--budget 0.05] [--seeds 3] [--all-strategies]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Start, write_result  # noqa: E402

from streamer.core.sampler import DEFAULT_POLICY, STRATEGIES  # noqa: E402
from streamer.data import default_data_dir  # noqa: E402
from streamer.models import LOGISTIC_MODEL  # noqa: E402
from streamer.simulate import run_simulation  # noqa: E402

# Candidates LOGISTIC_MODEL (the default before auto) was chosen from (run with --compare-models).
CANDIDATE_MODELS = [
    "StandardScaler | LogisticRegression",
    "StandardScaler | SoftmaxRegression",
    "StandardScaler | GaussianNB",
    "HoeffdingTreeClassifier",
    "StandardScaler | KNNClassifier",
]

RESULTS = Path(__file__).resolve().parent / "results" / "simulate_vs_random.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", default=LOGISTIC_MODEL)
    parser.add_argument("--all-strategies", action="store_true",
                        help="also run the non-default uncertainty scores")
    parser.add_argument("--compare-models", action="store_true",
                        help="also compare the candidate models (default strategy only)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    run_start = Start.now()

    data_dir = default_data_dir()
    if data_dir is None:
        print("no data directory (set STREAMER_DATA_DIR); nothing to benchmark", file=sys.stderr)
        return 1
    files = sorted(data_dir.glob("*.csv*"))
    strategies = list(STRATEGIES) if args.all_strategies else [DEFAULT_POLICY, "random"]
    print(f"model: {args.model}   budget: {args.budget}   seeds: {args.seeds}\n")

    rows: list[dict[str, Any]] = []
    header = f"{'file':<22} {'items':>6} {'strategy':<17} {'query_rate':>10} {'accuracy':>15} {'items/s':>8}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for path in files:
        for strategy in strategies:
            runs = [run_simulation(path, budget=args.budget, model=args.model, policy=strategy,
                                   seed=seed) for seed in range(args.seeds)]
            accs = [r["accuracy"] for r in runs]
            row = {
                "file": path.name,
                "items": runs[0]["items"],
                "strategy": strategy,
                "query_rate_mean": statistics.fmean(r["query_rate"] for r in runs),
                "accuracy_mean": statistics.fmean(accs),
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "items_per_s_mean": statistics.fmean(r["items_per_s"] for r in runs),
                "runs": runs,
            }
            rows.append(row)
            print(f"{row['file']:<22} {row['items']:>6} {strategy:<17} {row['query_rate_mean']:>10.4f} "
                  f"{row['accuracy_mean']:>8.4f}±{row['accuracy_std']:.4f} {row['items_per_s_mean']:>8.0f}",
                  flush=True)

    verdicts = {}
    for path in files:
        by = {r["strategy"]: r["accuracy_mean"] for r in rows if r["file"] == path.name}
        verdicts[path.name] = {
            "default": by[DEFAULT_POLICY], "random": by["random"],
            "default_beats_random": by[DEFAULT_POLICY] > by["random"],
        }
    wins = sum(v["default_beats_random"] for v in verdicts.values())
    print(f"\n{DEFAULT_POLICY} beats random on {wins}/{len(files)} files "
          f"({time.perf_counter() - started:.0f} s)")
    for strategy in strategies:
        mean = statistics.fmean(r["accuracy_mean"] for r in rows if r["strategy"] == strategy)
        print(f"  mean accuracy over files, {strategy:<17} {mean:.4f}")

    models = compare_models(files, args) if args.compare_models else []

    write_result(args.output, {
        "benchmark": "simulate_vs_random",
        "model": args.model,
        "default_strategy": DEFAULT_POLICY,
        "budget": args.budget,
        "seeds": list(range(args.seeds)),
        "results": rows,
        "verdicts": verdicts,
        "default_beats_random_on": f"{wins}/{len(files)}",
        "model_comparison": models,
    }, run_start)
    print(f"wrote {args.output}")
    return 0


def compare_models(files: list[Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Mean accuracy over files and seeds of each candidate model with the default strategy."""
    print(f"\nmodels, strategy {DEFAULT_POLICY}, accuracy per file (mean over seeds):")
    out = []
    for spec in CANDIDATE_MODELS:
        per_file = {}
        speed = []
        for path in files:
            runs = [run_simulation(path, budget=args.budget, model=spec, seed=seed)
                    for seed in range(args.seeds)]
            per_file[path.name] = statistics.fmean(r["accuracy"] for r in runs)
            speed.extend(r["items_per_s"] for r in runs)
        mean = statistics.fmean(per_file.values())
        out.append({"model": spec, "accuracy_mean": mean, "accuracy_by_file": per_file,
                    "items_per_s_mean": statistics.fmean(speed)})
        cells = " ".join(f"{a:.3f}" for a in per_file.values())
        print(f"  {spec:<38} {cells}  mean {mean:.4f}  {statistics.fmean(speed):>7.0f} items/s",
              flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
