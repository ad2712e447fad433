"""Which results in ``benchmarks/results/`` measured the code at HEAD, and which are stale.

A result is fresh when the run recorded (see ``machine.py``) a ``streamer/`` tree equal to
HEAD's, no uncommitted changes in ``streamer/`` or ``benchmarks/``, and the script it names in
``command`` has not changed between its commit and HEAD, nor any script of ours it imports or
runs (a path such as ``"tests/integration/test_crash.py"`` written in it), nor, for a test it
runs, the ``conftest.py`` files above that test.
Anything else names what moved since: rerun the benchmark that writes it (``make bench``
reruns them all).

    python benchmarks/freshness.py            # a table, one line per results file
    python benchmarks/freshness.py --check    # and exit 1 when one is stale

The records of how defaults were chosen (``DECISIONS``) are measured at the commits they name
on purpose, and the anchor cache is not a result: both are listed apart and never stale.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DECISIONS = frozenset({"label_efficiency_choice_members.json", "label_efficiency_choice_warmup.json",
                       "label_efficiency_portfolio.json", "label_efficiency_warmup_egl.json"})
NOT_RESULTS = frozenset({"label_efficiency_anchors.json"})
SCRIPT_DIRS = ("benchmarks", "docs/tools")  # where a script's own imports are found


@dataclass(frozen=True)
class Freshness:
    name: str
    commit: str | None
    date: str | None
    why_stale: str | None  # None: fresh

    @property
    def fresh(self) -> bool:
        return self.why_stale is None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def freshness(path: Path, root: Path = ROOT) -> Freshness:
    """How the result at ``path`` stands against HEAD of the repository at ``root``."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return Freshness(path.name, None, None, f"unreadable: {exc}")
    machine = doc.get("machine") if isinstance(doc, dict) else None
    machine = machine if isinstance(machine, dict) else {}
    commit, tree, date = machine.get("git_commit"), machine.get("streamer_tree"), machine.get("date")
    if not commit or not tree:
        return Freshness(path.name, commit, date, "records no commit or streamer/ tree")
    if machine.get("streamer_uncommitted_changes") or machine.get("benchmarks_uncommitted_changes"):
        return Freshness(path.name, commit, date, "measured with uncommitted changes")
    head_tree = _git(root, "rev-parse", "HEAD:streamer").stdout.strip()
    if tree != head_tree:
        return Freshness(path.name, commit, date, f"streamer/ changed since (tree {tree[:7]}, HEAD {head_tree[:7]})")
    command = shlex.split(doc.get("command") or "")
    code = script_files(command[0], root) if command and command[0].endswith(".py") else []
    if not code:
        return Freshness(path.name, commit, date, "records no script in its command")
    moved = _git(root, "diff", "--name-only", commit, "HEAD", "--", *code)
    if moved.returncode != 0:
        return Freshness(path.name, commit, date, f"commit {commit[:7]} not in this repository")
    if moved.stdout.strip():
        files = moved.stdout.split()
        return Freshness(path.name, commit, date, f"its code changed since: {', '.join(files[:3])}"
                         + (f" and {len(files) - 3} more" if len(files) > 3 else ""))
    return Freshness(path.name, commit, date, None)


def script_files(script: str, root: Path = ROOT) -> list[str]:
    """``script`` (relative to ``root``) and every file of ours it depends on, at any depth, as
    paths relative to ``root``; [] when ``script`` does not exist.

    It depends on the modules it imports (``import helper`` from ``benchmarks/`` or
    ``docs/tools/``, ``tests.integration.harness`` by its dotted path) and the Python files it
    names in a string (a script it runs: ``"tests/integration/test_crash.py"``); a test under
    ``tests/`` also on the ``conftest.py`` files of its folder and those above it. ``streamer/``
    is left out: its tree hash is checked whole."""
    root = root.resolve()
    found: list[str] = []
    todo = [root / script]
    while todo:
        path = todo.pop()
        relative = path.relative_to(root).as_posix()
        if relative in found or not path.is_file():
            continue
        found.append(relative)
        if relative.startswith("tests/"):
            todo += [folder / "conftest.py" for folder in path.parents
                     if folder.is_relative_to(root / "tests")]
        todo += _dependencies(ast.parse(path.read_text()), root)
    return found


def _dependencies(tree: ast.AST, root: Path) -> list[Path]:
    wanted: list[Path] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            wanted.append(root / node.value)  # kept only if it is a file of this repository
            continue
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
        for name in names:
            top = name.split(".")[0]
            wanted += [root / folder / f"{top}.py" for folder in SCRIPT_DIRS]
            wanted.append(root / (name.replace(".", "/") + ".py"))
    inside = [path.resolve() for path in wanted if path.is_file()]  # "../x.py" may leave the root
    return [path for path in inside if path.is_relative_to(root)
            and not path.relative_to(root).as_posix().startswith("streamer/")]


def report(results: Path = RESULTS, root: Path = ROOT) -> tuple[list[Freshness], list[str]]:
    """Every result's freshness, and the files that are never stale (decisions, the cache)."""
    checked, apart = [], []
    for path in sorted(results.glob("*.json")):
        if path.name in DECISIONS or path.name in NOT_RESULTS:
            apart.append(path.name)
        else:
            checked.append(freshness(path, root))
    return checked, apart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a result is stale")
    args = parser.parse_args(argv)
    checked, apart = report()
    width = max((len(f.name) for f in checked), default=10)
    for f in checked:
        state = "fresh" if f.fresh else f"STALE: {f.why_stale}"
        print(f"{f.name:<{width}}  {(f.commit or '-')[:7]:<7}  {(f.date or '-')[:16]:<16}  {state}")
    stale = [f for f in checked if not f.fresh]
    print(f"\n{len(checked) - len(stale)} of {len(checked)} results measured the code at HEAD"
          + (f"; not checked: {', '.join(apart)}" if apart else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
