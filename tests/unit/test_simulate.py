"""Offline prequential simulation and the ``simulate`` subcommand."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamer.simulate import register, run_simulation

RESULT_KEYS = {"items", "queried", "query_rate", "budget", "accuracy", "items_per_s", "model",
               "policy", "seed", "label_delay", "data", "elapsed_s", "asked_by_reason",
               "worst_window_share", "not_reasked"}


@pytest.fixture
def blobs_csv(tmp_path: Path) -> Path:
    """3000 items of 3 separable classes."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3_000)
    X = np.array([[0, 0], [6, 0], [0, 6]])[y] + rng.normal(0, 1, (3_000, 2))
    path = tmp_path / "blobs.csv"
    lines = ["f0,f1,label"] + [f"{a:.4f},{b:.4f},{c}" for (a, b), c in zip(X, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_result_reports_accuracy_next_to_the_realised_query_rate(blobs_csv: Path) -> None:
    result = run_simulation(blobs_csv, budget=0.05, seed=0)
    assert set(result) == RESULT_KEYS
    assert result["items"] == 3_000
    assert result["query_rate"] == result["queried"] / 3_000
    assert abs(result["query_rate"] - 0.05) <= 0.0025
    assert result["accuracy"] > 0.9
    assert sum(result["asked_by_reason"].values()) == result["queried"]
    json.dumps(result)


def test_items_predicted_before_any_label_count_as_wrong(blobs_csv: Path) -> None:
    # Batch of 10, budget 1: the first 10 items are predicted with no class known.
    result = run_simulation(blobs_csv, budget=1.0, max_items=10, batch_size=10)
    assert result["accuracy"] == 0.0 and result["queried"] == 10


def test_label_delay_holds_labels_back(blobs_csv: Path) -> None:
    # With labels arriving 2000 items late, the first 2000 predictions know no class at all,
    # while the cold start asks the budget plus its slack (5 labels at 5%) and no more.
    delayed = run_simulation(blobs_csv, budget=0.05, label_delay=2_000, max_items=2_000)
    assert delayed["accuracy"] == 0.0
    assert delayed["asked_by_reason"] == {"cold_start": 100 + 5}
    prompt = run_simulation(blobs_csv, budget=0.05, max_items=2_000)
    assert prompt["accuracy"] > 0.9


def test_max_items_and_batch_size_are_respected(blobs_csv: Path) -> None:
    result = run_simulation(blobs_csv, max_items=1_234, batch_size=100)
    assert result["items"] == 1_234


def test_same_seed_same_result(blobs_csv: Path) -> None:
    a = run_simulation(blobs_csv, seed=3, max_items=1_000)
    b = run_simulation(blobs_csv, seed=3, max_items=1_000)
    assert (a["accuracy"], a["queried"]) == (b["accuracy"], b["queried"])


def test_without_data_uses_the_synthetic_stream() -> None:
    result = run_simulation(None, max_items=500, seed=1)
    assert result["data"] == "synthetic" and result["items"] == 500


def test_progress_is_called_with_partial_results(blobs_csv: Path) -> None:
    seen: list[int] = []
    run_simulation(blobs_csv, max_items=300, batch_size=100, progress=lambda r: seen.append(r["items"]))
    assert seen == [100, 200, 300]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamer")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_subcommand_prints_one_json_object_last(
    blobs_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["simulate", "--data", str(blobs_csv), "--budget", "0.1", "--max-items", "800",
                  "--batch-size", "20", "--compare-random", "--json", "--seed", "2"])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert RESULT_KEYS | {"random_accuracy", "random_query_rate"} == set(result)
    assert result["items"] == 800 and result["budget"] == 0.1 and result["seed"] == 2
    assert "accuracy" in err  # the human summary goes to stderr


def test_subcommand_defaults() -> None:
    args = parse(["simulate", "--synthetic", "100"])
    assert (args.budget, args.batch_size, args.label_delay, args.json) == (0.05, 1, 0, False)


def test_subcommand_requires_a_data_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["simulate"])
    assert "--data" in capsys.readouterr().err


def test_subcommand_reports_a_bad_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["simulate", "--data", str(tmp_path / "missing.csv")])
    assert args.func(args) == 2
    assert "no such data file" in capsys.readouterr().err


def test_runs_as_a_process() -> None:
    code = "import sys; from streamer.simulate import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--synthetic", "400", "--json"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["items"] == 400


def test_label_delay_in_seconds_uses_the_stream_clock(blobs_csv: Path) -> None:
    # 20 s at 100 items/s is the same as 2000 items.
    seconds = run_simulation(blobs_csv, budget=0.05, label_delay="20s", rate=100.0, max_items=2_000)
    items = run_simulation(blobs_csv, budget=0.05, label_delay=2_000, max_items=2_000)
    assert (seconds["accuracy"], seconds["queried"]) == (items["accuracy"], items["queried"])


def test_jittered_delays_still_learn_and_hold_the_budget(blobs_csv: Path) -> None:
    result = run_simulation(blobs_csv, budget=0.05, label_delay="3s", delay_jitter=True, max_items=4_000,
                            batch_size=10)
    assert result["accuracy"] > 0.8
    assert abs(result["queried"] - 0.05 * result["items"]) <= 6


def test_labels_per_second_caps_the_labels_on_the_stream_clock(blobs_csv: Path) -> None:
    # 100 items/s; 0.5 labels/s is 0.5% of the items, far below the 5% budget.
    result = run_simulation(blobs_csv, budget=0.05, max_items=4_000, batch_size=10,
                            sampler_options={"labels_per_second": 0.5})
    assert result["queried"] <= 0.5 * result["items"] / 100 + 2


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "nan"])
def test_bad_label_delay_is_rejected_with_the_syntax(blobs_csv: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="label delay"):
        run_simulation(blobs_csv, label_delay=bad, max_items=10)
