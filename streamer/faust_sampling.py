"""Selective sampling inside an existing Faust app: :func:`sampling_agent`.

Teams that already run `faust-streaming <https://faust-streaming.github.io/faust/>`_ add the
sampler to their app instead of deploying the service next to it::

    import faust
    from streamer.faust_sampling import sampling_agent

    app = faust.App("my-app", broker="kafka://localhost:9092")
    sampling = sampling_agent(
        app, "items", labels_topic="labels", label_requests_topic="label-requests",
        predictions_topic="predictions", store="redis://localhost:6379/0",
        settings={"budget": 0.05, "model": "GaussianNB"},
    )

Two agents are registered on ``app``. The items agent reads micro-batches with
``stream.take_events`` (raw bytes: a malformed item reaches the dead-letter topic instead of
being dropped by a Faust codec) and hands each to the same code the service runs
(:meth:`streamer.runtime.Service.process_items`): the same decoder, one
``Sampler.decide`` per batch, the same label requests, predictions and dead letters, the same
pending store and Prometheus metrics. The labels agent does the same with
:meth:`~streamer.runtime.Service.process_labels` (join with the store, learn, count the
join outcomes).

What it guarantees (compared with ``streamer run``):

- **Items, at least once.** A batch's events are acknowledged to Faust only once the broker
  acknowledged every output of the batch (the next batches are decided meanwhile, at most
  :data:`MAX_UNACKED_BATCHES` ahead); Faust commits acknowledged offsets itself (every
  ``broker_commit_every`` messages or ``broker_commit_interval`` seconds), so a crash
  re-decides the items since its last commit. If the outputs of a batch cannot be delivered,
  its events are never acknowledged (Faust commits nothing past them) and the app crashes, as
  the service stops; a restarted worker decides them again. Label requests carry the item
  id, so consumers can drop the duplicates.
- **Labels, at most once per item.** A label claims its pending item and is committed as
  applied in the store right after the model learned it, so a label read twice (a restart
  before Faust committed its offset) is a ``duplicate``, never learned twice.
- **Not provided: model checkpoints.** The model lives in the worker's memory; a restarted
  worker starts from the model it is given (``sampler=``), and labels applied before the
  restart are not learned again. The service's checkpoints (model + label offsets in one
  atomic store commit, labels re-read from those offsets) need a consumer whose positions it
  controls, which Faust's is not. Run ``streamer run`` where a restart must keep the model.
- Needs Faust's aiokafka transport (``kafka://``) and ``processing_guarantee="at_least_once"``
  (the outputs are produced outside Faust's transactions); one worker owns the model, as one
  replica of the service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord

from streamer.app import sampler_config
from streamer.config import Settings, load_settings
from streamer.core.sampler import Sampler
from streamer.http import StatusServer
from streamer.metrics import Metrics
from streamer.models import DEFAULT_MODEL, build_model
from streamer.runtime import Service
from streamer.store.base import PendingStore
from streamer.store.factory import open_store

if TYPE_CHECKING:
    from faust.types import AgentT, AppT, EventT, StreamT, TopicT
    from faust.types.tuples import Message

__all__ = ["INSTALL_HINT", "SamplingAgent", "sampling_agent"]

INSTALL_HINT = "pip install 'streamer[faust]'"
MAX_UNACKED_BATCHES = 8  # items batches produced but not yet acknowledged by the broker
log = logging.getLogger(__name__)


def _faust() -> Any:
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


def sampling_agent(
    app: AppT,
    items_topic: str | TopicT,
    *,
    labels_topic: str = "labels",
    label_requests_topic: str = "label-requests",
    predictions_topic: str | None = None,
    dead_letters_topic: str = "dead-letters",
    settings: Settings | Mapping[str, Any] | None = None,
    sampler: Sampler | None = None,
    store: PendingStore | str | None = None,
    metrics: Metrics | None = None,
    take: int = 1024,
    within: float = 0.01,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    name: str = "streamer",
) -> SamplingAgent:
    """Register selective sampling on a Faust app: an items agent and a labels agent.

    Parameters
    ----------
    app
        The user's ``faust.App`` (aiokafka transport, ``processing_guarantee="at_least_once"``).
    items_topic
        Where items arrive (the items wire contract): a name, or a Faust topic of one name
        (values are read as raw bytes whatever its codec).
    labels_topic, label_requests_topic, dead_letters_topic
        The other topics of the wire contracts.
    predictions_topic
        Where every item's prediction goes; ``None`` sends none.
    settings
        :class:`~streamer.config.Settings`, or a mapping of setting names to values
        (``{"budget": 0.05, "model": "GaussianNB", "n_features": 16}``); unset settings come
        from ``STREAMER_*`` environment variables and the defaults, as for ``streamer run``.
        The topic names are those of the arguments above.
    sampler
        The sampler to run; default one built from ``settings`` (``model``, ``budget``,
        ``policy``, ``seed``...).
    store
        The pending store: a :class:`~streamer.store.base.PendingStore`, a Redis URL, or
        ``None`` for ``settings.redis_url`` if set, else an in-process store.
    metrics
        Where the ``streamer_*`` metrics are counted; default in prometheus_client's default
        registry, which the app may already expose.
    take, within
        Micro-batches: at most ``take`` messages, or what arrived within ``within`` seconds.
    http_port, http_host
        Serve ``/metrics``, ``/healthz``, ``/readyz`` and ``/status`` there while the worker
        runs (``0`` = any free port); ``None`` serves nothing.
    name
        Prefix of the agents' and timer's names (two sampling agents need two names).

    Returns
    -------
    SamplingAgent
        The agents, sampler, metrics and (once started) store and status.

    Raises
    ------
    ImportError
        If faust-streaming is not installed.
    ValueError
        If the app runs ``exactly_once``, ``take`` is not positive, or two topics share a name.
    """
    faust = _faust()
    guarantee = str(getattr(app.conf.processing_guarantee, "value", app.conf.processing_guarantee))
    if guarantee != "at_least_once":
        raise ValueError(
            f"sampling_agent needs processing_guarantee='at_least_once' (the app has "
            f"{guarantee!r}): its outputs are produced outside Faust's transactions"
        )
    if not (isinstance(take, int) and take >= 1):
        raise ValueError(f"take must be a positive number of messages, got {take!r}")
    if isinstance(items_topic, faust.types.TopicT):
        if items_topic.pattern or len(items_topic.topics) != 1:
            raise ValueError(f"items_topic must be one topic, got {items_topic!r}: give its name")
        items_topic = items_topic.get_topic_name()
    base = settings if isinstance(settings, Settings) else load_settings(**dict(settings or {}))
    topics = {
        "items_topic": items_topic,
        "labels_topic": labels_topic,
        "label_requests_topic": label_requests_topic,
        "dead_letters_topic": dead_letters_topic,
        "predictions_topic": predictions_topic or base.predictions_topic,
    }
    used = [items_topic, labels_topic, label_requests_topic, dead_letters_topic]
    used += [predictions_topic] if predictions_topic else []
    if len(set(used)) != len(used):
        raise ValueError(f"topic names must all differ, got {used}")
    config = base.model_copy(update={**topics, "emit_predictions": predictions_topic is not None})
    if sampler is None:
        sampler = Sampler(
            build_model(config.model or DEFAULT_MODEL, seed=config.seed), **sampler_config(config)
        )
    handle = SamplingAgent(
        app, config, sampler, metrics or _default_metrics(), store, http_host, http_port
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}

    async def sample_items(stream: StreamT) -> None:
        await run_batch(app, (), handle.start())  # at worker start: the store answers, or crash
        async for events in stream.take_events(take, within=within):
            await run_batch(app, events, handle.decide(events))

    async def learn_labels(stream: StreamT) -> None:
        await run_batch(app, (), handle.start())
        async for events in stream.take_events(take, within=within):
            await run_batch(app, events, handle.learn(events))

    handle.items_agent = app.agent(app.topic(items_topic, **raw), name=f"{name}.items")(sample_items)
    handle.labels_agent = app.agent(app.topic(labels_topic, **raw), name=f"{name}.labels")(learn_labels)
    app.timer(2.0, name=f"{name}.sweep")(handle.sweep)
    app.on_partitions_assigned.connect(handle.on_partitions_assigned)
    return handle


async def run_batch(app: AppT, events: Sequence[EventT], work: Awaitable[Any]) -> None:
    """Await one batch's ``work``; if it fails, :func:`hold` its events so Faust never commits
    past them, and crash ``app`` (a restarted worker reads them again). A batch cancelled
    midway (the worker stopping) is held too, without the crash."""
    try:
        await work
    except asyncio.CancelledError:  # stopping mid-batch: its outputs may not all be delivered
        hold(events)
        raise
    except Exception as exc:
        hold(events)
        log.exception("sampling agent failed (%d messages held, not acknowledged); stopping "
                      "the app so that a restarted worker reads them again", len(events))
        await app.crash(exc)
        raise


def hold(events: Sequence[EventT]) -> None:
    """Keep ``events`` from ever being acknowledged, so Faust commits no offset past them.

    ``stream.take_events`` acknowledges a batch's events when the agent asks for the next
    batch, whether or not the batch was processed; one more reference on each message keeps
    that acknowledgement from being the last one.
    """
    for event in events:
        event.message.incref()


def as_record(message: Message) -> ConsumerRecord:
    """A Faust message as the aiokafka record the service reads (timestamp in milliseconds)."""
    stamp = message.timestamp
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return ConsumerRecord(
        topic=message.topic, partition=message.partition, offset=message.offset,
        timestamp=round((time.time() if stamp is None else stamp) * 1000.0),
        timestamp_type=message.timestamp_type, key=message.key, value=message.value,
        checksum=message.checksum, serialized_key_size=message.serialized_key_size,
        serialized_value_size=message.serialized_value_size, headers=headers,
    )


def _default_metrics() -> Metrics:
    from prometheus_client import REGISTRY

    try:
        return Metrics(REGISTRY)
    except ValueError as exc:  # "Duplicated timeseries": a second sampling_agent here
        raise ValueError(
            "the streamer_* metrics are already registered in prometheus_client's default "
            "registry (a second sampling_agent in this process?): pass metrics=Metrics() to "
            "count this one in its own registry"
        ) from exc
