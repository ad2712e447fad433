"""``streamer feed video``: sampled frames of a video, a folder of images or a camera as items.

Each sampled frame becomes an item ``{"id": "<stream>-<frame index, 7 digits>", "features":
embedding, "ts": frame time, "stream": stream name, "payload_uri": the stored frame,
"meta": {"frame": index}}``. Decoding, sampling, extraction and writing the frame run in a
background thread, in batches of frames (one at a time from a camera); sending is the send
loop every feeder shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
from aiokafka import AIOKafkaProducer

from streamer.feed.background import in_background
from streamer.feed.errors import FeedError
from streamer.feed.extractors import FrameExtractor, make_extractor
from streamer.feed.frame_store import FrameStore
from streamer.feed.frames import BadFrame, Frame, FrameSampler, FrameSource, open_source
from streamer.feed.pacing import Pacer
from streamer.feed.progress import Progress
from streamer.feed.report import FeedReport
from streamer.feed.sending import Outgoing, Skipped, send_all
from streamer.feed.sink import ItemSink
from streamer.wire import JSON, MAX_STREAM_LENGTH, encode_item

__all__ = ["feed_video", "stream_name", "video_items"]

OnItem = Callable[[str, np.ndarray], None]


_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def stream_name(given: str | None, source: FrameSource) -> str:
    """The stream name: ``given`` (checked), else the source's name with odd characters as ``_``.

    It prefixes item ids and frame file names, so it must be safe in both.
    """
    if given is None:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", source.name).lstrip("._-") or "video"
        return name[:MAX_STREAM_LENGTH]
    if not _STREAM_NAME.fullmatch(given) or len(given) > MAX_STREAM_LENGTH:
        raise FeedError(f"stream name {given!r} cannot name frame files: use letters, digits, "
                        f"'.', '_' and '-', starting with a letter or digit, at most "
                        f"{MAX_STREAM_LENGTH} characters (--stream)")
    return given


def video_items(
    source: FrameSource,
    extractor: FrameExtractor,
    *,
    stream: str,
    fps: float | None,
    store: FrameStore | None = None,
    content_type: str = JSON,
    batch_size: int = 16,
    stop: threading.Event | None = None,
    on_item: OnItem | None = None,
    max_frames: int | None = None,
) -> Iterator[Outgoing | Skipped]:
    """Sample, embed, store and encode the frames of ``source``, a batch at a time.

    ``on_item(id, embedding)`` is called for every item made (the demo keeps them); reading
    stops after ``max_frames`` good frames.
    """
    batch = 1 if source.live else max(1, batch_size)
    pending: list[Frame] = []
    taken = 0
    for frame in source.frames(FrameSampler(fps), stop):
        if isinstance(frame, BadFrame):
            yield Skipped(f"frame {frame.index}: {frame.reason}")
            continue
        if max_frames is not None and taken >= max_frames:
            break
        taken += 1
        pending.append(frame)
        if len(pending) >= batch:
            yield from _encode(pending, extractor, stream, store, content_type, on_item)
            pending = []
    yield from _encode(pending, extractor, stream, store, content_type, on_item)


def _encode(frames: Sequence[Frame], extractor: FrameExtractor, stream: str, store: FrameStore | None,
            content_type: str, on_item: OnItem | None) -> Iterator[Outgoing | Skipped]:
    if not frames:
        return
    embeddings = np.asarray(extractor([f.image for f in frames]), dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(frames):
        raise FeedError(f"extractor {extractor.name} gave shape {embeddings.shape} for "
                        f"{len(frames)} frames; it must give one row per frame")
    for frame, features in zip(frames, embeddings, strict=True):
        item_id = f"{stream}-{frame.index:07d}"
        if not np.isfinite(features).all():
            yield Skipped(f"frame {frame.index}: extractor {extractor.name} gave NaN or inf")
            continue
        uri = store.put(item_id, frame.image) if store is not None else None
        value = encode_item(item_id, features, ts=frame.ts, stream=stream, payload_uri=uri,
                            meta={"frame": frame.index}, content_type=content_type)
        if on_item is not None:
            on_item(item_id, features)
        yield Outgoing(item_id.encode(), value, frame.ts, f"frame {frame.index}")


async def feed_video(
    source: str | Path | FrameSource,
    producer: AIOKafkaProducer,
    topic: str,
    *,
    fps: float | None = 1.0,
    source_fps: float | None = None,
    extractor: str | FrameExtractor = "builtin",
    input_size: int = 224,
    device: str = "cpu",
    frames_dir: str | Path | None = None,
    uri_prefix: str | None = None,
    image_format: str = "png",
    stream: str | None = None,
    speed: float | None = None,
    content_type: str = JSON,
    skip_bad: bool = False,
    max_items: int | None = None,
    batch_size: int = 16,
    max_request_size: int = 1_048_576,
    progress_out: TextIO | None = sys.stderr,
    stop: asyncio.Event | None = None,
    on_item: OnItem | None = None,
) -> FeedReport:
    """Send the sampled frames of ``source`` to ``topic`` as items; wait for every ack.

    Parameters
    ----------
    source
        A video file, a folder of images, a camera (``/dev/video0``, ``0``), or an opened source.
    producer
        A started producer.
    topic
        The items topic.
    fps
        Frames kept per second of the source clock (None or 0: every frame).
    source_fps
        Frame rate of a folder of images (default 1).
    extractor
        ``builtin``, ``torchscript:PATH``, or an extractor object.
    input_size, device
        Input side and torch device of a TorchScript extractor.
    frames_dir
        Write each sampled frame here and send its ``payload_uri``; None sends none.
    uri_prefix
        URIs are this prefix plus the file name instead of ``file://`` paths.
    image_format
        ``png`` or ``jpg``.
    stream
        Stream name (default: the source's name); prefixes the ids and frame files.
    speed
        Pace by the frames' own timestamps, this many times faster; None = as fast as possible
        (a camera is paced by itself).
    content_type
        JSON or msgpack.
    skip_bad
        Skip unreadable images of a folder (counted) instead of stopping.
    max_items
        Stop after this many items.
    batch_size
        Frames embedded per extractor call.
    max_request_size
        The producer's request limit.
    progress_out
        Where the progress line goes (None: nowhere).
    stop
        Set it to end the feed early, cleanly (what was read is sent and acknowledged).
    on_item
        Called with ``(id, embedding)`` of every item made.

    Raises
    ------
    FeedError
        An unreadable source, a missing extractor dependency, a folder that cannot be written,
        or a broker failure.
    """
    opened = source if isinstance(source, FrameSource) else open_source(source, source_fps=source_fps)
    stream = stream_name(stream, opened)
    embed = make_extractor(extractor, input_size=input_size, device=device) if isinstance(extractor, str) else extractor
    store = FrameStore(frames_dir, uri_prefix=uri_prefix, image_format=image_format) if frames_dir else None
    total = opened.total
    if total is not None and fps and opened.fps and fps < opened.fps:
        total = math.ceil(total * fps / opened.fps)
    if max_items is not None:
        total = min(total, max_items) if total is not None else max_items
    report = FeedReport(source=opened.location, topic=topic, what="frames")
    report.extra.update(stream=stream, extractor=embed.name, frames_dir=str(store.directory) if store else None)
    sink = ItemSink(producer, topic, content_type=content_type, max_request_size=max_request_size)
    pacer = Pacer(speed=None if opened.live else speed)
    batches = in_background(
        lambda halt: video_items(opened, embed, stream=stream, fps=fps, store=store,
                                 content_type=content_type, batch_size=batch_size, stop=halt,
                                 on_item=on_item, max_frames=max_items),
        batch=max(1, batch_size), live=opened.live, depth=4,
    )
    async with contextlib.aclosing(batches):
        await send_all(batches, sink, report, pacer=pacer, progress=Progress(total, progress_out, what="frames"),
                       skip_bad=skip_bad, max_items=max_items, stop=stop)
    if store is not None and report.sent:
        report.extra["frames_written"] = store.written
    return report
