"""``streamer annotate --web``: a labelling page for people, served by the edge itself.

The edge reads ``label-requests`` in its own consumer group (``streamer-annotate-web``) into a
:class:`~streamer.label.claims.ClaimQueue` and serves one page (``GET /``) and a small JSON API:

- ``GET /api/next?annotator=NAME[&wait=S]``: claim the most uncertain open request for
  ``claim_seconds`` (``{"item": null}`` when none arrived within ``wait`` seconds, at most 25);
- ``POST /api/answer {"id", "claim", "label"}``: the label (a class's text, a new class is
  allowed) goes to the ``labels`` topic as ``annotator=NAME``; the answer returns once the broker
  acknowledged it, and only then is the request's offset finishable;
- ``POST /api/skip {"id", "claim"}``: no label is written; the service keeps the item pending
  and forgets it once its pending TTL passes (``streamer_join_outcomes`` counts nothing for it);
- ``GET /api/stats``: the labels this page gave (per annotator), the queue, skips, expiries;
- and every edge's ``/metrics``, ``/healthz``, ``/readyz`` (ready once the group gave this
  edge partitions), ``/status`` and ``/payload`` (``file://`` frames under ``--payload-root``).

A claim that runs out returns the item to the queue; answering it then is refused (409), so
several annotators never label one item twice. Offsets are committed only past finished
requests: answered (label acknowledged), skipped, expired, duplicate or dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import time
from collections import Counter
from importlib.resources import files
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from streamer.config import Settings
from streamer.http import json_response, serve
from streamer.label.claims import ClaimQueue, Refused
from streamer.label.edge import LabelEdge, ReadRequest, keep_committing
from streamer.label.http import edge_app
from streamer.label.payload import payload_url
from streamer.label.requests import ClassBook, LabelRequest, features_table

log = logging.getLogger(__name__)

MAX_FEATURES_SHOWN = 200
MAX_WAIT_SECONDS = 25.0
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")  # an annotator's name: 1-64 printable characters
_LABEL_MAX = 256


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


async def _no_icon(_: web.Request) -> web.Response:
    return web.Response(status=204)


def _page() -> tuple[bytes, str]:
    """The page, and the Content-Security-Policy that allows its one inline script only."""
    html = (files("streamer.label") / "web_page.html").read_text(encoding="utf-8")
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src 'self' data: http: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return html.encode(), csp


def _features(features: list[float] | dict[str, float] | None) -> tuple[list[list[Any]], int]:
    """Rows (name, value) to show, and how many more were left out."""
    pairs = list(features_table(features).items())
    return [[str(k), v] for k, v in pairs[:MAX_FEATURES_SHOWN]], max(0, len(pairs) - MAX_FEATURES_SHOWN)


class WebEdge:
    """The queue, the classes and the counts of one labelling page, on a started LabelEdge."""

    def __init__(self, settings: Settings, edge: LabelEdge) -> None:
        self.settings = settings
        self.edge = edge
        self.book = ClassBook(settings.declared_classes)
        self.queue = ClaimQueue(settings.claim_seconds, settings.pending_ttl_seconds,
                                on_finished=edge.finished)
        self.given: Counter[str] = Counter()  # annotator -> labels acknowledged
        self._expired_seen = 0
        self.budget: dict[str, Any] | None = None
        self.page, self.csp = _page()

    # ---- the Kafka side ----
    def took(self, reads: list[ReadRequest], now: float) -> None:
        for read in reads:
            self.book.see(read.request)
            self.queue.add(read, now)
        self.tidy(now)

    def tidy(self, now: float) -> None:
        self.queue.tidy(now)
        m = self.edge.metrics
        expired = self.queue.counts["expired"]
        if expired > self._expired_seen:
            m.expired.inc(expired - self._expired_seen)
            self._expired_seen = expired
        m.queue.set(self.queue.open_count())

    async def read_forever(self, stop: asyncio.Event) -> None:
        """Fill the queue until ``stop``; drop what a rebalance moved to another edge."""
        held: set[Any] = set()
        while not stop.is_set():
            try:
                reads = await self.edge.read(timeout_ms=200)
            except KafkaError as exc:
                log.warning("annotate-web: reading label requests failed (retrying): %s", exc)
                await asyncio.sleep(1.0)
                continue
            self.took(reads, time.time())
            now_held = set(self.edge.watch.partitions) if self.edge.watch else set()
            if held - now_held:
                self.queue.forget(held - now_held)
            held = now_held

    # ---- the HTTP side ----
    def item(self, read: ReadRequest, token: str, annotator: str) -> dict[str, Any]:
        r: LabelRequest = read.request
        rows, more = _features(r.features)
        return {
            "id": r.id, "claim": token, "claim_seconds": self.settings.claim_seconds,
            "annotator": annotator, "features": rows, "features_more": more,
            "payload_url": payload_url(r.payload_uri, ""),
            "payload_uri": r.payload_uri,
            "prediction": None if r.prediction is None else str(r.prediction),
            "proba": sorted(([k, p] for k, p in r.proba.items()), key=lambda kp: -kp[1]),
            "classes": list(self.book.names), "reason": r.reason, "scores": r.scores,
            "requested_at": r.requested_at, "model_version": r.model_version,
            "uncertainty": round(r.uncertainty, 6), "stream": r.stream,
            "open": self.queue.open_count(),
        }

    async def next_item(self, request: web.Request) -> web.Response:
        annotator = request.query.get("annotator", "web").strip() or "web"
        if not _NAME.match(annotator):
            return _error(400, "annotator: 1 to 64 printable characters")
        try:
            wait = min(MAX_WAIT_SECONDS, max(0.0, float(request.query.get("wait", "0"))))
        except ValueError:
            return _error(400, "wait: a number of seconds")
        deadline = time.monotonic() + wait
        while True:
            if request.transport is None or request.transport.is_closing():
                return _error(499, "the browser went away")  # claim nothing for a closed tab
            now = time.time()
            self.tidy(now)
            got = self.queue.next(annotator, now)
            if got is not None:
                return json_response({"item": self.item(*got, annotator)})
            if time.monotonic() >= deadline:
                return json_response({"item": None, "open": self.queue.open_count()})
            await asyncio.sleep(0.1)

    async def _body(self, request: web.Request, label: bool) -> dict[str, Any] | web.Response:
        if request.content_type != "application/json":
            return _error(415, "send the body as Content-Type: application/json")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with id and claim")
        for key, limit in (("id", 1024), ("claim", 128)):
            value = body.get(key)
            if type(value) is not str or not 0 < len(value) <= limit:
                return _error(400, f"{key}: a string of 1 to {limit} characters")
        if label:
            value = body.get("label")
            if type(value) is int:
                body["label"] = value = str(value)
            if type(value) is not str or not value.strip() or len(value) > _LABEL_MAX \
                    or not value.isprintable():
                return _error(400, f"label: a class name, 1 to {_LABEL_MAX} printable characters")
            body["label"] = value.strip()
        return body

    async def answer(self, request: web.Request) -> web.Response:
        body = await self._body(request, label=True)
        if isinstance(body, web.Response):
            return body
        now = time.time()
        self.tidy(now)
        annotator = self.queue.holder(body["id"]) or "web"
        try:
            read = self.queue.answer(body["id"], body["claim"], now)
        except Refused as exc:
            return _error(exc.status, str(exc))
        text = body["label"]
        if text not in self.book.names:  # a class not seen yet: the book (and the buttons) grow
            self.book.add(text)
        label = self.book.label(text)
        try:
            await self.edge.send_label(read.request, read.request.id, label, annotator)
        except (KafkaError, TimeoutError, OSError) as exc:
            self.queue.reopen(read)
            log.warning("annotate-web: label for %s not sent: %s", read.request.id, exc)
            return _error(503, f"the label could not be written to Kafka ({exc}); the item is "
                          "open again")
        self.edge.finished(read)
        self.given[annotator] += 1
        self.edge.metrics.annotations.labels(event="created").inc()
        return json_response({"ok": True, "id": read.request.id, "label": label,
                              "labels_given": self.given[annotator]})

    async def skip(self, request: web.Request) -> web.Response:
        body = await self._body(request, label=False)
        if isinstance(body, web.Response):
            return body
        try:
            read = self.queue.skip(body["id"], body["claim"], time.time())
        except Refused as exc:
            return _error(exc.status, str(exc))
        self.edge.metrics.annotations.labels(event="skipped").inc()
        return json_response({"ok": True, "id": read.request.id})

    async def watch_budget(self, stop: asyncio.Event) -> None:
        """Read the service's /status every 2 s (``service_url``): the budget it spent."""
        url = f"{self.settings.service_url.rstrip('/')}/status"  # type: ignore[union-attr]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while not stop.is_set():
                try:
                    async with session.get(url) as reply:
                        status = await reply.json(content_type=None)
                    self.budget = {key: status.get(key) for key in (
                        "budget", "spend", "label_requests", "items_seen", "labels_applied")}
                except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
                    self.budget = {"error": f"{url}: {type(exc).__name__} {exc}"[:300]}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=2.0)

    def stats(self) -> dict[str, Any]:
        now = time.time()
        self.tidy(now)
        c = self.queue.counts
        return {
            "labels_given": sum(self.given.values()), "by_annotator": dict(self.given),
            "open": self.queue.open_count(), "claimed": self.queue.claimed_count(now),
            "skipped": c["skipped"], "expired": c["expired"], "duplicates": c["duplicates"],
            # every distinct request is one label the service's budget paid for
            "requests_read": c["read"] - c["duplicates"],
            "classes": list(self.book.names), "claim_seconds": self.settings.claim_seconds,
            "budget": self.budget,  # the service's, read from its /status (None: no --service-url)
        }

    async def stats_page(self, _: web.Request) -> web.Response:
        return json_response(self.stats())

    async def index(self, _: web.Request) -> web.Response:
        return web.Response(body=self.page, content_type="text/html", charset="utf-8", headers={
            "Content-Security-Policy": self.csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    def app(self) -> web.Application:
        app = edge_app(self.edge.metrics, lambda: self.edge.joined,
                       lambda: {**self.edge.status(), "page": self.stats()}, self.settings.payload_root)
        app.router.add_get("/", self.index)
        app.router.add_get("/favicon.ico", _no_icon)
        app.router.add_get("/api/next", self.next_item)
        app.router.add_post("/api/answer", self.answer)
        app.router.add_post("/api/skip", self.skip)
        app.router.add_get("/api/stats", self.stats_page)
        return app


async def run_web(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the labelling page until ``stop``."""
    edge = LabelEdge(settings, "annotate-web")
    await edge.start()
    page = WebEdge(settings, edge)
    runner = None
    tasks: list[asyncio.Task[None]] = []
    try:
        runner, port = await serve(page.app(), settings.metrics_host, settings.metrics_port)
        host = settings.metrics_host
        host = "localhost" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
        log.info("labelling page: http://%s:%d/ (reading %s as group %s, claims run out after %g s)",
                 host, port, settings.label_requests_topic, edge.group_id, settings.claim_seconds)
        tasks = [asyncio.create_task(page.read_forever(stop)),
                 asyncio.create_task(keep_committing(edge, stop))]
        if settings.service_url:
            tasks.append(asyncio.create_task(page.watch_budget(stop)))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if runner is not None:
            await runner.cleanup()
        await edge.stop()
        log.info("annotate-web: stopped; %d labels given, %d skipped, %d open",
                 sum(page.given.values()), page.queue.counts["skipped"], page.queue.open_count())
