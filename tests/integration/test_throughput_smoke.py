"""The throughput benchmark runs end to end (a small run): every pipeline through a real broker
produces what it should, and the report has the figures docs/results.md quotes. No speed is
asserted here -- rates are measured by the benchmark, as ratios within one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def test_quick_throughput_run_measures_every_pipeline(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--items", "6000",
         "--pipelines", "ceiling", "ceiling-predictions", "streamer", "streamer-inproc", "streamer-f32",
         "streamer-auto", "streamer-requests", "naive", "--out", str(out)],
        capture_output=True, text=True, timeout=280,
        env={**__import__("os").environ, "STREAMER_BENCH_REDIS": redis_url},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = {r["pipeline"]: r for r in report["runs"]}
    assert set(runs) == {"ceiling", "ceiling-predictions", "streamer", "streamer-inproc", "streamer-f32",
                         "streamer-auto", "streamer-requests", "naive"}
    for name in ("ceiling-predictions", "streamer", "streamer-inproc", "streamer-f32", "streamer-auto",
                 "naive"):  # one prediction per item
        assert runs[name]["outputs"] == 6000, (name, runs[name])
        assert runs[name]["items_per_s"] > 0
    # 5%: the ceiling's threshold on a standard normal, the service's budget
    for name in ("ceiling", "streamer-requests"):
        assert 0.02 * 6000 < runs[name]["outputs"] < 0.1 * 6000, (name, runs[name])
    assert runs["streamer"]["extra"]["status"]["items_seen"] == 6000
    assert report["setup"]["redis"] is True
    assert {"cpu", "cpu_count", "git_commit"} <= set(report["machine"])
    for ratio in ("streamer/ceiling-predictions@16", "streamer-requests/ceiling@16", "streamer/naive@16"):
        assert ratio in report["ratios"], ratio
    assert "streamer-auto/streamer@16" in report["ratios"]
    assert "streamer" in proc.stdout and "items/s" in proc.stdout


def test_latency_run_answers_label_requests_while_measuring(tmp_path: Path, redis_url: str) -> None:
    """At an offered load the annotator answers the service's requests (it learns while it
    decides), and every pipeline gets p50/p99/p999 and a ratio to the ceiling's p99."""
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--features", "16", "--items", "4000", "--loads", "2000",
         "--load-seconds", "3", "--latency-rounds", "1",
         "--pipelines", "ceiling-predictions", "streamer-inproc", "--out", str(out)],
        capture_output=True, text=True, timeout=280,
        env={**__import__("os").environ, "STREAMER_BENCH_REDIS": redis_url},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    loaded = {r["pipeline"]: r for r in report["runs"] if r["load"]}
    assert set(loaded) == {"ceiling-predictions", "streamer-inproc"}
    for run in loaded.values():
        assert run["outputs"] == 6000, run  # a prediction per item offered
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["p999_ms"], run
        assert run["extra"]["labels_given"] > 0.02 * 6000, run  # the 5% were answered
    status = loaded["streamer-inproc"]["extra"]["status"]
    assert status["items_seen"] == 6000
    assert loaded["streamer-inproc"]["extra"]["labels_applied"] > 0  # it learned while deciding
    assert report["ratios"]["p99 streamer-inproc/ceiling-predictions@16@2000/s"][0] > 0


def test_quick_throughput_run_measures_the_faust_sampling_agent(tmp_path: Path, redis_url: str) -> None:
    pytest.importorskip("faust", reason="the faust pipelines need faust-streaming")
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--items", "6000",
         "--pipelines", "faust-sampling", "--out", str(out)],
        capture_output=True, text=True, timeout=200,
        env={**__import__("os").environ, "STREAMER_BENCH_REDIS": redis_url},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["pipeline"] == "faust-sampling"
    assert run["outputs"] == 6000 and run["items_per_s"] > 0  # one prediction per item
    status = run["extra"]["status"]
    assert status["items_seen"] == 6000 and 0.02 * 6000 < status["label_requests"] < 0.1 * 6000
