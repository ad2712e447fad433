"""Sampled frames as image files, and the ``payload_uri`` annotators open them by.

Each frame is written as ``<frames-dir>/<item id>.png`` (or ``.jpg``), atomically (a
temporary name, then a rename: a reader never sees half a file). Its URI is the file's
``file://`` URI, or ``<uri-prefix><item id>.png`` when a prefix such as
``s3://bucket/cam3/`` or ``https://frames.example/cam3/`` is given: copying the folder to that
place (``aws s3 sync``, a web server's root, ...) is the user's job; the feeder only writes
the folder.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamer.feed.errors import FeedError
from streamer.feed.frames import require_av

__all__ = ["IMAGE_FORMATS", "FrameStore", "encode_image"]

# format name -> (file suffix, FFmpeg encoder, pixel format it encodes from)
IMAGE_FORMATS = {"png": (".png", "png", "rgb24"), "jpg": (".jpg", "mjpeg", "yuvj420p")}


class _Encoders:
    """One FFmpeg image encoder per (format, width, height), reused frame after frame."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[str, int, int], Any] = {}

    def encode(self, image: np.ndarray, fmt: str, quality: int = 90) -> bytes:
        av = require_av()
        if fmt not in IMAGE_FORMATS:
            raise ValueError(f"unknown image format {fmt!r}: use {' or '.join(IMAGE_FORMATS)}")
        _, codec, pix_fmt = IMAGE_FORMATS[fmt]
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"an image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        if fmt == "jpg" and (width % 2 or height % 2):  # 4:2:0 JPEG wants even sides
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            height, width = image.shape[:2]
        key = (fmt, width, height)
        context = self._contexts.get(key)
        if context is None:
            context = av.CodecContext.create(codec, "w")
            context.width, context.height, context.pix_fmt = width, height, pix_fmt
            context.time_base = Fraction(1, 25)
            if fmt == "jpg":
                # FFmpeg's qscale: 2 (best) .. 31; quality 90 -> about 4
                context.qscale = max(2, min(31, round(2 + (100 - quality) * 0.2)))
                context.flags |= av.codec.context.Flags.qscale
            self._contexts[key] = context
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if pix_fmt != "rgb24":
            frame = frame.reformat(format=pix_fmt)
        return b"".join(bytes(packet) for packet in context.encode(frame))


_shared = _Encoders()


def encode_image(image: np.ndarray, fmt: str = "png") -> bytes:
    """PNG or JPEG bytes of an ``(H, W, 3)`` uint8 RGB image (PyAV's bundled encoders).

    >>> encode_image(np.zeros((4, 6, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    return _shared.encode(image, fmt)


class FrameStore:
    """Write frames into a folder and say where annotators find them.

    Parameters
    ----------
    directory
        Folder to write into (created with its parents).
    uri_prefix
        Prefix of the URIs instead of ``file://`` ones, e.g. ``s3://bucket/cam3/``: the URI
        is the prefix followed by the file name. Uploading the folder there is up to you.
    image_format
        ``png`` (lossless, default) or ``jpg`` (smaller).
    """

    def __init__(self, directory: str | Path, *, uri_prefix: str | None = None,
                 image_format: str = "png") -> None:
        if image_format not in IMAGE_FORMATS:
            raise FeedError(f"unknown image format {image_format!r}: use {' or '.join(IMAGE_FORMATS)}")
        self.directory = Path(directory).resolve()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedError(f"cannot create the frames folder {self.directory}: {exc.strerror}") from None
        self.uri_prefix = uri_prefix
        self.image_format = image_format
        self.suffix = IMAGE_FORMATS[image_format][0]
        self._encoders = _Encoders()
        self.written = 0

    def path_of(self, name: str) -> Path:
        """Where the frame called ``name`` (an item id) is written."""
        return self.directory / f"{name}{self.suffix}"

    def uri_of(self, name: str) -> str:
        """The ``payload_uri`` of the frame called ``name``."""
        if self.uri_prefix is not None:
            return f"{self.uri_prefix}{name}{self.suffix}"
        return self.path_of(name).as_uri()

    def put(self, name: str, image: np.ndarray) -> str:
        """Write one frame; return its URI.

        Raises
        ------
        FeedError
            The folder cannot be written (full disk, permissions).
        """
        data = self._encoders.encode(image, self.image_format)
        path = self.path_of(name)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as exc:
            raise FeedError(f"cannot write {path}: {exc.strerror} (free space or permissions of "
                            f"--frames-dir?)") from None
        self.written += 1
        return self.uri_of(name)
