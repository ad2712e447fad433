"""The throughput benchmark's faust-streaming baseline: our scoring logic as one faust agent.

Issue 5 compares the service with "the same logic as a faust-streaming agent (per event and
with take())". This worker is that agent. Per item it decodes the JSON value with orjson
(``{"id": str, "features": [float, ...]}``), scores it with river
(``StandardScaler | OneVsRest(LogisticRegression)``, ``predict_proba_one``), lets the scaler
learn the item, sends a prediction ``{"id", "prediction", "confidence", "model_version"}`` to
the predictions topic (key = item id), and a label request when the item's top-two margin is
below a threshold that tracks the lowest ``--budget`` share of margins (default 5%; the
asymmetric-step variable-uncertainty rule of Žliobaitė et al. 2014, as in
:mod:`streamer.core.budget`, without its deficit correction and window promise).

Modes:

``event``
    ``async for value in stream:`` -- one item per iteration.
``take``
    ``async for values in stream.take(N, within=T):`` -- faust hands over batches; scoring is
    still river per item, so this measures faust's batching of the transport, not vectorised
    scoring.

Before consuming, the model learns 200 rows of ``default_rng(0).normal(size=(200, d))`` with
label ``int(row[0] > 0)`` so that predictions are not trivial. The worker starts from the
earliest offset, exits by itself after ``--n-items`` items (0 = never; the harness may also
kill it), and logs at warning level.

Run::

    python benchmarks/faust_agent.py --bootstrap 127.0.0.1:9092 --items-topic items \\
        --predictions-topic predictions --requests-topic label-requests \\
        --n-features 16 --mode take --n-items 100000 --group faust-bench

or build the command from Python with :func:`agent_command`. Every flag:
``--bootstrap``, ``--items-topic``, ``--predictions-topic``, ``--requests-topic``,
``--n-features``, ``--mode {event,take}``, ``--n-items``, ``--group`` (faust app id = consumer
group), ``--partitions`` (4), ``--take-max`` (1024), ``--take-within`` (0.01 s),
``--fetch-max-wait-ms`` (10), ``--budget`` (0.05).

faust settings chosen for Tansu (memory-only, no idempotent or transactional producers):
``processing_guarantee="at_least_once"`` (no transactions) and the aiokafka producer's default
``enable_idempotence=False``; ``topic_disable_leader=True`` (no extra leader topic), no tables,
``web_enabled=False``, raw key and value serializers. The producer is configured like our
service's (acks=all, 2 ms linger). ``broker_session_timeout`` is 4 s instead of faust's 60 s:
Tansu holds a group's first join for half the session timeout, so faust's default took 30 s
to start consuming (2 s now).

The fetch wait: faust 0.15 has no setting for it. Its worker consumer is built with
``fetch_max_wait_ms=1500`` hard-coded (``faust/transport/drivers/aiokafka.py``,
``AIOKafkaConsumerThread._create_worker_consumer``); ``consumer_max_fetch_size`` is
``max_partition_fetch_bytes``, a size, not a wait. :class:`LowWaitApp` swaps in a consumer
thread that lowers it (``--fetch-max-wait-ms``, default 10 ms, as our service and test harness
use). It matters on Tansu: items trickled in at 50/s were predicted after a median of 3 ms
(event) / 9 ms (take) with 10 ms, and 364 ms / 398 ms with faust's 1500 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import numpy as np
import orjson
from faust.transport.drivers import aiokafka as faust_aiokafka
from river import compose, linear_model, multiclass, preprocessing

MODES = ("event", "take")
WARMUP_ROWS = 200
MODEL_VERSION = 1


def agent_command(
    bootstrap: str,
    items_topic: str,
    predictions_topic: str,
    requests_topic: str,
    n_features: int,
    mode: str,
    n_items: int,
    group: str,
    partitions: int = 4,
    take_max: int = 1024,
    take_within: float = 0.01,
    fetch_max_wait_ms: int = 10,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment for ``subprocess.Popen`` that run this agent.

    Examples
    --------
    >>> argv, env = agent_command("127.0.0.1:9092", "items", "preds", "reqs", 16, "take", 10, "g")
    >>> argv[1].endswith("faust_agent.py"), argv[argv.index("--mode") + 1], env["PYTHONUNBUFFERED"]
    (True, 'take', '1')
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    argv = [
        sys.executable, str(Path(__file__).resolve()),
        "--bootstrap", bootstrap,
        "--items-topic", items_topic,
        "--predictions-topic", predictions_topic,
        "--requests-topic", requests_topic,
        "--n-features", str(n_features),
        "--mode", mode,
        "--n-items", str(n_items),
        "--group", group,
        "--partitions", str(partitions),
        "--take-max", str(take_max),
        "--take-within", str(take_within),
        "--fetch-max-wait-ms", str(fetch_max_wait_ms),
    ]
    return argv, {**os.environ, "PYTHONUNBUFFERED": "1"}


class MarginGate:
    """Ask for a label when the top-two margin is below a threshold that keeps a ``budget`` share.

    The threshold moves down by ``step * (1 - budget)`` after an asked item and up by
    ``step * budget`` after a skipped one, so it settles where a share ``budget`` of the
    margins falls below it.

    Examples
    --------
    >>> gate = MarginGate(0.05)
    >>> margins = np.random.default_rng(0).random(20_000)
    >>> 0.04 < sum(gate.ask(m) for m in margins) / 20_000 < 0.06
    True
    """

    def __init__(self, budget: float, step: float = 0.01, threshold: float = 0.1) -> None:
        self.budget = budget
        self.step = step
        self.threshold = threshold

    def ask(self, margin: float) -> bool:
        asked = bool(margin < self.threshold)
        self.threshold += -self.step * (1 - self.budget) if asked else self.step * self.budget
        return asked


class Scorer:
    """The per-item logic, independent of faust: decode, predict, learn the scaler, encode."""

    def __init__(self, n_features: int, budget: float) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.model = compose.Pipeline(
            self.scaler, multiclass.OneVsRestClassifier(linear_model.LogisticRegression())
        )
        self.gate = MarginGate(budget)
        rows = np.random.default_rng(0).normal(size=(WARMUP_ROWS, n_features))
        for row in rows:
            self.model.learn_one(self._features(row.tolist()), int(row[0] > 0))

    @staticmethod
    def _features(values: Sequence[float]) -> dict[str, float]:
        return {f"x{j}": v for j, v in enumerate(values)}

    def score(self, value: bytes) -> tuple[str, bytes, bytes | None]:
        """Item id, its prediction and, if asked, its label request (orjson bytes)."""
        item = orjson.loads(value)
        x = self._features(item["features"])
        proba = self.model.predict_proba_one(x)
        self.scaler.learn_one(x)
        top = sorted(proba.items(), key=lambda kv: kv[1], reverse=True)
        label, confidence = top[0]
        margin = confidence - (top[1][1] if len(top) > 1 else 0.0)
        prediction = orjson.dumps({
            "id": item["id"], "prediction": label, "confidence": confidence,
            "model_version": MODEL_VERSION,
        })
        request = None
        if self.gate.ask(margin):
            request = orjson.dumps({
                "id": item["id"], "prediction": label,
                "proba": {str(k): v for k, v in proba.items()}, "scores": {"margin": margin},
                "reason": "uncertainty", "model_version": MODEL_VERSION,
                "requested_at": time.time(),
            })
        return item["id"], prediction, request


class _LowWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust hard-codes 1500 ms; aiokafka reads this attribute when the consumer starts.
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class _LowWaitConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _LowWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _LowWaitTransport(faust_aiokafka.Transport):
    Consumer = _LowWaitConsumer


class LowWaitApp(faust.App):
    """A faust App whose worker consumer waits at most ``fetch_max_wait_ms`` per empty fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 10, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> Any:
        return _LowWaitTransport(self.conf.broker_consumer, self)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="host:port[,host:port...]")
    parser.add_argument("--items-topic", required=True)
    parser.add_argument("--predictions-topic", required=True)
    parser.add_argument("--requests-topic", required=True)
    parser.add_argument("--n-features", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--n-items", type=int, default=0, help="exit after this many (0 = never)")
    parser.add_argument("--group", required=True, help="faust app id, also the consumer group")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--take-max", type=int, default=1024)
    parser.add_argument("--take-within", type=float, default=0.01, help="seconds")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=10)
    parser.add_argument("--budget", type=float, default=0.05, help="share of items to ask about")
    parser.add_argument("--log-level", default="WARNING", help="faust/aiokafka log level")
    return parser.parse_args(argv)


def tansu_app(group: str, bootstrap: str, partitions: int = 4, fetch_max_wait_ms: int = 10) -> LowWaitApp:
    """A faust app with the settings above (raw codecs, at least once, Tansu's timeouts).

    The streamer.faust_sampling ``sampling_agent`` pipeline of the throughput benchmark and its
    integration test run in one of these too, so that the faust rows differ only in the agents.
    """
    data = Path(tempfile.gettempdir()) / "streamer-faust"  # faust's own files, not ./<id>-data
    data.mkdir(exist_ok=True)
    return LowWaitApp(
        group,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(data / "{conf.id}-data"),
        fetch_max_wait_ms=fetch_max_wait_ms,
        # As our service's producer: acks=all, 2 ms linger (aiokafka: no idempotence by default).
        producer_acks=-1,
        producer_linger=0.002,
        # Tansu holds a group's first join for half the session timeout (faust's 60 s: 30 s).
        broker_session_timeout=4.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
    )


def run_worker(app: faust.App, loglevel: str = "WARNING") -> None:
    """Run ``app`` as a faust worker until SIGTERM (or the app stops itself)."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Its spinner sets the root logger to DEBUG (every record built) and writes escape codes.
    worker.spinner = None
    worker.execute_from_commandline()


def build_app(args: argparse.Namespace) -> faust.App:
    app = tansu_app(args.group, args.bootstrap, args.partitions, args.fetch_max_wait_ms)
    items = app.topic(args.items_topic, partitions=args.partitions)
    predictions = app.topic(args.predictions_topic, partitions=args.partitions)
    requests = app.topic(args.requests_topic, partitions=args.partitions)
    scorer = Scorer(args.n_features, args.budget)
    done = 0

    async def handle(value: bytes) -> None:
        nonlocal done
        item_id, prediction, request = scorer.score(value)
        key = item_id.encode()
        await predictions.send(key=key, value=prediction)
        if request is not None:
            await requests.send(key=key, value=request)
        done += 1
        if done == args.n_items:
            await app.producer.flush()
            logging.getLogger(__name__).warning("processed %d items; stopping", done)
            # The same graceful path as the harness's SIGTERM (mode.Worker's handler).
            os.kill(os.getpid(), signal.SIGTERM)

    if args.mode == "event":
        @app.agent(items)
        async def score_events(stream: faust.StreamT) -> None:
            async for value in stream:
                await handle(value)
    else:
        @app.agent(items)
        async def score_batches(stream: faust.StreamT) -> None:
            async for values in stream.take(args.take_max, within=args.take_within):
                for value in values:
                    await handle(value)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    run_worker(build_app(args), args.log_level)


if __name__ == "__main__":
    main()
