"""The HTTP endpoints on the metrics port, over a real socket: answers, bound address, no secrets."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from streamer.config import load_settings
from streamer.http import StatusServer
from streamer.metrics import Metrics


async def _get(port: int, path: str, extra: str = "") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_endpoints_answer_health_readiness_status_and_metrics() -> None:
    metrics = Metrics()
    metrics.items.inc(7)
    ready = {"value": False}
    server = await StatusServer(metrics.registry, ready=lambda: ready["value"],
                                status=lambda: {"items_seen": 7}, host="127.0.0.1", port=0).start()
    try:
        assert (await _get(server.port, "/healthz"))[0] == 200
        assert (await _get(server.port, "/readyz"))[0] == 503
        ready["value"] = True
        assert (await _get(server.port, "/readyz"))[0] == 200
        code, body = await _get(server.port, "/status")
        assert code == 200 and b'"items_seen": 7' in body
        code, body = await _get(server.port, "/metrics")
        assert code == 200 and b"streamer_items_total 7.0" in body
        assert (await _get(server.port, "/nope"))[0] == 404
    finally:
        await server.stop()


async def test_a_failing_status_callback_answers_503_and_the_server_lives_on() -> None:
    def broken() -> dict:
        raise RuntimeError("boom: redis://:hunter2@cache")

    server = await StatusServer(Metrics().registry, ready=lambda: True, status=broken,
                                host="127.0.0.1", port=0).start()
    try:
        code, body = await _get(server.port, "/status")
        assert code == 503 and b"hunter2" not in body  # the error's text stays in the log
        assert (await _get(server.port, "/healthz"))[0] == 200
    finally:
        await server.stop()


async def _reachable(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=2)
    except OSError:
        return False
    writer.close()
    return True


async def test_the_server_listens_only_on_the_configured_address() -> None:
    everywhere = await StatusServer(Metrics().registry, ready=lambda: True, status=dict,
                                    host="0.0.0.0", port=0).start()
    try:
        if not await _reachable("127.0.0.2", everywhere.port):
            pytest.skip("this host does not route 127.0.0.2 to the loopback interface")
    finally:
        await everywhere.stop()

    server = await StatusServer(Metrics().registry, ready=lambda: True, status=dict,
                                host="127.0.0.1", port=0).start()
    try:
        assert server.addresses == {"127.0.0.1"}
        assert (await _get(server.port, "/healthz"))[0] == 200
        assert not await _reachable("127.0.0.2", server.port)  # another address of this host
    finally:
        await server.stop()


async def test_status_shows_the_settings_with_every_secret_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {
        "sasl_password": "SASL-PASSWORD-8c1f",
        "redis_password": "REDIS-PASSWORD-77ab",
        "checkpoint_key": "CHECKPOINT-KEY-5e2d-0123456789",
    }
    (tmp_path / "url").write_text("rediss://app@cache:6380/0\n")
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="app",
        redis_url_file=tmp_path / "url", redis_ssl_cert_reqs="none", metrics_host="127.0.0.1",
        metrics_port=0, **secrets,
    )  # fmt: skip
    logging.getLogger("streamer").info("starting with %s", settings.public())  # as `streamer run`
    server = await StatusServer(Metrics().registry, ready=lambda: True,
                                status=lambda: {"settings": settings.public()},
                                host=settings.metrics_host, port=settings.metrics_port).start()
    try:
        code, body = await _get(server.port, "/status")
    finally:
        await server.stop()
    assert code == 200
    shown = orjson.loads(body)["settings"]
    for name, secret in secrets.items():
        assert secret.encode() not in body and secret not in caplog.text
        assert shown[name] == "**********"
    assert shown["redis_url_file"] == str(tmp_path / "url")


async def test_an_oversized_request_line_is_answered_400_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect 6 (issue 18): a 100 KiB request line raised a ValueError traceback."""
    server = await StatusServer(Metrics().registry, ready=lambda: True, status=dict,
                                host="127.0.0.1", port=0).start()
    try:
        with caplog.at_level(logging.DEBUG):
            code, _ = await _get(server.port, "/status?" + "x" * 100_000)
            header_code, _ = await _get(server.port, "/status", extra="X-Big: " + "y" * 100_000 + "\r\n")
        assert code in (400, 414) and header_code in (400, 431)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert (await _get(server.port, "/healthz"))[0] == 200
    finally:
        await server.stop()


async def test_headers_trickled_slowly_do_not_hold_a_connection_open() -> None:
    """Defect 6 (issue 18): a header line every second kept a connection open for ever."""
    server = await StatusServer(Metrics().registry, ready=lambda: True, status=dict,
                                host="127.0.0.1", port=0).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        closed_after = None
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(15):
            await asyncio.sleep(1.0)
            try:
                writer.write(f"X-Slow-{i}: y\r\n".encode())
                await writer.drain()
            except ConnectionError:
                closed_after = loop.time() - started
                break
            if reader.at_eof() or (await _closed(reader)):
                closed_after = loop.time() - started
                break
        writer.close()
        assert closed_after is not None and closed_after < 12, "the server closed the slow connection"
    finally:
        await server.stop()


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=0.01)
    except TimeoutError:
        return False
    return data == b""
