"""The HTTP endpoints of every streamer process: /metrics, /healthz, /readyz, /status, on aiohttp.

aiohttp rather than a hand-written server (which raised a traceback on a 64 KiB request line
and let headers trickled a line at a time hold a connection open): its parser bounds the request
line and each header field (8190 bytes; longer ones are answered 400), a body is bounded by
``MAX_BODY_BYTES``, and a connection that has not sent a whole request within ``IDLE_SECONDS``
is closed, however slowly its bytes arrive. The labelling edges add their routes to the same app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0  # a connection must send a whole request within this
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


def _quiet_bad_requests() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestsInOneLine) for f in server.filters):
        server.addFilter(_BadRequestsInOneLine())


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2)
                        + b"\n", status=status, content_type="application/json")


def health_app(registry: CollectorRegistry, ready: Callable[[], bool],
               status: Callable[[], dict[str, Any]]) -> web.Application:
    """/metrics, /healthz, /readyz and /status (GET or HEAD); add a process's own routes to it.

    ``ready`` and ``status`` are callables, so nothing shown is stale. Nothing here is
    authenticated: ``status`` must return only what anyone on that network may read.
    """

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready\n") if ready() else web.Response(text="not ready\n", status=503)

    async def status_page(request: web.Request) -> web.Response:
        try:
            return json_response(status())
        except Exception:  # a failing status callback must not take the endpoints down
            log.exception("HTTP %s failed", request.path)
            # the error's text stays in the log: it may name internals a client should not see
            return web.Response(text="error; see the service log\n", status=503)

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_helpful_404])
    for path, handler in (("/metrics", metrics), ("/healthz", healthz), ("/readyz", readyz),
                          ("/status", status_page)):
        app.router.add_get(path, handler)  # GET routes answer HEAD too
    return app


@web.middleware
async def _helpful_404(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(text="try /metrics, /healthz, /readyz or /status\n", status=404)


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 = any free port); return the runner and the port."""
    _quiet_bad_requests()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=IDLE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another port "
                      "(--metrics-port / --port; 0 = any free port)") from exc
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class StatusServer:
    """The service's endpoints on ``host:port`` (``127.0.0.1``: this machine only; ``0.0.0.0``:
    every IPv4 interface, as a container needs)."""

    def __init__(self, registry: CollectorRegistry, ready: Callable[[], bool],
                 status: Callable[[], dict[str, Any]], host: str = "0.0.0.0", port: int = 9100) -> None:
        self.app = health_app(registry, ready, status)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def addresses(self) -> set[str]:
        """The addresses it listens on."""
        assert self._runner is not None
        return {sock.getsockname()[0] for site in self._runner.sites
                for sock in site._server.sockets}  # type: ignore[union-attr]

    async def start(self) -> StatusServer:
        try:
            self._runner, self.port = await serve(self.app, self.host, self.port)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {self.host}:{self.port}: {exc.__cause__ or exc}; "
                          "choose another --metrics-port (0 = any free port)") from exc
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
