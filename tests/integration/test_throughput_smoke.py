"""The throughput benchmark runs end to end (a small run): every pipeline through a real broker
produces what it should, and the report has the figures the README quotes. No speed is
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
         "--pipelines", "ceiling", "streamer", "naive", "--out", str(out)],
        capture_output=True, text=True, timeout=280,
        env={**__import__("os").environ, "STREAMER_BENCH_REDIS": redis_url},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = {r["pipeline"]: r for r in report["runs"]}
    assert set(runs) == {"ceiling", "streamer", "streamer-f32", "streamer-auto", "streamer-requests",
                         "naive"}
    for name in ("streamer", "streamer-f32", "streamer-auto", "naive"):  # one prediction per item
        assert runs[name]["outputs"] == 6000, (name, runs[name])
        assert runs[name]["items_per_s"] > 0
    # 5%: the ceiling's threshold on a standard normal, the service's budget
    for name in ("ceiling", "streamer-requests"):
        assert 0.02 * 6000 < runs[name]["outputs"] < 0.1 * 6000, (name, runs[name])
    assert runs["streamer"]["extra"]["status"]["items_seen"] == 6000
    assert report["setup"]["redis"] is True
    assert {"cpu", "cpu_count", "git_commit"} <= set(report["machine"])
    assert "streamer/ceiling@16" in report["ratios"] and "streamer/naive@16" in report["ratios"]
    assert "streamer-auto/streamer@16" in report["ratios"]
    assert "streamer" in proc.stdout and "items/s" in proc.stdout


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
