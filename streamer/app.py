"""The façade a user meets first: build a service from Settings and run it until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from prometheus_client import disable_created_metrics

from streamer.config import Settings
from streamer.core.sampler import DEFAULT_POLICY, Sampler
from streamer.http import StatusServer
from streamer.metrics import Metrics
from streamer.models import DEFAULT_MODEL, build_model
from streamer.runtime import Service
from streamer.runtime.clients import Clients
from streamer.store.checkpoint import CheckpointError, loads
from streamer.store.factory import open_store

log = logging.getLogger(__name__)

disable_created_metrics()  # *_created series only add noise to dashboards


# sampler settings added after checkpoints were first written, with their default
_SAMPLER_SETTINGS_ADDED: dict[str, Any] = {"warmup": 0}


def sampler_config(settings: Settings) -> dict[str, Any]:
    """The Sampler's keyword arguments from the settings (a checkpoint records them)."""
    return {
        "budget": settings.budget,
        "policy": settings.policy or DEFAULT_POLICY,
        "explore": settings.explore,
        "seed": settings.seed,
        "promise_window": settings.budget_window,
        "tolerance": settings.budget_tolerance,
        "class_balance": settings.class_balance,
        "drift": settings.drift_boost,
        "labels_per_second": settings.labels_per_second,
        "max_in_flight": settings.max_pending,
        "warmup": settings.warmup,
    }


async def build_service(settings: Settings, metrics: Metrics | None = None,
                        clients: Clients | None = None) -> Service:
    """Model, sampler and store from the settings; restore the newest checkpoint if any.

    ``clients`` are where its consumers and producer come from: Kafka at the settings' brokers
    unless given (the in-memory bus of :mod:`streamer.runtime.memory_bus`, in tests).

    Raises
    ------
    CheckpointError
        If the stored checkpoint fails its signature check, or was written for another model
        spec (the message says how to start fresh).
    """
    spec = settings.model or DEFAULT_MODEL
    config = sampler_config(settings)
    store = await open_store(
        settings.redis_url.get_secret_value() if settings.redis_url else None,
        prefix=settings.redis_prefix,
        max_pending=settings.max_pending,
        client_options=settings.redis_client_options(),
    )
    key = settings.checkpoint_key.get_secret_value().encode() if settings.checkpoint_key else None
    checkpoint = None
    try:
        blob = await store.load_checkpoint() if store.durable and key else None
        if blob is not None:
            checkpoint = loads(blob, key)  # type: ignore[arg-type]
            if settings.model is None and checkpoint.model_spec != spec:
                # No --model: the deployment keeps the model it learned, even where the default
                # changed since (it was StandardScaler | LogisticRegression before auto).
                log.warning("no --model given: keeping the checkpoint's model %r (the default is "
                            "now %r; pass --model to change it, with a fresh --redis-prefix)",
                            checkpoint.model_spec, spec)
                spec = checkpoint.model_spec
            if checkpoint.model_spec != spec:
                raise CheckpointError(
                    f"the checkpoint in Redis (prefix {settings.redis_prefix!r}) holds model "
                    f"{checkpoint.model_spec!r}, but the settings ask for {spec!r}: start with "
                    "--model set to the checkpoint's spec, or use another --redis-prefix to "
                    "start a fresh model"
                )
    except BaseException:
        await store.close()
        raise
    # a checkpoint from before a setting existed ran with that setting's default
    saved = {**_SAMPLER_SETTINGS_ADDED, **checkpoint.sampler_config} if checkpoint else None
    if checkpoint is None:
        sampler = Sampler(build_model(spec, seed=settings.seed), **config)
    elif saved == config:
        sampler = checkpoint.sampler
    else:  # same model, new sampling settings: keep what the model learned
        changed = sorted(k for k in config if saved.get(k) != config[k])
        log.warning("sampling settings changed since the checkpoint (%s): the model is restored, "
                    "the sampler starts fresh", ", ".join(changed))
        sampler = Sampler(checkpoint.sampler.model, **config)
    return Service(
        settings, sampler, store, metrics,
        checkpoint=checkpoint, checkpoint_key=key, sampler_config=config, clients=clients,
    )


async def serve(
    settings: Settings,
    stop: asyncio.Event | None = None,
    service: Service | None = None,
    on_started: Callable[[Service], None] | None = None,
) -> Service:
    """Run the service and its HTTP endpoints until ``stop`` is set or SIGTERM/SIGINT arrives."""
    stop = stop or asyncio.Event()
    service = service or await build_service(settings)
    http = StatusServer(
        service.metrics.registry,
        ready=lambda: service.ready,
        status=lambda: {**service.status(), "settings": settings.public()},
        host=settings.metrics_host,
        port=settings.metrics_port,
    )
    await http.start()
    service.http_port = http.port
    log.info("serving /metrics /healthz /readyz /status on %s:%d", settings.metrics_host, http.port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if on_started is not None:
        on_started(service)
    try:
        await service.run(stop, freeze_heap=True)
    finally:
        await http.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    status = service.status()
    log.info("stopped: %d items decided, %d label requests, %d labels applied, %d dead letters "
             "(the full status: GET /status while it runs, or --log-level DEBUG)",
             status["items_seen"], status["label_requests"], status["labels_applied"],
             status["dead_letters"])
    log.debug("final status: %s", status)
    return service
