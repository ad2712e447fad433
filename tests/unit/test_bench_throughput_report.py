"""The throughput tables of docs/results.md are rendered from the results file: best round per pipeline,
ratios to the ceiling doing the same output work, every latency round with its ceiling's."""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load_script

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput_report.py"


def _module():  # noqa: ANN202
    return load_script(REPORT, "throughput_report")


def _run(pipeline: str, rate: float | None = None, load: float | None = None, round_: int = 0,
         p99: float | None = None) -> dict:
    return {"pipeline": pipeline, "features": 16, "load": load, "items_per_s": rate,
            "p50_ms": None if p99 is None else p99 / 4, "p99_ms": p99,
            "p999_ms": None if p99 is None else p99 * 1.5, "extra": {"round": round_}}


def test_tables_take_the_best_round_and_the_same_round_ceiling() -> None:
    report = {"runs": [
        _run("ceiling-predictions", 200_000.0), _run("ceiling-predictions", 180_000.0, round_=1),
        _run("streamer", 120_000.0), _run("streamer", 150_000.0, round_=1),
        _run("ceiling-predictions", load=20_000.0, p99=20.0), _run("streamer", load=20_000.0, p99=30.0),
        _run("ceiling-predictions", load=20_000.0, round_=1, p99=40.0),
        _run("streamer", load=20_000.0, round_=1, p99=50.0),
    ]}
    module = _module()
    rates = module.rates_table(report)
    assert rates[2] == "| 16 | 200.0k | 150.0k (0.75×) |"  # best of each, whatever the round
    latency = module.latency_table(report)
    streamer_rows = [row for row in latency if "| streamer |" in row]
    assert streamer_rows[0].endswith("| 1.50 |") and streamer_rows[1].endswith("| 1.25 |")
