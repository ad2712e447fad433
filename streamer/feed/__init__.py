"""Feeders: put real streams on the items topic.

``streamer feed sensors`` replays CSV or JSON Lines (files or stdin) at their own pace, a
fixed rate, or as fast as possible; ``streamer feed video`` samples frames of a video file,
a folder of images or a camera, turns each into an embedding and stores it for annotators.
Both are also coroutines for programs that hold their own started producer, e.g.
``await feed_sensors("plant.csv.gz", producer, "items", rate=500)``.
"""

from __future__ import annotations

from streamer.feed.errors import FeedError
from streamer.feed.extractors import (
    BuiltinExtractor,
    FrameExtractor,
    TorchExtractor,
    make_extractor,
)
from streamer.feed.frame_store import FrameStore
from streamer.feed.frames import FrameSource, open_source
from streamer.feed.report import FeedReport
from streamer.feed.rows import RowSpec
from streamer.feed.sensors import feed_sensors
from streamer.feed.video import feed_video

__all__ = [
    "BuiltinExtractor",
    "FeedError",
    "FeedReport",
    "FrameExtractor",
    "FrameSource",
    "FrameStore",
    "RowSpec",
    "TorchExtractor",
    "feed_sensors",
    "feed_video",
    "make_extractor",
    "open_source",
]
