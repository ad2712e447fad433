"""A labelling edge's HTTP app: the endpoints every process has (:mod:`streamer.http`) plus
/payload, the frames behind ``payload_uri`` (from under ``--payload-root`` only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from streamer.http import health_app
from streamer.label.payload import PAYLOAD_PATH, PayloadRefused, payload_file

if TYPE_CHECKING:
    from streamer.label.edge import EdgeMetrics


def edge_app(metrics: EdgeMetrics, ready: Callable[[], bool], status: Callable[[], dict[str, Any]],
             payload_root: Path | None) -> web.Application:
    """An aiohttp app with the endpoints every edge has; add the edge's own routes to it.

    ``metrics`` is the edge's :class:`~streamer.label.edge.EdgeMetrics`: its ready gauge reads
    ``ready`` at each scrape, so ``/metrics`` and ``/readyz`` always agree.
    """
    metrics.ready.set_function(lambda: float(ready()))

    async def payload(request: web.Request) -> web.StreamResponse:
        try:
            path, content_type = payload_file(request.query.get("uri", ""), payload_root)
        except PayloadRefused as exc:
            return web.Response(text=f"{exc}\n", status=404)
        return web.FileResponse(path, headers={"Content-Type": content_type,
                                               "X-Content-Type-Options": "nosniff"})

    app = health_app(metrics.registry, ready, status)
    app.router.add_get(PAYLOAD_PATH, payload)
    return app
