"""The state of one :func:`~streamer.faust_sampling.sampling_agent` on a Faust app: the service
it feeds, readiness, and the items batches whose outputs the broker has not acknowledged yet."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from streamer.config import Settings
from streamer.core.sampler import Sampler
from streamer.faust_sampling.events import as_record, hold
from streamer.http import StatusServer
from streamer.metrics import Metrics
from streamer.runtime import Service
from streamer.store.base import PendingStore
from streamer.store.factory import open_store

if TYPE_CHECKING:
    from faust.types import AgentT, AppT, EventT

__all__ = ["INSTALL_HINT", "MAX_UNACKED_BATCHES", "SamplingAgent", "faust_module"]

INSTALL_HINT = "pip install 'streamer[faust]'"
MAX_UNACKED_BATCHES = 8  # items batches produced but not yet acknowledged by the broker
log = logging.getLogger(__name__)


def faust_module() -> Any:
    try:
        import faust
    except ImportError as exc:
        raise ImportError(
            f"streamer.faust_sampling needs faust-streaming, which is not installed: {INSTALL_HINT}"
        ) from exc
    return faust


class SamplingAgent:
    """What :func:`sampling_agent` registered on a Faust app, to inspect while it runs.

    Attributes
    ----------
    app
        The Faust app.
    items_agent, labels_agent
        The two Faust agents.
    sampler
        The :class:`~streamer.core.sampler.Sampler` both agents share (warm it before the
        worker starts, if you like).
    metrics
        The Prometheus metrics (``metrics.registry``).
    settings
        The settings the agents run with (topic names included).
    service
        The batch processor the agents feed, once the worker started (``None`` before).
    http_port
        The port of ``/metrics``, ``/healthz``, ``/readyz`` and ``/status``, once started
        (``None`` without ``http_port``).
    """

    items_agent: AgentT
    labels_agent: AgentT

    def __init__(
        self,
        app: AppT,
        settings: Settings,
        sampler: Sampler,
        metrics: Metrics,
        store: PendingStore | str | None,
        http_host: str,
        http_port: int | None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.sampler = sampler
        self.metrics = metrics
        self.service: Service | None = None
        self.http_port: int | None = None
        self._store = store
        self._http_address = (http_host, http_port)
        self._lock = asyncio.Lock()
        self._consuming = False  # the worker holds partitions of the items topic
        self._unacked: deque[asyncio.Future[Any]] = deque()  # items batches, in order
        self._crashing: asyncio.Future[Any] | None = None

    @property
    def store(self) -> PendingStore | None:
        """The pending store (``None`` before the worker opened a store it was given by URL)."""
        if self.service is not None:
            return self.service.store
        return None if isinstance(self._store, str | None) else self._store

    @property
    def ready(self) -> bool:
        """Started, holding partitions of the items topic, not degraded: what ``/readyz`` reports."""
        return self.service is not None and self.service.ready

    async def on_partitions_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        """Faust's signal after a rebalance: ready once the items topic has partitions here."""
        self._consuming = any(tp.topic == self.settings.items_topic for tp in assigned)
        if self.service is not None:
            self._mark_consuming(self.service)

    def _mark_consuming(self, service: Service) -> None:
        service.mark_consuming(self._consuming)

    def status(self) -> dict[str, Any]:
        """The service's status: items seen, label requests, join outcomes, model version...

        ``{"ready": False, "started": False}`` before the worker started the agents.
        """
        if self.service is None:
            return {"ready": False, "started": False}
        return self.service.status()

    async def start(self) -> Service:
        """Open the store, declare the output topics, serve HTTP: once, by the first agent."""
        async with self._lock:
            if self.service is None:
                self.service = await self._start()
        return self.service

    async def _start(self) -> Service:
        s, producer = self.settings, self.app.producer
        kafka = getattr(producer, "_ensure_producer", None)
        if kafka is None:
            raise TypeError(
                f"sampling_agent produces through Faust's aiokafka transport, but the app's "
                f"producer is a {type(producer).__name__}: use broker='kafka://...'"
            )
        outputs = [s.label_requests_topic, s.dead_letters_topic]
        outputs += [s.predictions_topic] if s.emit_predictions else []
        for name in outputs:  # the bulk producer needs their partition counts
            await self.app.topic(name).maybe_declare()
        store = self._store
        if isinstance(store, str | None):
            url = store or (s.redis_url.get_secret_value() if s.redis_url else None)
            store = await open_store(
                url, prefix=s.redis_prefix, max_pending=s.max_pending,
                client_options=s.redis_client_options() if s.redis_url else None,
            )
        # no checkpoint key: labels are committed as applied right after they are learned
        service = Service(s, self.sampler, store, self.metrics)
        service.attach_producer(kafka(), int(getattr(producer, "max_request_size", 1_000_000)))
        server = None
        host, port = self._http_address
        if port is not None:
            server = StatusServer(
                self.metrics.registry, ready=lambda: self.ready,
                status=lambda: {**self.status(), "settings": s.public()}, host=host, port=port,
            )
            try:
                await server.start()
            except OSError:
                await store.close()
                raise
            self.http_port = server.port
            log.info("serving /metrics /healthz /readyz /status on %s:%d", host, server.port)
        await self.app.add_async_context(self._running(service, server))
        self._mark_consuming(service)
        return service

    @contextlib.asynccontextmanager
    async def _running(self, service: Service, server: StatusServer | None) -> AsyncIterator[None]:
        """Closed by the app after its agents and producer stopped."""
        try:
            yield
        finally:
            service.begin_stop()
            service.mark_consuming(False)
            if server is not None:
                await server.stop()
            await service.close_store()

    async def decide(self, events: Sequence[EventT]) -> None:
        """One micro-batch of items: decide and produce; its events are acknowledged to Faust
        once the broker acknowledged every output (the next batches are decided meanwhile, at
        most ``MAX_UNACKED_BATCHES`` ahead)."""
        service = await self.start()
        acks = await service.process_items([as_record(event.message) for event in events])
        delivered: asyncio.Future[Any] = asyncio.gather(*acks)  # done at once when there are none
        hold(events)
        delivered.add_done_callback(functools.partial(self._release, events))
        self._unacked.append(delivered)
        while len(self._unacked) > MAX_UNACKED_BATCHES:
            await asyncio.wait([self._unacked[0]])
            while self._unacked and self._unacked[0].done():
                self._unacked.popleft()

    def _release(self, events: Sequence[EventT], delivered: asyncio.Future[Any]) -> None:
        """The outputs of a batch were acknowledged (or failed): acknowledge its events (or
        keep holding them and crash the app)."""
        error = None if delivered.cancelled() else delivered.exception()
        if delivered.cancelled() or error is not None:
            log.error("the outputs of a batch of %d items were not delivered (%r): its items "
                      "are held, not acknowledged; stopping the app", len(events), error)
            if error is not None:
                self._crashing = asyncio.ensure_future(self.app.crash(error))
            return
        for event in events:
            if event.ack():  # the last reference: Faust may commit its offset now
                message = event.message
                self.app.sensors.on_message_out(message.tp, message.offset, message)

    async def learn(self, events: Sequence[EventT]) -> None:
        """One micro-batch of labels: join with the store, learn, count the outcomes."""
        service = await self.start()
        await service.process_labels([as_record(event.message) for event in events])

    async def sweep(self) -> None:
        """Expire overdue pending items and refresh the pending gauge (a Faust timer)."""
        if self.service is not None:
            await self.service.sweep()
