"""Drive a real `streamer run` process against the real broker and Redis, like a user would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamer.broker import free_port
from streamer.replay import LabelledStream, load_stream

SEA_ITEMS = 20_000  # the generated SEA stream's length: its drift sits at item 10,000


def sea_stream(items: int, seed: int) -> LabelledStream:
    """The first ``items`` of a seeded, generated SEA stream whose drift is at item 10,000.

    Generated in process, so every checkout (a lone clone too) tests on the same items.
    """
    whole = load_stream(None, max_items=SEA_ITEMS, seed=seed)
    return LabelledStream(whole.name, whole.ids[:items], whole.X[:items], whole.y[:items],
                          None, seed)


class CliProcess:
    """`python -m streamer.cli COMMAND ...` in a subprocess with its HTTP port (``port_flag``)."""

    def __init__(self, command: str, bootstrap: str, flags: dict[str, Any], log_path: Path,
                 port_flag: str = "--metrics-port", env: dict[str, str] | None = None,
                 env_defaults: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = [sys.executable, "-m", "streamer.cli", command,
                     "--bootstrap-servers", bootstrap, port_flag, str(self.port)]
        for name, value in flags.items():
            if value is not None:
                self.args += [f"--{name}", str(value)]
        self.log_path = log_path
        self.env, self.env_defaults = env or {}, env_defaults or {}
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start it; the environment is read now (a test may have changed it since)."""
        env = {**self.env_defaults, **os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def wait_code(self, path: str, code: int, timeout: float = 10.0) -> int:
        """Poll ``path`` until it answers ``code``; return the last code seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.get(path)[0]
            if seen == code or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        return json.loads(body)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill9(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed -- a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition") -> dict[str, Any]:
        """Poll /status until ``predicate`` holds. A poll the process does not answer in time (a
        busy 2-core machine) is tried again; a process that exited fails at once."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            code, body = self.get("/status")
            if code == 200:
                status = json.loads(body)
                if predicate(status):
                    return status
            elif self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{what}: the process exited with {self.process.returncode}\n{self.log()}")
            time.sleep(0.25)
        raise TimeoutError(f"{what} not reached in {timeout} s; last status {status}\n{self.log()}")


class ServiceProcess(CliProcess):
    """`python -m streamer.cli run ...` in a subprocess with its HTTP port."""

    def __init__(self, bootstrap: str, flags: dict[str, Any], log_path: Path) -> None:
        super().__init__("run", bootstrap, flags, log_path,
                         env_defaults={"STREAMER_CHECKPOINT_KEY": "integration-test-key-0123456789"})

    def start(self, ready_timeout: float = 60.0) -> ServiceProcess:
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()}")
            if self.get("/readyz")[0] == 200:
                return self
            time.sleep(0.2)
        raise TimeoutError(f"service not ready in {ready_timeout} s:\n{self.log()}")

async def produce(bootstrap: str, topic: str, values: Sequence[tuple[bytes | None, bytes | None]],
                  headers: Sequence[list[tuple[str, bytes]] | None] | None = None) -> None:
    """Send (key, value) pairs and wait until the broker acknowledged all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=(headers[i] if headers else None))
            for i, (key, value) in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expect: int | None = None,
                      idle_s: float = 3.0, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Read a topic from the start until `expect` messages arrived or it stays idle `idle_s`."""
    # metadata_max_age_ms: on a busy machine the first metadata may list only some of the
    # topic's partitions; refreshed every second, the others are read too (else after 5 min)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                metadata_max_age_ms=1000)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out += [orjson.loads(r.value) for r in records]
                last = time.monotonic()
            if expect is not None and len(out) >= expect:
                break
            if expect is None and out and time.monotonic() - last > idle_s:
                break
    finally:
        await consumer.stop()
    return out


async def annotate(bootstrap: str, topics: dict[str, str], annotator: Any, stop: asyncio.Event,
                   wrap: Any = None) -> None:
    """Run ``annotator`` (streamer.replay.Annotator) on the label-requests topic until ``stop``.

    ``wrap`` may replace the producer the annotator sends labels with (e.g. to time them).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(topics["label-requests-topic"], bootstrap_servers=bootstrap,
                                group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await producer.start()
    await consumer.start()
    try:
        sender = producer if wrap is None else wrap(producer)
        await annotator.run(consumer, sender, topics["labels-topic"], stop)
    finally:
        await consumer.stop()
        await producer.stop()


async def produce_steadily(bootstrap: str, topic: str, stream: Any, count: int, rate: int) -> None:
    """Send the first ``count`` items of ``stream`` (a LabelledStream) at about ``rate`` items/s,
    a tenth of a second's worth at a time, as a sensor would."""
    from streamer.wire import encode_item

    step = max(1, rate // 10)
    for start in range(0, count, step):
        stop = min(count, start + step)
        await produce(bootstrap, topic, [
            (stream.ids[i].encode(), encode_item(id=stream.ids[i], features=stream.X[i]))
            for i in range(start, stop)
        ])
        await asyncio.sleep(0.1)
