"""benchmarks/freshness.py on a repository of its own: which results measured the code at HEAD."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "freshness.py"


@pytest.fixture(scope="module")
def freshness() -> ModuleType:
    return load_script(SCRIPT, "bench_freshness")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _commit(root: Path, path: str, text: str) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", f"change {path}")
    return _git(root, "rev-parse", "HEAD")


def _result(root: Path, name: str, commit: str, **machine: object) -> Path:
    tree = _git(root, "rev-parse", f"{commit}:streamer")
    path = root / "benchmarks" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": [], "command": "benchmarks/speed.py --fast", "machine": {
        "git_commit": commit, "streamer_tree": tree, "date": "2026-12-07T18:00:00+00:00",
        "streamer_uncommitted_changes": False, "benchmarks_uncommitted_changes": False, **machine}}))
    return path


def test_a_result_is_fresh_until_the_code_it_measured_changes(tmp_path: Path, freshness: ModuleType) -> None:
    _git(tmp_path, "init", "-q")
    _commit(tmp_path, "streamer/core.py", "x = 1\n")
    _commit(tmp_path, "benchmarks/helper.py", "from machine import write\n")
    _commit(tmp_path, "benchmarks/machine.py", "write = print\n")
    measured = _commit(tmp_path, "benchmarks/speed.py", "import json\n\ndef main():\n    import helper\n")
    assert sorted(freshness.script_files("benchmarks/speed.py", tmp_path)) == [
        "benchmarks/helper.py", "benchmarks/machine.py", "benchmarks/speed.py"]
    result = _result(tmp_path, "speed.json", measured)
    assert freshness.freshness(result, tmp_path).fresh

    _commit(tmp_path, "docs/index.md", "words\n")  # neither streamer/ nor its code
    _commit(tmp_path, "benchmarks/other.py", "print(0)\n")  # another benchmark
    _commit(tmp_path, "benchmarks/results/other.json", "{}\n")
    assert freshness.freshness(result, tmp_path).fresh

    _commit(tmp_path, "benchmarks/machine.py", "write = repr\n")  # imported by what it imports
    assert freshness.freshness(result, tmp_path).why_stale == "its code changed since: benchmarks/machine.py"

    remeasured = _result(tmp_path, "speed.json", _git(tmp_path, "rev-parse", "HEAD"))
    assert freshness.freshness(remeasured, tmp_path).fresh
    _commit(tmp_path, "streamer/core.py", "x = 2\n")
    assert freshness.freshness(remeasured, tmp_path).why_stale.startswith("streamer/ changed since")


def test_results_without_their_commit_or_with_uncommitted_code_are_stale(
        tmp_path: Path, freshness: ModuleType) -> None:
    _git(tmp_path, "init", "-q")
    commit = _commit(tmp_path, "streamer/core.py", "x = 1\n")
    dirty = _result(tmp_path, "dirty.json", commit, streamer_uncommitted_changes=True)
    assert freshness.freshness(dirty, tmp_path).why_stale == "measured with uncommitted changes"
    old = tmp_path / "benchmarks" / "results" / "old.json"
    old.write_text(json.dumps({"rows": [], "machine": {"date": "2026-11-21"}}))
    assert freshness.freshness(old, tmp_path).why_stale == "records no commit or streamer/ tree"
    (tmp_path / "benchmarks" / "results" / "broken.json").write_text("{not json")
    checked, apart = freshness.report(tmp_path / "benchmarks" / "results", tmp_path)
    assert [f.name for f in checked if f.fresh] == []
    assert {f.name for f in checked} == {"dirty.json", "old.json", "broken.json"} and apart == []


def test_a_test_a_benchmark_runs_is_part_of_its_code(tmp_path: Path, freshness: ModuleType) -> None:
    """benchmarks/crash_accuracy.py runs tests/integration/test_crash.py in a subprocess: the
    test, what it imports and the conftest.py files above it measure as much as the script."""
    tmp_path = tmp_path / "repo"
    tmp_path.mkdir()
    (tmp_path.parent / "outside.py").write_text("x = 1\n")  # a file, but not the repository's
    _git(tmp_path, "init", "-q")
    _commit(tmp_path, "streamer/core.py", "x = 1\n")
    _commit(tmp_path, "tests/conftest.py", "import pytest\n")
    _commit(tmp_path, "tests/integration/harness.py", "from streamer.core import x\n")
    _commit(tmp_path, "tests/integration/test_kill.py",
            "from tests.integration.harness import x\n\ndef test_kill():\n    assert x\n")
    measured = _commit(tmp_path, "benchmarks/speed.py",
                       'import subprocess\nsubprocess.run(["pytest", "tests/integration/test_kill.py"])\n'
                       'NOT_A_FILE = "tests/integration/missing.py"\nOUTSIDE = "../outside.py"\n')
    assert sorted(freshness.script_files("benchmarks/speed.py", tmp_path)) == [
        "benchmarks/speed.py", "tests/conftest.py", "tests/integration/harness.py",
        "tests/integration/test_kill.py"]  # streamer/ by its tree; a missing or outside file not at all
    result = _result(tmp_path, "speed.json", measured)
    assert freshness.freshness(result, tmp_path).fresh

    for path in ("tests/integration/test_kill.py", "tests/integration/harness.py", "tests/conftest.py"):
        _commit(tmp_path, path, (tmp_path / path).read_text() + "# changed\n")
        assert freshness.freshness(result, tmp_path).why_stale == f"its code changed since: {path}"
        result = _result(tmp_path, "speed.json", _git(tmp_path, "rev-parse", "HEAD"))
        assert freshness.freshness(result, tmp_path).fresh
