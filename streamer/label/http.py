"""The HTTP side of a labelling edge, on aiohttp: /metrics, /healthz, /readyz, /status, /payload.

aiohttp (not the service's hand-written server) because an edge also takes POSTs from browsers
and webhooks: its parser bounds request lines and header fields (8190 bytes each) and answers 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamer.label.payload import PAYLOAD_PATH, PayloadRefused, payload_file

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_048_576  # a webhook or an answer is small; larger bodies are refused (413)


class _BadRequestsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (a 100 KB header, say) at ERROR with its traceback;
    it has already answered 400: keep one WARNING line, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args, record.exc_info, record.exc_text = (
                "bad HTTP request from %s answered %d: %.200s", (remote, exc.code, exc.message),
                None, None)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_requests() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestsInOneLine) for f in server.filters):
        server.addFilter(_BadRequestsInOneLine())


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
                        status=status, content_type="application/json")


def edge_app(registry: CollectorRegistry, ready: Callable[[], bool], status: Callable[[], dict[str, Any]],
             payload_root: Path | None) -> web.Application:
    """An aiohttp app with the endpoints every edge has; add the edge's own routes to it."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready\n") if ready() else web.Response(text="not ready\n", status=503)

    async def status_page(_: web.Request) -> web.Response:
        return json_response(status())

    async def payload(request: web.Request) -> web.StreamResponse:
        try:
            path, content_type = payload_file(request.query.get("uri", ""), payload_root)
        except PayloadRefused as exc:
            return web.Response(text=f"{exc}\n", status=404)
        return web.FileResponse(path, headers={"Content-Type": content_type,
                                               "X-Content-Type-Options": "nosniff"})

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status_page)
    app.router.add_get(PAYLOAD_PATH, payload)
    return app


async def start_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 = any free port); return the runner and the port."""
    quiet_bad_requests()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another "
                      "--metrics-port (0 = any free port)") from exc
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound


async def wait_forever(stop: asyncio.Event) -> None:
    await stop.wait()
