"""The HTTP endpoints on the metrics port, over a real socket."""

from __future__ import annotations

import asyncio

from streamer.http import StatusServer
from streamer.metrics import Metrics


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
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
        raise RuntimeError("boom")

    server = await StatusServer(Metrics().registry, ready=lambda: True, status=broken,
                                host="127.0.0.1", port=0).start()
    try:
        assert (await _get(server.port, "/status"))[0] == 503
        assert (await _get(server.port, "/healthz"))[0] == 200
    finally:
        await server.stop()
