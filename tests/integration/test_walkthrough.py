"""The "Run it yourself" walkthrough of docs/getting-started.md, run block by block as written.

Each block marked ``<!-- walkthrough: NAME -->`` runs unchanged but for its ports (a free one
for 9092 and for 9100): the broker and the service in the background, `/readyz` polled until
200, the annotator started and awaited until it says it joined, the producer run to its end.
It is also the test of the first minute: a client that streams right after `/readyz` = 200,
with its annotator started as the walkthrough says, gets real predictions once its first
labels came back.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.broker import free_port

pytestmark = pytest.mark.integration

WALKTHROUGH = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
BLOCK = re.compile(r"<!-- walkthrough: (?P<name>[\w.]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S)
RATE = 200  # items/s, the producer's
# the service decides what arrived since its last fetch (10 ms wait): at 200 items/s one
# micro-batch is a handful of items; 32 bounds it with room for a busy 2-core machine
MICRO_BATCH = 32


def walkthrough_blocks() -> dict[str, str]:
    return {m["name"]: m["code"] for m in BLOCK.finditer(WALKTHROUGH.read_text())}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder whose ``.venv/bin/activate`` puts this interpreter's ``streamer`` on PATH."""
    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    return tmp_path


@pytest.fixture
def ports() -> dict[str, str]:
    return {"9092": str(free_port()), "9100": str(free_port())}


def _as_written(code: str, ports: dict[str, str]) -> str:
    for written, free in ports.items():
        code = code.replace(written, free)
    return code


@pytest.fixture
def background(workdir: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in reversed(started):
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _start(command: list[str], workdir: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(command, cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(predicate, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    shown = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs if log.exists())
    raise AssertionError(f"{what} within {timeout:.0f} s\n{shown}")


def test_the_walkthrough_runs_as_written_and_predicts_once_labels_come_back(
    workdir: Path, ports: dict[str, str], background: list[subprocess.Popen[str]]
) -> None:
    blocks = walkthrough_blocks()
    assert {"broker", "service", "ready", "annotator.py", "producer.py", "watch"} <= blocks.keys()
    logs = {name: workdir / f"{name}.log" for name in ("broker", "service", "annotator")}

    for name in ("broker", "service"):
        background.append(_start(["bash", "-c", _as_written(blocks[name], ports)], workdir, logs[name]))
        if name == "broker":
            _wait_for(lambda: "listening" in logs["broker"].read_text(), 30, "the broker listens",
                      list(logs.values()))

    def ready() -> bool:
        answer = subprocess.run(["bash", "-c", _as_written(blocks["ready"], ports)], cwd=workdir,
                                capture_output=True, text=True)
        return answer.stdout.strip() == "200"

    _wait_for(ready, 60, "/readyz answers 200", list(logs.values()))

    for name in ("annotator.py", "producer.py"):
        (workdir / name).write_text(_as_written(blocks[name], ports))
    background.append(_start([sys.executable, "annotator.py"], workdir, logs["annotator"]))
    _wait_for(lambda: "annotator: joined" in logs["annotator"].read_text(), 60,
              "the annotator joins its group", list(logs.values()))

    produced = subprocess.run([sys.executable, "producer.py"], cwd=workdir, capture_output=True,
                              text=True, timeout=180)
    assert produced.returncode == 0, produced.stderr
    output = produced.stdout
    assert "sent 2000 items, got 2000 predictions" in output, output
    nulls = int(re.search(r"null predictions \(before the first label came back\): (\d+)", output)[1])
    accuracy = float(re.search(r"accuracy over the last 1000 items: ([\d.]+)", output)[1])
    # the first label's round trip, as the annotator measured it
    answered = logs["annotator"].read_text()
    delay = float(re.search(r"labelled item-\d+ \w+ \([a-z_]+, ([\d.]+) s after the request\)",
                            answered)[1])
    bound = math.ceil(delay * RATE) + MICRO_BATCH
    assert nulls <= bound, f"{nulls} null predictions, more than {bound} (first label delay {delay} s)"
    assert accuracy > 0.9, output  # alarm = temperature + vibration > 0.5: learnable

    watched = subprocess.run(["bash", "-c", _as_written(blocks["watch"], ports)], cwd=workdir,
                             capture_output=True, text=True, timeout=30)
    assert '"items_seen": 2000' in watched.stdout, watched.stdout
    assert '"partitions"' in watched.stdout and "streamer_labels_total" in watched.stdout
    print(f"\nwalkthrough: {nulls} null predictions (bound {bound}, first label after {delay} s), "
          f"accuracy over the last 1000 items {accuracy}")
