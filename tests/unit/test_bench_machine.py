"""Every results file says where it ran, on what code, with which libraries, how long, and how
it was started: ``benchmarks/machine.py``'s ``write_result``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script

MODULE = Path(__file__).resolve().parents[2] / "benchmarks" / "machine.py"


@pytest.fixture(scope="module")
def bench_machine() -> ModuleType:
    return load_script(MODULE, "bench_machine")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args],
                          cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git checkout with streamer/, benchmarks/ and benchmarks/results/, all committed."""
    for path, text in {"streamer/core.py": "x = 1\n", "benchmarks/bench.py": "y = 1\n",
                       "benchmarks/results/bench.json": "{}\n", "docs/index.md": "# docs\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_write_result_records_commit_code_versions_wall_time_and_command(
    bench_machine: ModuleType, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_machine, "ROOT", repo)
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench.py", "--rounds", "2", "--note", "two words"])
    started = bench_machine.Start.now()
    started = bench_machine.Start(started.clock - 2.5, started.date, started.git)  # began 2.5 s ago

    out = tmp_path / "out" / "bench.json"
    written = bench_machine.write_result(out, {"benchmark": "bench", "rows": [1, 2]}, started,
                                         redis_server="7.2.4")

    doc = json.loads(out.read_text())
    assert doc == written
    assert doc["benchmark"] == "bench" and doc["rows"] == [1, 2]
    m = doc["machine"]
    assert m["git_commit"] == _git(repo, "rev-parse", "--short", "HEAD")
    assert m["streamer_tree"] == _git(repo, "rev-parse", "HEAD:streamer")
    assert m["streamer_uncommitted_changes"] is False and m["benchmarks_uncommitted_changes"] is False
    for library, distribution in (("numpy", "numpy"), ("river", "river"), ("aiokafka", "aiokafka")):
        assert m[library] == metadata.version(distribution)
    assert m["python"] == ".".join(map(str, sys.version_info[:3]))
    assert m["redis_server"] == "7.2.4"
    assert m["date"] == started.date and m["cpu_count"] >= 1
    assert 2.5 <= doc["wall_s"] < 60
    assert doc["command"] == "benchmarks/bench.py --rounds 2 --note 'two words'"


def test_a_docs_only_commit_keeps_the_streamer_tree_of_the_code_measured(
    bench_machine: ModuleType, repo: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_machine, "ROOT", repo)
    before = bench_machine.git_state()
    (repo / "docs" / "index.md").write_text("# docs, reworded\n")
    _git(repo, "commit", "-q", "-am", "docs only")
    after_docs = bench_machine.git_state()
    (repo / "streamer" / "core.py").write_text("x = 2\n")
    _git(repo, "commit", "-q", "-am", "code")
    after_code = bench_machine.git_state()

    assert after_docs["git_commit"] != before["git_commit"]
    assert after_docs["streamer_tree"] == before["streamer_tree"]
    assert after_code["streamer_tree"] != before["streamer_tree"]


def test_uncommitted_changes_are_flagged_but_rewritten_results_are_not(
    bench_machine: ModuleType, repo: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_machine, "ROOT", repo)
    (repo / "benchmarks" / "results" / "bench.json").write_text('{"rerun": true}\n')
    assert bench_machine.git_state()["benchmarks_uncommitted_changes"] is False

    (repo / "benchmarks" / "bench.py").write_text("y = 2\n")
    (repo / "streamer" / "core.py").write_text("x = 2\n")
    state = bench_machine.git_state()
    assert state["benchmarks_uncommitted_changes"] is True and state["streamer_uncommitted_changes"] is True


def test_outside_a_checkout_the_git_keys_are_there_and_empty(
    bench_machine: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_machine, "ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    state = bench_machine.git_state()
    assert state == dict.fromkeys(("git_commit", "streamer_tree", "streamer_uncommitted_changes",
                                   "benchmarks_uncommitted_changes"))


def test_a_payload_may_not_bring_its_own_machine_block(bench_machine: ModuleType, tmp_path: Path) -> None:
    started = bench_machine.Start(time.perf_counter(), "2026-01-01T00:00:00+00:00", {})
    with pytest.raises(ValueError, match="wall_s"):
        bench_machine.write_result(tmp_path / "x.json", {"wall_s": 3.0}, started)
    assert not (tmp_path / "x.json").exists()
