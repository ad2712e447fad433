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


def test_the_demo_ends_with_its_summary_explained_and_the_next_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "demo", "--max-items", "1500", "--duration", "4",
         "--label-delay", "0.2", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tail = result.stderr[result.stderr.index("demo summary"):]
    assert " INFO " not in tail and " WARNING " not in tail  # no log line after the summary
    assert "stopped: {" not in result.stderr  # the service's stop line is one short sentence
    # each accuracy shown says what it measures
    assert "every item predicted before its label" in tail
    assert "the items it asked about, before their label" in tail
    assert "gate threshold" in tail and "the policy score an item must reach" in tail
    assert "threshold 1.000" not in result.stderr  # the progress lines show what moves
    last = result.stderr.rstrip().splitlines()[-4:]
    assert last[0] == "next:" and "activate" in last[1] and last[2].strip() == "streamer --help"


def test_the_video_demo_feeds_rendered_digits_through_the_video_feeder_and_learns_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "demo", "--video", "--max-items", "500", "--duration", "6",
         "--label-delay", "0.2", "--budget", "0.1", "--metrics-port", "0", "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["source"], summary["extractor"], summary["features"]) == ("video", "builtin", 124)
    assert summary["items"] == 500 and summary["dead_letters"] == 0  # one item per digit
    assert summary["labels_sent"] == summary["labels_applied"] == summary["join_outcomes"]["joined"]
    assert summary["join_outcomes"]["unknown"] == 0  # the annotator knew every requested id
    assert summary["accuracy"] > 0.3  # ten classes: chance is 0.1
    assert "sampled at 10 fps" in result.stderr and "demo summary" in result.stderr


def test_the_video_demo_refuses_a_video_without_labels_and_says_what_to_do(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "demo", "--video", str(tmp_path / "mine.mp4")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "has no labels" in result.stderr and "streamer feed video" in result.stderr
