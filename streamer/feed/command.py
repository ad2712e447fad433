"""``streamer feed sensors|video``: the feeders' command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from streamer.feed.errors import FeedError
from streamer.feed.report import FeedReport
from streamer.wire import FLOAT32, JSON, MSGPACK

__all__ = ["register"]

# the same names as `streamer produce --content-type`
CONTENT_TYPES = {"json": JSON, "msgpack": MSGPACK, "float32": FLOAT32}

_SENSORS_HELP = """\
Replay a CSV or JSON Lines file (plain or .gz), or stdin (-), onto the items topic.

Columns: 'id' is the item id (default: <stream>-<row number>, 0-based, 7 digits: the ids
'streamer annotate --data FILE' answers for); 'ts' is the item time, seconds or ISO 8601,
sent as ts and used by --speed/--realtime; 'label' is never sent; every other column is a
numeric feature. JSON Lines rows are objects: {"features": [...], ...} or flat
{"x0": 1.5, "x1": 2, "label": 0} (numeric fields, the first row's order).

A bad row (wrong number of values, not a number, NaN/inf, bad JSON) stops the feed with
its line number; --skip-bad skips it, counts it and lists the first ten at the end.
Progress goes to stderr; the totals at the end count what the broker acknowledged.
"""

_SENSORS_EXAMPLES = """\
examples:
  streamer feed sensors plant.csv.gz --rate 500
  streamer feed sensors events.jsonl --realtime --items-topic items
  streamer feed sensors log.csv --speed 60 --drop label,operator --skip-bad
  tail -f readings.jsonl | streamer feed sensors - --stream line3
"""


_VIDEO_HELP = """\
Sample frames of a video file, a folder of images or a camera, turn each into an
embedding, and feed them as items: id <stream>-<frame index, 7 digits>, features = the
embedding, ts = frame time (seconds from the start of a file, i/--source-fps in a folder,
Unix time for a camera), stream, meta {"frame": index}, and payload_uri = the stored frame
with --frames-dir.

Extractors: 'builtin' needs only numpy: a zero-mean 8x8 grayscale thumbnail, RGB
histograms and 2x2 cells of gradient-orientation histograms, L2-normalised (124 values).
Good for scene changes, colour, layout, lighting and simple shapes; it does not recognise
objects. 'torchscript:PATH' (torch.jit.save) or 'export:PATH' (torch.export.save, .pt2)
runs your module (needs PyTorch) on float32 NCHW RGB in [0, 1] resized to --input-size;
normalise inside the module; its output is flattened per frame.

Decoding uses PyAV (pip install 'streamer[video]'). A file is fed as fast as possible
unless --speed/--realtime; a camera runs until Ctrl-C or --max-items.
"""

_VIDEO_EXAMPLES = """\
examples:
  streamer feed video clip.mp4 --fps 2 --frames-dir /data/frames
  streamer feed video clip.mp4 --realtime --frames-dir frames --uri-prefix s3://bucket/frames/
  streamer feed video /dev/video0 --fps 1 --frames-dir frames --stream door-cam
  streamer feed video shots/ --source-fps 5 --extractor torchscript:resnet18.pt --frames-dir frames
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``feed`` with its ``sensors`` and ``video`` subcommands to ``subparsers``."""
    feed = subparsers.add_parser(
        "feed", help="feed a sensor file/stdin or a video/camera onto the items topic",
        description="Feed a stream onto the items topic: 'sensors' replays CSV or JSON Lines, "
                    "'video' turns sampled frames into embeddings.")
    kinds = feed.add_subparsers(dest="feed_kind", required=True, metavar="KIND")

    sensors = kinds.add_parser("sensors", help="replay a CSV / JSON Lines file or stdin",
                               description=_SENSORS_HELP, epilog=_SENSORS_EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    sensors.add_argument("source", metavar="FILE|-", help="CSV or JSON Lines file, .gz or not; - = stdin")
    sensors.add_argument("--format", choices=("csv", "jsonl"), default=None,
                         help="file format (default: from the name, else from the first character)")
    sensors.add_argument("--stream", default=None,
                         help="stream name: the 'stream' field and the prefix of generated ids "
                              "(default: the file name up to its first dot; stdin for -)")
    sensors.add_argument("--id-column", default="id", metavar="NAME", help="column of item ids (id)")
    sensors.add_argument("--ts-column", default="ts", metavar="NAME",
                         help="column of timestamps, seconds or ISO 8601 (ts)")
    sensors.add_argument("--drop", default="label", metavar="COL[,COL...]",
                         help="columns never sent as features (default: label; '' sends every column)")
    sensors.add_argument("--columns", default=None, metavar="COL[,COL...]",
                         help="send only these columns as features, in this order")
    _pace_flags(sensors, rate=True)
    _common_flags(sensors, content_types=sorted(CONTENT_TYPES))
    sensors.set_defaults(func=_cmd_sensors)

    video = kinds.add_parser("video", help="embed sampled frames of a video, image folder or camera",
                             description=_VIDEO_HELP, epilog=_VIDEO_EXAMPLES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    video.add_argument("source", metavar="SOURCE",
                       help="video file, folder of images (png/jpg), or camera (/dev/video0, or an "
                            "index such as 0)")
    video.add_argument("--fps", type=float, default=1.0, metavar="F",
                       help="frames kept per second of video (default 1; 0 = every frame)")
    video.add_argument("--source-fps", type=_positive_float, default=None, metavar="F",
                       help="frame rate of a folder of images, for their ts (default 1)")
    video.add_argument("--extractor", default="builtin", metavar="builtin|torchscript:PATH|export:PATH",
                       help="frame -> embedding: builtin (numpy only: thumbnail, colour and "
                            "gradient histograms; 124 values), or your TorchScript module or "
                            "torch.export program (.pt2)")
    video.add_argument("--input-size", type=_positive_int, default=224, metavar="S",
                       help="torch module input: frames resized to S x S, float32 NCHW RGB in "
                            "[0, 1] (224)")
    video.add_argument("--device", default="cpu", help="torch device of a torch extractor (cpu)")
    video.add_argument("--batch-size", type=_positive_int, default=16, metavar="N",
                       help="frames embedded per extractor call (16; a camera goes one by one)")
    video.add_argument("--frames-dir", default=None, metavar="DIR",
                       help="write each sampled frame here as <id>.png and send its payload_uri "
                            "(without it items carry no payload_uri)")
    video.add_argument("--uri-prefix", default=None, metavar="PREFIX",
                       help="payload_uri = PREFIX + file name (e.g. s3://bucket/cam3/) instead of "
                            "file://; copying --frames-dir there is up to you")
    video.add_argument("--image-format", choices=("png", "jpg"), default="png",
                       help="format of the stored frames (png)")
    video.add_argument("--stream", default=None,
                       help="stream name: the 'stream' field, and the prefix of ids and frame "
                            "files (default: the source's name)")
    _pace_flags(video, rate=False)
    _common_flags(video, content_types=["json", "msgpack"])
    video.set_defaults(func=_cmd_video)
    return feed


def _pace_flags(parser: argparse.ArgumentParser, *, rate: bool) -> None:
    pace = parser.add_mutually_exclusive_group()
    if rate:
        pace.add_argument("--rate", type=_positive_float, default=None, metavar="R",
                          help="send R items/s, evenly spaced")
    pace.add_argument("--speed", type=_positive_float, default=None, metavar="X",
                      help="replay at the stream's own timestamps, X times faster (1 = real time)")
    pace.add_argument("--realtime", action="store_const", const=1.0, dest="speed",
                      help="replay at the stream's own timestamps (= --speed 1)")


def _common_flags(parser: argparse.ArgumentParser, content_types: list[str]) -> None:
    parser.add_argument("--bootstrap-servers", default=None, metavar="HOST:PORT[,...]",
                        help="Kafka bootstrap servers (default: STREAMER_BOOTSTRAP_SERVERS, else "
                             "127.0.0.1:9092)")
    parser.add_argument("--items-topic", "--topic", dest="items_topic", default=None,
                        help="topic to feed (default: STREAMER_ITEMS_TOPIC, else items)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="settings file of 'streamer run' (TOML or JSON): Kafka security "
                             "settings are read from it and from STREAMER_* variables")
    parser.add_argument("--content-type", choices=content_types, default="json",
                        help="item format: json (default), msgpack" + (
                            ", or float32 (raw features only: no ts, stream, payload_uri or "
                            "meta; the id is the record key)" if "float32" in content_types else ""))
    parser.add_argument("--max-items", type=_positive_int, default=None, metavar="N",
                        help="stop after N items")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad input, count it and list the first ten, instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    parser.add_argument("--json", action="store_true",
                        help="print the totals as one JSON object on stdout")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _cmd_sensors(args: argparse.Namespace) -> int:
    from streamer.feed.rows import RowSpec, default_stream_name
    from streamer.feed.sensors import feed_sensors

    spec = RowSpec(
        stream=args.stream or default_stream_name(args.source),
        id_column=args.id_column,
        ts_column=args.ts_column,
        drop=frozenset(_names(args.drop)),
        columns=tuple(_names(args.columns)) if args.columns is not None else None,
    )
    if args.source != "-" and not Path(args.source).is_file():
        print(f"streamer feed: no such file: {args.source}", file=sys.stderr)
        return 1
    if args.columns is not None and not spec.columns:
        print("streamer feed: --columns names no column", file=sys.stderr)
        return 2

    def feed(producer: Any, topic: str, stop: asyncio.Event) -> Awaitable[FeedReport]:
        return feed_sensors(
            args.source, producer, topic, spec=spec, fmt=args.format, rate=args.rate,
            speed=args.speed, content_type=CONTENT_TYPES[args.content_type], skip_bad=args.skip_bad,
            max_items=args.max_items, progress_out=None if args.quiet else sys.stderr,
        )

    return _run_feed(args, feed)


def _cmd_video(args: argparse.Namespace) -> int:
    from streamer.feed.extractors import make_extractor
    from streamer.feed.frames import open_source
    from streamer.feed.video import feed_video

    if args.fps < 0:
        print("streamer feed: --fps must be 0 (every frame) or above", file=sys.stderr)
        return 2
    try:  # before connecting: a wrong path or a missing library fails at once
        source = open_source(args.source, source_fps=args.source_fps)
        extractor = make_extractor(args.extractor, input_size=args.input_size, device=args.device)
    except FeedError as exc:
        print(f"streamer feed: {exc}", file=sys.stderr)
        return 1
    if args.frames_dir is None and not args.quiet:
        print("streamer feed: frames are not stored, so items carry no payload_uri (add "
              "--frames-dir DIR so that annotators can see them)", file=sys.stderr)

    def feed(producer: Any, topic: str, stop: asyncio.Event) -> Awaitable[FeedReport]:
        return feed_video(
            source, producer, topic, fps=args.fps, extractor=extractor,
            frames_dir=args.frames_dir, uri_prefix=args.uri_prefix, image_format=args.image_format,
            stream=args.stream, speed=args.speed, content_type=CONTENT_TYPES[args.content_type],
            skip_bad=args.skip_bad, max_items=args.max_items, batch_size=args.batch_size,
            progress_out=None if args.quiet else sys.stderr, stop=stop,
        )

    return _run_feed(args, feed)


def _run_feed(args: argparse.Namespace, feed: Callable[[Any, str, asyncio.Event], Awaitable[FeedReport]]) -> int:
    """Start a producer from the settings, run ``feed``, print the totals; the exit code."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from streamer.config import load_settings
    from streamer.kafka.client import client_kwargs

    settings = load_settings(args.config, bootstrap_servers=args.bootstrap_servers,
                             items_topic=args.items_topic)

    async def go() -> FeedReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        producer = AIOKafkaProducer(**client_kwargs(settings))
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise FeedError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc} (check "
                            "--bootstrap-servers, that the broker runs, and the security "
                            "settings)") from exc
        try:
            return await feed(producer, settings.items_topic, stop)
        finally:
            await producer.stop()

    try:
        report = asyncio.run(go())
    except FeedError as exc:
        print(f"streamer feed: {exc}", file=sys.stderr)
        return 1
    print(report.summary(), file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict()))
    return 0
