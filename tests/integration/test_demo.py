"""`streamer demo` — what `make demo` runs — end to end on the embedded broker, shortened."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_runs_the_whole_loop_and_summarises_it_next_to_random_sampling() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "demo", "--max-items", "3000", "--duration", "6",
         "--label-delay", "0.2", "--metrics-port", "0", "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["items"] == 3000
    assert summary["labels_sent"] == summary["labels_applied"] == summary["join_outcomes"]["joined"]
    assert abs(summary["query_rate"] - 0.05) <= 0.2 * 0.05
    assert summary["accuracy"] > 0.6 and 0 < summary["random_query_rate"] <= 0.06
    assert "demo summary" in result.stderr and "random sampling" in result.stderr
    assert "items/s" in result.stderr  # live progress was shown
