"""The throughput and latency tables of docs/results.md, rendered from ``benchmarks/results/throughput.json``
(so the figures quoted are the run's, digit for digit).

Usage::

    python benchmarks/throughput_report.py [path/to/throughput.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "throughput.json"
RATE_COLUMNS = [("ceiling-predictions", "ceiling, a prediction per item"), ("streamer", "streamer (Redis)"),
                ("streamer-inproc", "streamer (in-process)"), ("ceiling", "ceiling, 5% only"),
                ("streamer-requests", "streamer, requests only"), ("streamer-f32", "raw float32"),
                ("streamer-auto", "`auto`"), ("naive", "naive per item"),
                ("faust-take", "faust take"), ("faust-sampling", "faust-sampling")]


def best_rates(report: dict[str, Any]) -> dict[tuple[str, int], float]:
    best: dict[tuple[str, int], float] = {}
    for run in report["runs"]:
        if run["load"] is None and run["items_per_s"]:
            key = (run["pipeline"], run["features"])
            best[key] = max(best.get(key, 0.0), run["items_per_s"])
    return best


def thousands(rate: float | None) -> str:
    return "–" if not rate else f"{rate / 1000:.1f}k"


def rates_table(report: dict[str, Any]) -> list[str]:
    best = best_rates(report)
    widths = sorted({d for _, d in best})
    columns = [(k, name) for k, name in RATE_COLUMNS if any((k, d) in best for d in widths)]
    lines = ["| features | " + " | ".join(name for _, name in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for d in widths:
        cells = []
        for kind, _ in columns:
            rate = best.get((kind, d))
            cell = thousands(rate)
            base = {"streamer": "ceiling-predictions", "streamer-inproc": "ceiling-predictions",
                    "streamer-requests": "ceiling"}.get(kind)
            if rate and base and best.get((base, d)):
                cell += f" ({rate / best[(base, d)]:.2f}×)"
            cells.append(cell)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def latency_table(report: dict[str, Any]) -> list[str]:
    runs = [r for r in report["runs"] if r["load"] and r.get("p99_ms") is not None]
    ceiling = {(r["features"], r["load"], r["extra"].get("round")): r["p99_ms"] for r in runs
               if r["pipeline"] == "ceiling-predictions"}
    lines = ["| offered load | round | pipeline | p50 ms | p99 ms | p999 ms | p99 / ceiling's |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r["features"], r["load"], r["extra"].get("round", 0))):
        base = ceiling.get((r["features"], r["load"], r["extra"].get("round")))
        ratio = f"{r['p99_ms'] / base:.2f}" if base and r["pipeline"] != "ceiling-predictions" else ""
        lines.append(f"| {r['load'] / 1000:.0f}k/s | {r['extra'].get('round', 0) + 1} | {r['pipeline']} | "
                     f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['p999_ms']:.0f} | {ratio} |")
    return lines


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    report = json.loads(path.read_text())
    m = report["machine"]
    print(f"commit {m.get('git_commit')}, {m['date'][:10]}, {m['cpu']} ({m['cpu_count']} cores), "
          f"{report['setup'].get('rounds', 1)} rounds\n")
    print("\n".join(rates_table(report)))
    print()
    print("\n".join(latency_table(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
