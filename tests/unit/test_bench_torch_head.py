"""Smoke test of ``benchmarks/torch_head.py`` in its quick configuration (d = 64, a bank of 2,000)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script

pytest.importorskip("torch", reason="the torch head benchmark needs the torch extra: pip install 'streamer[torch]'")

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_head.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(BENCHMARK, "torch_head_benchmark")


def test_quick_run_writes_every_batch_with_the_ratio_to_numpy(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "torch_head.json"
    assert bench.main(["--quick", "--no-cuda", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["config"]["bank"] == 2_000
    assert [row["batch"] for row in report["rows"]] == [256, 1_024]
    for row in report["rows"]:
        assert row["numpy_items_per_s"] > 0 and row["torch_cpu_items_per_s"] > 0
        assert row["torch_cpu_over_numpy"] == pytest.approx(
            row["torch_cpu_items_per_s"] / row["numpy_items_per_s"], rel=1e-2)
    assert report["machine"]["torch"] and report["machine"]["cuda_device"] == "none"


def test_numpy_baseline_computes_what_the_head_computes(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "torch_head.json"
    bench.main(["--quick", "--no-cuda", "--repeats", "1", "--batches", "300", "--out", str(out)])
    assert json.loads(out.read_text())["agreement_max_abs_diff"]["torch_cpu_vs_numpy"] < 1e-4


def test_quick_run_without_out_leaves_the_results_alone(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "torch_head.json")
    bench.main(["--quick", "--no-cuda", "--repeats", "1", "--batches", "256"])
    assert not (tmp_path / "torch_head.json").exists()
