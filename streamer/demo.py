"""``streamer demo``: the whole loop on the embedded broker, in about a minute.

Embedded Tansu broker -> the service -> a stream replayed onto ``items`` -> a simulated
annotator answering label requests after a delay -> labels back into the model. Live
progress on stderr, a summary at the end next to random sampling at the same budget.
``streamer demo --video`` does the same on a video of digits it renders, fed by
``streamer feed video``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer

from streamer.app import build_service, serve
from streamer.broker import EmbeddedBroker
from streamer.config import Settings, load_settings
from streamer.data import default_data_dir, find_stream
from streamer.demo_report import PredictionScorer, print_summary, printer, progress_lines
from streamer.feed.errors import FeedError
from streamer.kafka.client import client_kwargs
from streamer.kafka.groups import start_group_consumer
from streamer.label.demo_annotators import (
    PEOPLE_DURATION,
    PEOPLE_ITEMS,
    PeopleLabeller,
    SimulatedLabeller,
)
from streamer.replay import LabelledStream, load_stream, produce_items

log = logging.getLogger("streamer.demo")

DEFAULT_DEMO_FILE = "sea_abrupt.csv.gz"
DIGITS_FILE = "digits_frames.csv.gz"
VIDEO_STREAM = "digits"
VIDEO_FPS = 20.0  # rendered frames per second
FRAMES_PER_DIGIT = 2  # each digit stays 0.1 s; sampled at 10 fps, each is fed once


def default_demo_data() -> Path | None:
    """``../shared/data/sea_abrupt.csv.gz`` when present, else None (synthetic stream)."""
    directory = default_data_dir()
    if directory is None:
        return None
    path = Path(directory) / DEFAULT_DEMO_FILE
    return path if path.is_file() else None


async def run_demo(
    data: Path | None,
    *,
    budget: float = 0.05,
    duration: float = 45.0,
    label_delay: float = 0.5,
    metrics_port: int = 9100,
    redis_url: str | None = None,
    max_items: int | None = None,
    model: str | None = None,
    policy: str | None = None,
    seed: int = 0,
    annotator: str = "simulated",
    out=sys.stderr,
) -> dict[str, Any]:
    """Run the demo and return its summary (also printed)."""
    stream = load_stream(data, max_items=max_items, seed=seed)
    rate = len(stream) / duration
    say = printer(out)
    say(f"stream: {stream.name}, {len(stream):,} items x {stream.X.shape[1]} features, "
        f"replayed at {rate:,.0f} items/s; budget {budget:.1%}; {_who(annotator, label_delay)}")
    with EmbeddedBroker() as broker:
        settings = _settings(broker, say, budget=budget, metrics_port=metrics_port,
                             redis_url=redis_url, model=model, policy=policy, seed=seed)
        feed = DemoFeed(
            name=stream.name, truth=stream.truth, total=len(stream), rate=rate,
            send=lambda producer, topic: produce_items(producer, topic, stream, rate=rate),
            offline=lambda **kwargs: _simulate_stream(stream, **kwargs),
        )
        return await _run(settings, feed, label_delay, say, annotator)


async def run_video_demo(
    data: Path | None,
    *,
    budget: float = 0.05,
    duration: float = 45.0,
    label_delay: float = 0.5,
    metrics_port: int = 9100,
    redis_url: str | None = None,
    max_items: int | None = None,
    model: str | None = None,
    policy: str | None = None,
    seed: int = 0,
    annotator: str = "simulated",
    out=sys.stderr,
) -> dict[str, Any]:
    """The demo on a video: digits rendered to an mp4, fed by the video feeder, labels known.

    Each 8x8 digit of ``digits_frames.csv.gz`` (``data``) becomes a 64x64 frame shown for
    two frames of a 20 fps video; the feeder samples it at 10 fps (each digit once), embeds
    frames with the built-in extractor and stores them as PNG (``payload_uri``); the
    simulated annotator answers from the digits' labels by item id.
    """
    from streamer.feed.extractors import BuiltinExtractor
    from streamer.feed.render import render_digits_video
    from streamer.feed.video import feed_video

    source = data if data is not None else default_digits_data()
    say = printer(out)
    extractor = BuiltinExtractor()
    with tempfile.TemporaryDirectory(prefix="streamer-demo-video-") as tmp:
        video = Path(tmp) / "digits.mp4"
        labels = render_digits_video(source, video, fps=VIDEO_FPS, frames_per_digit=FRAMES_PER_DIGIT,
                                     max_digits=max_items)
        digits = len(labels) // FRAMES_PER_DIGIT
        truth = {f"{VIDEO_STREAM}-{i:07d}": int(label) for i, label in enumerate(labels.tolist())}
        rate = digits / duration
        speed = len(labels) / VIDEO_FPS / duration
        sample_fps = VIDEO_FPS / FRAMES_PER_DIGIT
        frames_dir = Path(tmp) / "frames"
        frames_dir.mkdir()
        fed: list[tuple[str, np.ndarray]] = []
        say(f"video: {digits:,} digits of {source.name} as 64x64 frames, {len(labels):,} frames at "
            f"{VIDEO_FPS:g} fps -> {video}")
        say(f"feeder: sampled at {sample_fps:g} fps, replayed {speed:.1f}x real time "
            f"({rate:,.0f} items/s), built-in extractor ({extractor.dim} values), frames stored "
            f"as PNG in {frames_dir} (payload_uri); budget {budget:.1%}; {_who(annotator, label_delay)}")
        with EmbeddedBroker() as broker:
            settings = _settings(broker, say, budget=budget, metrics_port=metrics_port,
                                 redis_url=redis_url, model=model, policy=policy, seed=seed,
                                 payload_root=frames_dir)  # people see the frames
            feed = DemoFeed(
                name=f"{source.name.split('.')[0]} video", truth=truth, total=digits, rate=rate,
                send=lambda producer, topic: feed_video(
                    video, producer, topic, fps=sample_fps, extractor=extractor,
                    frames_dir=frames_dir, stream=VIDEO_STREAM, speed=speed, progress_out=None,
                    on_item=lambda item_id, x: fed.append((item_id, x))),
                offline=lambda **kwargs: _simulate_fed(fed, truth, Path(tmp) / "fed.csv", seed, **kwargs),
                extra={"source": "video", "extractor": extractor.name, "features": extractor.dim},
            )
            return await _run(settings, feed, label_delay, say, annotator)


def _who(annotator: str, label_delay: float) -> str:
    return f"annotator delay {label_delay}s" if annotator == "simulated" else f"you answer ({annotator})"


def default_digits_data() -> Path:
    """The digits the video demo renders: ``$STREAMER_DATA_DIR``'s copy, else the bundled one."""
    path = find_stream(DIGITS_FILE)
    assert path is not None, "the package ships digits_frames.csv.gz"
    return path


def _simulate_fed(fed: list[tuple[str, np.ndarray]], truth: dict[str, int], path: Path, seed: int,
                  **kwargs: Any) -> dict[str, Any]:
    """Offline run of ``streamer simulate`` over exactly the embeddings the feeder sent."""
    from streamer.simulate import run_simulation

    if not fed:
        raise FeedError("the video feeder sent no items: nothing to compare with")
    width = len(fed[0][1])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"e{j}" for j in range(width)), "label"])
        for item_id, features in fed:
            writer.writerow([*features.tolist(), truth[item_id]])
    return run_simulation(path, max_items=len(fed), seed=seed, **kwargs)


def _settings(broker: EmbeddedBroker, say, *, redis_url: str | None, **values: Any) -> Settings:
    say(f"embedded Kafka-compatible broker (Tansu) on {broker.bootstrap_servers}")
    # with Redis, a fresh namespace and key per demo: its checkpoints start a new model
    redis = {"redis_url": redis_url, "redis_prefix": f"demo-{secrets.token_hex(4)}",
             "checkpoint_key": secrets.token_hex(16)} if redis_url else {}
    return load_settings(bootstrap_servers=broker.bootstrap_servers, **values, **redis)


@dataclass
class DemoFeed:
    """What the demo streams: its ground truth, how to send it, and its offline twin.

    ``send(producer, topic)`` puts the items on the topic at ``rate`` items/s;
    ``offline(**simulate_kwargs)`` replays the same items through ``streamer simulate``.
    """

    name: str
    truth: dict[str, int]
    total: int
    rate: float
    send: Callable[[AIOKafkaProducer, str], Awaitable[Any]]
    offline: Callable[..., dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


async def _run(settings, feed: DemoFeed, label_delay: float, say,
               annotator: str = "simulated") -> dict[str, Any]:
    service = await build_service(settings)
    stop_service = asyncio.Event()
    stop_clients = asyncio.Event()
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    service_task = asyncio.create_task(
        serve(settings, stop_service, service, on_started=lambda _: started.set_result(None))
    )
    await asyncio.wait([started, service_task], return_when=asyncio.FIRST_COMPLETED)
    if service_task.done():
        service_task.result()  # raises the start-up error
    say(f"service: model {settings.model or 'default'}, policy "
        f"{service.sampler.policy}; http://127.0.0.1:{service.http_port}/metrics and /status")

    common = client_kwargs(settings)
    producer = AIOKafkaProducer(**common, linger_ms=5)
    labeller = (SimulatedLabeller(settings, feed.truth, label_delay, stop_clients, producer)
                if annotator == "simulated" else
                PeopleLabeller(annotator, settings, say, f"http://127.0.0.1:{service.http_port}"))
    (predictions, _), _, _ = await asyncio.gather(
        start_group_consumer([settings.predictions_topic], group_id="demo-scorer",
                             name="demo scorer", client=common, log=log,
                             auto_offset_reset="earliest", fetch_max_wait_ms=10),
        producer.start(), labeller.start(),
    )
    scorer = PredictionScorer(feed.truth)
    side_tasks = [asyncio.create_task(scorer.run(predictions, stop_clients))]
    say("waiting for the consumer groups to get their partitions (~1 s on the embedded broker)...")
    joined_at = None
    # the annotator and the scorer too: an annotator joining after a short stream has passed
    # would label it too late to learn anything from (accuracy at chance)
    while not (service.consuming and await labeller.joined() and predictions.assignment()):
        if service_task.done():
            service_task.result()
        if service.consuming and joined_at is None:
            joined_at = time.monotonic()
        await asyncio.sleep(0.1)
    if joined_at is not None and time.monotonic() - joined_at > 1:
        say(f"the annotator joined {time.monotonic() - joined_at:.1f} s after the service")

    started_at = time.monotonic()
    say("progress every 2 s; 'accuracy' is prequential: each item is predicted before its label "
        "could be known, over every item so far")
    progress = asyncio.create_task(progress_lines(service, scorer, feed.total, say))
    try:
        await feed.send(producer, settings.items_topic)
        labeller.stream_over()
        # drain: every item decided, every request answered, every label applied
        deadline = time.monotonic() + labeller.drain_seconds
        while time.monotonic() < deadline:
            s = service.status()
            if s["items_seen"] >= feed.total and len(scorer.seen) >= feed.total and labeller.done(s):
                break
            await asyncio.sleep(0.2)
    finally:
        elapsed = time.monotonic() - started_at
        progress.cancel()
        stop_clients.set()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        await asyncio.gather(producer.stop(), labeller.stop(), predictions.stop(),
                             return_exceptions=True)
        stop_service.set()
        with contextlib.suppress(asyncio.CancelledError):
            await service_task
    status = service.status()
    say("")
    say("replaying the same stream offline (streamer simulate) for comparison...")
    delay_items = max(0, round(label_delay * feed.rate))
    common_sim = dict(budget=settings.budget, model=settings.model or None, label_delay=delay_items)
    common_sim = {k: v for k, v in common_sim.items() if v is not None}
    random_run = feed.offline(policy="random", **common_sim)
    summary = {
        "stream": feed.name,
        "items": status["items_seen"],
        "label_requests": status["label_requests"],
        "budget": settings.budget,
        "query_rate": status["label_requests"] / max(1, status["items_seen"]),
        "labels_sent": labeller.sent,
        "annotator": annotator,
        "labels_applied": status["labels_applied"],
        "join_outcomes": status["join_outcomes"],
        "dead_letters": status["dead_letters"],
        "threshold": status["threshold"],
        "model_version": status["model_version"],
        "model": status["model"],
        "model_race": status.get("model_race"),
        "policy": status["policy"],
        "accuracy": scorer.accuracy,
        "labelled_accuracy": status["labelled_accuracy"],
        "items_per_s": status["items_seen"] / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "random_accuracy": random_run["accuracy"],
        "random_query_rate": random_run["query_rate"],
        "label_delay_items": delay_items,
        **feed.extra,
    }
    print_summary(summary, say)
    return summary


def _simulate_stream(stream: LabelledStream, **kwargs: Any) -> dict[str, Any]:
    """Offline prequential run over the same stream, with the same Sampler as the service."""
    from streamer.simulate import run_simulation

    return run_simulation(stream.source, max_items=len(stream), synthetic_items=len(stream),
                          seed=stream.seed, **kwargs)


def main(args) -> int:
    people = args.annotator != "simulated"
    # people answer slower than the simulated annotator: fewer items, replayed slower
    duration = args.duration if args.duration is not None else PEOPLE_DURATION if people else 45.0
    max_items = args.max_items if args.max_items is not None or not people else (
        PEOPLE_ITEMS if getattr(args, "video", None) is None else PEOPLE_ITEMS // 10)
    options = dict(budget=args.budget, duration=duration, label_delay=args.label_delay,
                   metrics_port=args.metrics_port, redis_url=args.redis_url, max_items=max_items,
                   model=args.model, policy=args.policy, seed=args.seed, annotator=args.annotator)
    # a bad --model, --policy or --budget: exit 2 (ConfigError) before the broker starts
    load_settings(budget=args.budget, model=args.model, policy=args.policy, seed=args.seed)
    video = getattr(args, "video", None)
    if video is None:
        data = None if args.synthetic else (Path(args.data) if args.data else default_demo_data())
        summary = asyncio.run(run_demo(data, **options))
    elif video:
        print(f"streamer demo: {video} has no labels, so the demo cannot simulate the annotator "
              "(it answers from known labels). 'streamer demo --video' renders a labelled video "
              "of digits itself; to use your video, run 'streamer run' and feed it with "
              f"'streamer feed video {video} --frames-dir DIR', and answer label requests "
              "yourself (or with your annotation tool)", file=sys.stderr)
        return 2
    elif args.synthetic:
        print("streamer demo: --video renders digits; it does not combine with --synthetic",
              file=sys.stderr)
        return 2
    else:
        try:
            summary = asyncio.run(run_video_demo(Path(args.data) if args.data else None, **options))
        except FeedError as exc:
            print(f"streamer demo: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(summary))
    return 0
