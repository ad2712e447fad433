"""Feeders: put real streams on the items topic.

``streamer feed sensors`` replays CSV or JSON Lines (files or stdin) at their own pace, a
fixed rate, or as fast as possible; ``streamer feed video`` samples frames of a video file,
a folder of images or a camera, turns each into an embedding and stores it for annotators.
"""

from __future__ import annotations

from streamer.feed.errors import FeedError
from streamer.feed.report import FeedReport

__all__ = ["FeedError", "FeedReport"]
