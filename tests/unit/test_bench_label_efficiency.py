"""Smoke test of ``benchmarks/label_efficiency.py`` in its quick configuration (600 items)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.scripts import load_script

pytest.importorskip("skactiveml", reason="the label-efficiency benchmark needs the bench extra: "
                    "pip install -e '.[bench]' (scikit-activeml)")
pytest.importorskip("matplotlib", reason="the label-efficiency benchmark needs the bench extra: "
                    "pip install -e '.[bench]' (matplotlib)")


BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "label_efficiency.py"
BUDGET = 0.10  # the quick configuration's only budget


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(BENCHMARK, "label_efficiency")


@pytest.fixture(scope="module")
def quick(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("label_efficiency")
    doc = bench.benchmark(bench.parse_args(["--quick", "--jobs", "1", "--out", str(out)]))
    return doc, out


def test_every_method_runs_on_every_quick_stream(bench: ModuleType, quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    references = set(bench.reference_rows(bench.OURS, bench.LOGISTIC_MODEL))
    assert "auto (all labels)" in references and "logistic (all labels)" in references
    assert doc["default_row"] == "auto" and doc["ours"]["auto"]["model"] == "auto"
    expected = {*bench.OURS, "random", *bench.ANCHORS, *references}
    for stream in ("phishing", "hyperplane"):
        rows = [r for r in doc["table"] if r["stream"] == stream]
        assert {r["method"] for r in rows} == expected
        assert all(not r["errors"] and r["seeds"] == [0] for r in rows), rows


def test_the_full_label_reference_learns_every_item_and_scores_the_default(
    quick: tuple[dict[str, Any], Path],
) -> None:
    doc, out = quick
    references = [r for r in doc["table"] if r["method"].endswith(" (all labels)")]
    assert references and all(r["share_mean"] == 1.0 and r["budget"] == 1.0 for r in references)
    for v in doc["verdicts"]:
        singles = [r for r in references if r["stream"] == v["stream"] and r["method"] != "auto (all labels)"]
        best = max(singles, key=lambda r: r["accuracy_mean"])
        assert v["full_label_best"] == best["method"].removesuffix(" (all labels)")
        assert v["share_of_full_label"] == round(v["default"] / best["accuracy_mean"], 4)
    assert "## Full-label reference" in (out / "label_efficiency.md").read_text()


def test_the_anchor_cache_key_names_the_versions_the_code_and_the_data(bench: ModuleType) -> None:
    import numpy as np
    from streams import Stream

    a = Stream("s", np.zeros((4, 2)), np.array([0, 1, 0, 1]), "test")
    b = Stream("s", np.ones((4, 2)), np.array([0, 1, 0, 1]), "test")  # same name, other data
    job = bench.Job("anchor", "skactiveml.Split", "s", 0.05, 0)
    key_a, key_b = job.cache_key(a, 8, "m"), job.cache_key(b, 8, "m")
    assert key_a != key_b and a.digest in key_a
    fingerprint = bench.cache_fingerprint()
    assert key_a.startswith(fingerprint)
    assert all(f"{lib}=" in fingerprint for lib in ("river", "skactiveml", "sklearn", "numpy", "code"))


def test_random_sampling_spends_its_budget_within_two_labels(quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    runs = [r for r in doc["runs"] if r["method"] == "random"]
    assert len(runs) == 2
    for r in runs:
        assert abs(r["queried"] - BUDGET * r["items"]) <= 2, r


def test_every_method_spends_a_sane_share(quick: tuple[dict[str, Any], Path]) -> None:
    doc, _ = quick
    for row in doc["table"]:
        budget = row["budget"]  # BUDGET, or 1 for the full-label reference
        assert budget / 2 <= row["share_mean"] <= budget * 2, row
        assert 0.0 <= row["accuracy_mean"] <= 1.0


def test_results_are_written_as_json_markdown_and_png(quick: tuple[dict[str, Any], Path]) -> None:
    doc, out = quick
    written = json.loads((out / "label_efficiency.json").read_text())
    assert {"hostname", "cpu", "cpu_count", "python", "river", "scikit-activeml", "date"} <= set(written["machine"])
    assert written["verdicts"] and written["runs"]
    assert all(len(r["curve"]) > 10 for r in written["runs"])
    markdown = (out / "label_efficiency.md").read_text()
    assert "## Budget 10%" in markdown and "| phishing |" in markdown and "| hyperplane |" in markdown
    assert (out / "label_efficiency.png").stat().st_size > 10_000
    assert (out / "label_efficiency_anchors.json").is_file()


def test_only_ours_reuses_cached_anchors_and_adds_rows_from_the_command_line(
    bench: ModuleType, quick: tuple[dict[str, Any], Path]
) -> None:
    _, out = quick
    doc = bench.benchmark(bench.parse_args(
        ["--quick", "--jobs", "1", "--out", str(out), "--only-ours",
         "--ours", 'explore-more={"policy": "margin", "explore": 0.3}']))
    methods = {r["method"] for r in doc["table"]}
    assert "explore-more" in methods and set(bench.ANCHORS) <= methods
    assert all(r["cached"] for r in doc["table"] if r["method"] in bench.ANCHORS)
    assert doc["ours"]["explore-more"] == {"policy": "margin", "explore": 0.3}


def test_rows_from_a_results_file_rerun_its_rows_alone_under_its_name(
    bench: ModuleType, quick: tuple[dict[str, Any], Path], tmp_path: Path,
) -> None:
    _, out = quick
    recorded = tmp_path / "label_efficiency_old.json"
    recorded.write_text(json.dumps({"default_row": "margin", "ours": {
        "margin": {"policy": "margin"}, "margin w5": {"policy": "margin", "warmup": 5}}}))
    cache = (out / "label_efficiency_anchors.json").read_bytes()
    doc = bench.benchmark(bench.parse_args(
        ["--quick", "--jobs", "1", "--streams", "phishing", "--out", str(out), "--no-anchors", "--no-reference",
         "--rows-from", str(recorded), "--name", "label_efficiency_old"]))
    assert doc["default_row"] == "margin" and set(doc["ours"]) == {"margin", "margin w5"}
    assert {r["method"] for r in doc["runs"]} == {"margin", "margin w5", "random"}  # no anchor, cached or not
    assert json.loads((out / "label_efficiency_old.json").read_text())["ours"] == doc["ours"]
    assert "![accuracy vs labels](label_efficiency_old.png)" in (out / "label_efficiency_old.md").read_text()
    assert (out / "label_efficiency_old.png").is_file()
    assert (out / "label_efficiency_anchors.json").read_bytes() == cache
