"""One way to write a benchmark's results file: the payload plus where, on what code, how long.

Every results file in ``benchmarks/results/`` goes through :func:`write_result`, which adds

- ``machine``: host, CPU, Python, the versions of the libraries that matter (numpy, river,
  aiokafka; torch, scikit-activeml and faust where installed; what the script adds, e.g. the
  Redis server's version), the date, and the git state when the run started: the commit, the
  hash of the ``streamer/`` tree at that commit (the code measured: a later commit that changes
  only docs measures the same tree) and whether ``streamer/`` or ``benchmarks/`` (its results
  aside) had uncommitted changes;
- ``wall_s``: seconds from :meth:`Start.now` to the write;
- ``command``: the command line as run.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# key in the machine block -> the distribution; each recorded only where it is installed
LIBRARIES = {"numpy": "numpy", "river": "river", "aiokafka": "aiokafka", "torch": "torch",
             "scikit-activeml": "scikit-activeml", "faust": "faust-streaming"}
ADDED_KEYS = ("machine", "wall_s", "command")


@dataclass(frozen=True)
class Start:
    """When a benchmark started and the git state of the code it loaded then (a run of an hour
    must not record a commit made while it ran)."""

    clock: float
    date: str
    git: dict[str, Any]

    @classmethod
    def now(cls) -> Start:
        return cls(time.perf_counter(), datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                   git_state())


def write_result(path: Path, payload: dict[str, Any], started: Start, *,
                 dump: Callable[[Any], str] = lambda doc: json.dumps(doc, indent=2),
                 **versions: str | None) -> dict[str, Any]:
    """Write ``payload`` with the machine block, ``wall_s`` and ``command`` to ``path``
    (atomically, as ``dump`` renders it); return the document written.

    ``versions`` add to (or override) the machine block: ``redis_server="7.0.15"``,
    ``torch_threads="2"``.
    """
    clash = [key for key in ADDED_KEYS if key in payload]
    if clash:
        raise ValueError(f"the payload for {path.name} already has {', '.join(clash)}: write_result adds them")
    doc = {**payload, "machine": machine(started, **versions),
           "wall_s": round(time.perf_counter() - started.clock, 1), "command": shlex.join(sys.argv)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(dump(doc) + "\n")
    partial.replace(path)
    return doc


def machine(started: Start, **versions: str | None) -> dict[str, Any]:
    """Host, CPU, Python, the library versions, the start date and the git state."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **library_versions(),
        **{key: value for key, value in versions.items() if value is not None},
        "date": started.date,
        **started.git,
    }


def library_versions() -> dict[str, str]:
    """The installed versions of :data:`LIBRARIES`, from their metadata (nothing is imported:
    faust, once imported, leaves a module that importlib cannot look up)."""
    found = {}
    for key, distribution in LIBRARIES.items():
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_state() -> dict[str, Any]:
    """The commit, the hash of its ``streamer/`` tree, and uncommitted changes in ``streamer/``
    and in ``benchmarks/`` (its results left out: a benchmark run rewrites them). ``None``
    values outside a git checkout."""
    try:
        return {
            "git_commit": _git("rev-parse", "--short", "HEAD"),
            "streamer_tree": _git("rev-parse", "HEAD:streamer"),
            "streamer_uncommitted_changes": bool(_git("status", "--porcelain", "--", "streamer")),
            "benchmarks_uncommitted_changes": bool(_git("status", "--porcelain", "--", "benchmarks",
                                                        ":(exclude)benchmarks/results")),
        }
    except (OSError, subprocess.SubprocessError):
        return dict.fromkeys(("git_commit", "streamer_tree", "streamer_uncommitted_changes",
                              "benchmarks_uncommitted_changes"))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def redis_server_version(url: str | None) -> str | None:
    """The version of the Redis server at ``url`` (None without one, or when it does not answer)."""
    if url is None:
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except (redis.RedisError, OSError, KeyError):
        return None
