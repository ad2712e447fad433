"""The ``streamer`` command: run, simulate, demo, broker, produce, feed, annotate, label-studio."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

# One BLAS/OpenMP thread per process, set before anything imports numpy: two threads were up to
# 50x slower on a busy 2-core box. Scale with processes; the environment still overrides this.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

from streamer import __version__  # noqa: E402
from streamer.config import ConfigError, Settings, load_settings  # noqa: E402
from streamer.wire import FLOAT32, JSON, MSGPACK  # noqa: E402

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from streamer.replay import LabelledStream

log = logging.getLogger("streamer")

# `streamer produce --content-type`: the header each name stands for
_CONTENT_TYPES = {"json": JSON, "msgpack": MSGPACK, "float32": FLOAT32}

# flags of `streamer run` whose names are a contract (scripts and tests rely on them)
_RUN_FLAGS: dict[str, dict] = {
    "bootstrap-servers": {"metavar": "HOST:PORT[,...]", "help": "Kafka bootstrap servers"},
    "redis-url": {"metavar": "URL", "help": "redis:// or rediss:// URL; omitted = in-process store"},
    "redis-url-file": {"metavar": "FILE", "help": "file holding the Redis URL (a secret if it has a password)"},
    "redis-username": {"help": "Redis ACL user, unless the URL names one"},
    "redis-username-file": {"metavar": "FILE", "help": "file holding --redis-username"},
    "redis-password": {"help": "Redis password, unless the URL has one; prefer --redis-password-file"},
    "redis-password-file": {"metavar": "FILE", "help": "file holding the Redis password"},
    "redis-ssl-ca-certs": {"metavar": "FILE", "help": "rediss://: CA bundle of the server certificate"},
    "redis-ssl-certfile": {"metavar": "FILE", "help": "rediss://: client certificate (mutual TLS)"},
    "redis-ssl-keyfile": {"metavar": "FILE", "help": "rediss://: key of the client certificate"},
    "redis-ssl-cert-reqs": {"help": "rediss://: required (default), optional or none (no check)"},
    "redis-prefix": {"help": "key prefix in Redis, one per deployment (streamer)"},
    "budget": {"type": float, "help": "share of items to ask labels for (default 0.05)"},
    "model": {"help": "model spec: auto (the default: a portfolio raced on the labels), a river "
              "spec such as 'StandardScaler | LogisticRegression', or torch:mlp"},
    "policy": {"help": "query policy, e.g. 'margin', 'margin or novelty', 'random' (default: margin)"},
    "class-balance": {"type": float, "help": "raise the ask rate for rare predicted classes (0 = off)"},
    "labels-per-second": {"type": float, "help": "cap labels asked per second (token bucket)"},
    "budget-window": {"type": int, "help": "asks for the per-window promise instead of the "
                      "stream-wide one: any window of this many items holds the budget within the "
                      "tolerance; no warm-up then (not set: the stream-wide promise)"},
    "budget-tolerance": {"type": float, "help": "the promise: the share over the stream within this "
                         "(relative) of the budget; the slack is tolerance x budget x 10,000 / 2 "
                         "labels (0.02)"},
    "explore": {"type": float, "help": "share of the budget spent on random exploration (0.1)"},
    "warmup-labels": {"type": int, "help": "labels that may be asked ahead of the budget at the "
                      "start, repaid afterwards (10; 0 under --budget-window)"},
    "seed": {"type": int, "help": "random seed (0)"},
    "metrics-port": {"type": int, "help": "port of /metrics /healthz /readyz /status (9100; 0 = any)"},
    "metrics-host": {"help": "address the HTTP endpoints listen on (0.0.0.0; 127.0.0.1 = this host only)"},
    "group-id": {"help": "Kafka consumer group of the items (streamer); labels are read without a "
                 "group, <group-id>-labels only keeps their committed offsets"},
    "items-topic": {"help": "topic items arrive on (items)"},
    "label-requests-topic": {"help": "topic label requests go to (label-requests)"},
    "labels-topic": {"help": "topic labels arrive on (labels)"},
    "predictions-topic": {"help": "topic predictions go to (predictions)"},
    "dead-letters-topic": {"help": "topic unusable messages go to (dead-letters)"},
    "n-features": {"type": int, "help": "expected feature count (default: fixed by the first item)"},
    "classes": {"metavar": "A,B,C", "help": "the classes; a label of any other is a dead letter, "
                "undeclared_class, and the labelling edges offer these as the choices (default: "
                "grown from the labels, up to --max-classes)"},
    "max-classes": {"type": int, "help": "most classes learned from the labels; a label of one "
                    "more is a dead letter, too_many_classes; every class costs each decision and each label "
                    "request a probability (100)"},
    "max-batch": {"type": int, "help": "items per micro-batch at most (1024)"},
    "max-delay-ms": {"type": float, "help": "a micro-batch holds no more items than are decided "
                     "in this long, at the cost per item measured on the recent batches: an "
                     "expensive model or a backlog gets smaller batches, the rest follow at once (20)"},
    "fetch-max-wait-ms": {"type": int, "help": "broker fetch wait; sets latency (10)"},
    "role": {"choices": ["all", "scorer", "learner"],
             "help": "all (default): decide items, and learn while holding the learner lease; "
                     "scorer: decide only; learner: learn only (needs --redis-url)"},
    "model-staleness-seconds": {"type": float,
                                "help": "scorers use the learner's model within this (1.0)"},
    "learner-lease-seconds": {"type": float,
                              "help": "a standby learner takes over this long after the learner died (5)"},
    "session-timeout-ms": {"type": int, "help": "a silent consumer's partitions move after this "
                           "(2000 on the embedded broker, else 10000): the restart time after a crash"},
    "group-instance-id": {"help": "static group membership id, e.g. the pod name: a restart "
                          "gets its partitions back at once"},
    "pending-ttl-seconds": {"type": float, "help": "how long a requested item waits for its label; "
                            "a later label is counted late (86400)"},
    "max-pending": {"type": int, "help": "most items waiting for a label; beyond it no new requests (100000)"},
    "checkpoint-key": {"help": "HMAC key signing checkpoints; prefer --checkpoint-key-file"},
    "checkpoint-key-file": {"metavar": "FILE", "help": "file holding the checkpoint HMAC key"},
    "checkpoint-every-labels": {"type": int, "help": "checkpoint after this many applied labels (500)"},
    "checkpoint-every-seconds": {"type": float, "help": "... or after this many seconds (10)"},
    "shutdown-timeout-seconds": {"type": float, "help": "SIGTERM: most seconds to drain and checkpoint (20)"},
    "max-message-bytes": {"type": int, "help": "larger items and labels become dead letters (1000000)"},
    "max-abs-feature": {"type": float, "help": "larger finite features are dead letters, out_of_range: "
                        "one 1e308 would poison a running scaler (1e15)"},
    "topic-partitions": {"type": int, "help": "partitions of topics created at start (3)"},
    "security-protocol": {"help": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"},
    "sasl-mechanism": {"help": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
    "sasl-username": {"help": "Kafka SASL user"},
    "sasl-username-file": {"metavar": "FILE", "help": "file holding --sasl-username"},
    "sasl-password": {"help": "Kafka SASL password; prefer --sasl-password-file"},
    "sasl-password-file": {"metavar": "FILE", "help": "file holding the Kafka SASL password"},
    "ssl-cafile": {"metavar": "FILE", "help": "Kafka SSL: CA bundle of the brokers' certificates"},
    "ssl-certfile": {"metavar": "FILE", "help": "Kafka SSL: client certificate (mutual TLS)"},
    "ssl-keyfile": {"metavar": "FILE", "help": "Kafka SSL: key of the client certificate"},
    "log-level": {"help": "DEBUG, INFO, WARNING or ERROR"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer", description="Stream-based selective sampling (online active learning)."
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the microservice",
                         description="Run the service. Every flag also reads STREAMER_<NAME> and "
                         "the optional config file (TOML or JSON); flags win over env over file.")
    run.add_argument("--config", metavar="FILE", help="TOML or JSON settings file (or STREAMER_CONFIG)")
    for name, kwargs in _RUN_FLAGS.items():
        run.add_argument(f"--{name}", default=None, **kwargs)
    run.add_argument("--drift-boost", dest="drift_boost", action="store_const", const=True,
                     default=None, help="ask more right after a drift of the error, paid back later")
    run.add_argument("--no-global-budget", dest="global_budget", action="store_const",
                     const=False, default=None,
                     help="each replica holds the budget alone (no Redis budget ledger)")
    run.add_argument("--no-predictions", dest="emit_predictions", action="store_const", const=False,
                     default=None, help="do not produce to the predictions topic")
    run.add_argument("--no-create-topics", dest="create_topics", action="store_const", const=False,
                     default=None, help="fail instead of creating missing topics")
    run.set_defaults(func=_cmd_run)

    from streamer import simulate

    simulate.register(sub)

    demo = sub.add_parser("demo", help="the whole loop on the embedded broker, about a minute")
    demo.add_argument("--data", help="CSV(.gz) stream (default: ../shared/data/sea_abrupt.csv.gz)")
    demo.add_argument("--synthetic", action="store_true", help="use a river synthetic drifting stream")
    demo.add_argument("--video", nargs="?", const="", default=None, metavar="FILE",
                      help="run on a video: renders the 8x8 digits of digits_frames.csv.gz (or "
                           "--data) as 64x64 frames, feeds them with the video feeder and the "
                           "built-in extractor; the annotator answers from the digits' labels "
                           "(a FILE of yours has no labels: the demo says how to use it instead)")
    demo.add_argument("--budget", type=float, default=0.05)
    demo.add_argument("--duration", type=float, default=None,
                      help="seconds to replay the stream over (45; 600 with people answering)")
    demo.add_argument("--label-delay", type=float, default=0.5, help="simulated annotator's delay in seconds")
    demo.add_argument("--annotator", choices=["simulated", "web", "label-studio"], default="simulated",
                      help="who answers the label requests: the simulated annotator (from the "
                           "stream's truth), you in the built-in labelling page (web: the demo prints "
                           "its URL), or you in Label Studio (started from `make label-studio`, or "
                           "$STREAMER_LABEL_STUDIO_URL and $STREAMER_LABEL_STUDIO_TOKEN)")
    demo.add_argument("--metrics-port", type=int, default=9100)
    demo.add_argument("--redis-url", default=None, help="use Redis for pending items")
    demo.add_argument("--max-items", type=int, default=None, help="items (with --video: digits) at most")
    demo.add_argument("--model", default=None)
    demo.add_argument("--policy", default=None,
                      help="query policy, e.g. 'margin', 'margin or novelty' (default: margin)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    demo.set_defaults(func=_cmd_demo)

    broker = sub.add_parser("broker", help="run the embedded Tansu broker in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--host", default="127.0.0.1")
    broker.set_defaults(func=_cmd_broker)

    produce = sub.add_parser("produce", help="replay a labelled CSV(.gz) stream onto the items topic")
    _replay_flags(produce)
    produce.add_argument("--rate", type=float, default=None, help="items/s (default: as fast as possible)")
    produce.add_argument("--content-type", choices=sorted(_CONTENT_TYPES), default="json",
                         help="item format: json (default), msgpack, or float32 (raw features, "
                         "the id is the record key; fastest)")
    produce.set_defaults(func=_cmd_produce)

    from streamer.feed import command as feed

    feed.register(sub)

    from streamer.label import command as label

    annotate = sub.add_parser(
        "annotate", help="answer label requests: --web serves a labelling page for people; "
        "without it, a simulated annotator answers from a labelled stream",
        description="--web: a labelling page (queue most uncertain first, keyboard answers) on "
        "--port, with the settings of `streamer run`. Without --web: a simulated annotator that "
        "answers from the truth of --data.")
    annotate.add_argument("--web", action="store_true", help="serve the labelling page")
    _replay_flags(annotate)
    annotate.add_argument("--delay", type=float, default=0.5, help="simulated: seconds before answering")
    label.add_edge_flags(annotate, _RUN_FLAGS, studio=False)
    annotate.set_defaults(func=_cmd_annotate)
    label.register_label_studio(sub, _RUN_FLAGS)
    return parser


def _replay_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", default=None, help="Kafka bootstrap servers (127.0.0.1:9092)")
    parser.add_argument("--data", help="CSV(.gz) stream with a label column (default: synthetic)")
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items-topic", default=None, help="items")
    parser.add_argument("--label-requests-topic", default=None, help="label-requests")
    parser.add_argument("--labels-topic", default=None, help="labels")


def _replay_defaults(args: argparse.Namespace) -> None:
    """The replay commands' defaults, where a flag was not given (the edges read Settings)."""
    for name, default in (("bootstrap_servers", "127.0.0.1:9092"), ("items_topic", "items"),
                          ("label_requests_topic", "label-requests"), ("labels_topic", "labels")):
        if getattr(args, name, None) is None:
            setattr(args, name, default)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", None) or "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {name.replace("-", "_"): getattr(args, name.replace("-", "_")) for name in _RUN_FLAGS}
    overrides["drift_boost"] = args.drift_boost
    overrides["emit_predictions"] = args.emit_predictions
    overrides["create_topics"] = args.create_topics
    return load_settings(args.config, **overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from streamer.app import serve
    from streamer.store.errors import StoreRefusedError

    settings = _settings_from_args(args)
    logging.getLogger().setLevel(settings.log_level)
    log.info("starting with %s", settings.public())
    try:
        asyncio.run(serve(settings))
    except KafkaError as exc:
        print(f"streamer: cannot use Kafka at {settings.bootstrap_servers}: {exc} (check "
              "--bootstrap-servers, that the broker runs, and the security settings)", file=sys.stderr)
        return 1
    except (OSError, ValueError, StoreRefusedError) as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from streamer.demo import main as demo_main

    return demo_main(args)


def _cmd_broker(args: argparse.Namespace) -> int:
    from streamer.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, host=args.host)
    try:
        broker.start()
    except BrokerError as exc:
        print(f"streamer broker: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Tansu listening on {broker.bootstrap_servers}; Ctrl-C or SIGTERM stops it",
              file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        with contextlib.suppress(KeyboardInterrupt):
            code = broker.wait()
            print(f"streamer broker: Tansu exited with code {code}; see {broker.log_path}",
                  file=sys.stderr)
            return 1
    finally:
        broker.stop()
    return 0


def _cmd_produce(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaProducer

    from streamer.replay import load_stream

    _replay_defaults(args)
    stream = load_stream(Path(args.data) if args.data else None, args.max_items, args.seed)

    async def go() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap_servers, linger_ms=5)
        await producer.start()
        try:
            return await _produce(producer, args.items_topic, stream, _CONTENT_TYPES[args.content_type],
                                  args.rate)
        finally:
            await producer.stop()

    asyncio.run(go())
    return 0


async def _produce(producer: AIOKafkaProducer, topic: str, stream: LabelledStream, content_type: str,
                   rate: float | None) -> int:
    """Send every item keyed by its id, with the content-type header, at ``rate`` items/s."""
    from streamer.wire import content_type_headers, encode_item

    headers = content_type_headers(content_type)
    chunk = 200 if rate is None else max(1, int(rate / 50))  # ~20 ms of items per step
    started = time.monotonic()
    sent = 0
    for start in range(0, len(stream), chunk):
        futures = [
            await producer.send(topic, encode_item(stream.ids[i], stream.X[i], content_type=content_type),
                                key=stream.ids[i].encode(), headers=headers)
            for i in range(start, min(start + chunk, len(stream)))
        ]
        await asyncio.gather(*futures)
        sent += len(futures)
        if sent % 5000 < chunk or sent == len(stream):
            print(f"sent {sent:,}/{len(stream):,}", file=sys.stderr, flush=True)
        if rate is not None and (ahead := sent / rate - (time.monotonic() - started)) > 0:
            await asyncio.sleep(ahead)
    return sent


def _cmd_annotate(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaProducer

    from streamer.kafka.groups import start_group_consumer
    from streamer.replay import Annotator, load_stream

    if args.web:
        from streamer.label.command import cmd_annotate_web

        return cmd_annotate_web(args)
    _replay_defaults(args)
    args.group_id = args.group_id or "streamer-annotator"
    stream = load_stream(Path(args.data) if args.data else None, args.max_items, args.seed)
    annotator = Annotator(stream.truth, delay=args.delay)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap_servers)
        await producer.start()
        consumer, _ = await start_group_consumer(
            [args.label_requests_topic], group_id=args.group_id, name="annotator", log=log,
            client={"bootstrap_servers": args.bootstrap_servers}, auto_offset_reset="earliest",
            fetch_max_wait_ms=10)
        try:
            await annotator.run(consumer, producer, args.labels_topic, stop)
        finally:
            await consumer.stop()
            await producer.stop()
            print(f"answered {annotator.sent:,} of {annotator.requests:,} requests "
                  f"({annotator.unknown} unknown ids)", file=sys.stderr)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
