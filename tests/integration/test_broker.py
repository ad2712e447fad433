"""`streamer broker`: the embedded Tansu broker in the foreground, as a user starts it."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from streamer.broker import BrokerError, EmbeddedBroker

pytestmark = pytest.mark.integration


def test_a_second_broker_on_a_taken_port_exits_1_and_says_why(kafka: EmbeddedBroker) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "broker", "--port", str(kafka.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{kafka.port}" in result.stderr
    assert "Tansu listening" not in result.stderr
    assert kafka.running  # the first broker is untouched


def test_an_embedded_broker_on_a_taken_port_raises_before_starting_tansu(kafka: EmbeddedBroker) -> None:
    second = EmbeddedBroker(port=kafka.port)
    with pytest.raises(BrokerError, match="pick another port"):
        second.start()
    assert not second.running


def test_streamer_broker_serves_until_sigterm_and_stops_its_tansu(tmp_path) -> None:
    from streamer.broker import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "broker", "--port", str(port)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        assert f"Tansu listening on 127.0.0.1:{port}" in process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
    EmbeddedBroker(port=port).start().stop()  # the port is free again: its Tansu is gone
