"""The tiny HTTP server on the metrics port: /metrics, /healthz, /readyz, /status.

Plain asyncio (no web framework): four read-only GET endpoints do not justify a dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class StatusServer:
    """Serves the service's health and metrics on ``host:port``.

    ``ready`` and ``status`` are callables so the server never holds stale state. ``host``
    is the one address listened on (``127.0.0.1``: this machine only; ``0.0.0.0``: every
    IPv4 interface, as a container needs). Nothing here is authenticated, so ``status``
    must return only what any client on that network may read (secrets masked).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        status: Callable[[], dict[str, Any]],
        host: str = "0.0.0.0",
        port: int = 9100,
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.status = status
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> StatusServer:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}; "
                "choose another --metrics-port (0 = any free port)"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    def route(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Answer one request: (status code, content type, body)."""
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ready = self.ready()
            return (200, "text/plain", b"ready\n") if ready else (503, "text/plain", b"not ready\n")
        if path == "/status":
            body = orjson.dumps(self.status(), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2)
            return 200, "application/json", body + b"\n"
        return 404, "text/plain", b"try /metrics, /healthz, /readyz or /status\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = request.decode("latin-1").split()
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            if len(parts) < 2:
                return
            try:
                code, content_type, body = self.route(parts[0], parts[1])
            except Exception:  # a failing status callback must not kill the server
                log.exception("HTTP %s failed", parts[1])
                # the error's text stays in the log: it may name internals a client should not see
                code, content_type, body = 503, "text/plain", b"error; see the service log\n"
            head = (
                f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head + (b"" if parts[0] == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
