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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamer.app import sampler_config
from streamer.config import Settings, load_settings
from streamer.core.sampler import Sampler
from streamer.faust_sampling.agent import (
    INSTALL_HINT,
    MAX_UNACKED_BATCHES,
    SamplingAgent,
    faust_module,
)
from streamer.faust_sampling.events import as_record, hold, run_batch
from streamer.metrics import Metrics
from streamer.models import DEFAULT_MODEL, build_model
from streamer.store.base import PendingStore

if TYPE_CHECKING:
    from faust.types import AppT, StreamT, TopicT

__all__ = ["INSTALL_HINT", "MAX_UNACKED_BATCHES", "SamplingAgent", "as_record", "hold", "run_batch",
           "sampling_agent"]


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
    faust = faust_module()
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
