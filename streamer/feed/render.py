"""Write frames as a video file, and render a labelled video from the 8x8 digit images.

The demo (``streamer demo --video``) and the tests make their videos here, with the same
library the feeder decodes with, instead of downloading any.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamer.data import iter_csv_batches
from streamer.feed.errors import FeedError
from streamer.feed.frames import require_av

__all__ = ["digit_frames", "render_digits_video", "write_video"]


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, codec: str = "mpeg4",
                quality: int = 2) -> int:
    """Encode ``(H, W, 3)`` uint8 RGB frames (all one size, even sides) into a video file.

    Parameters
    ----------
    path
        Output file; its suffix picks the container (``.mp4``, ``.mkv``, ``.avi``...).
    frames
        The frames, in order.
    fps
        Frames per second.
    codec
        FFmpeg encoder (``mpeg4`` is in every FFmpeg build).
    quality
        ``qscale`` of the encoder: 2 is nearly lossless, 31 the smallest.

    Returns
    -------
    int
        Frames written.
    """
    av = require_av()
    count = 0
    with av.open(str(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                height, width = image.shape[:2]
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.qscale = quality
                stream.codec_context.flags |= av.codec.context.Flags.qscale
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


def digit_frames(data: str | Path, *, size: int = 64, max_digits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digit images of ``digits_frames.csv.gz`` as ``size x size`` RGB frames.

    Pixel values 0..16 become gray levels 0..255 (white digit on black), each pixel a
    ``size/8``-pixel square.

    Returns
    -------
    tuple
        ``(frames (N, size, size, 3) uint8, labels (N,) int)``.
    """
    if size % 8:
        raise ValueError(f"size must be a multiple of 8, got {size}")
    xs, ys = [], []
    count = 0
    for X, y, names in iter_csv_batches(data, batch_size=512):
        if len(names) != 64:
            raise FeedError(f"{data}: expected 64 pixel columns (8x8 digits), got {len(names)}")
        xs.append(X)
        ys.append(y)
        count += len(X)
        if max_digits is not None and count >= max_digits:
            break
    pixels = np.vstack(xs)[:max_digits]
    labels = np.concatenate(ys)[:max_digits]
    gray = np.clip(pixels * (255.0 / 16.0), 0, 255).astype(np.uint8).reshape(-1, 8, 8)
    scale = size // 8
    big = gray.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.repeat(big[..., None], 3, axis=3), labels


def render_digits_video(data: str | Path, path: str | Path, *, size: int = 64, fps: float = 20.0,
                        frames_per_digit: int = 2, max_digits: int | None = None) -> np.ndarray:
    """Render one digit after another into a video; return the label of every frame.

    Frame ``i`` shows digit ``i // frames_per_digit`` of the file, so a feed sampled at
    ``fps / frames_per_digit`` frames per second sees each digit once.
    """
    frames, labels = digit_frames(data, size=size, max_digits=max_digits)
    write_video(path, (f for f in frames for _ in range(frames_per_digit)), fps)
    return np.repeat(labels, frames_per_digit)
