"""Frames of a video file, a folder of images, or a camera, sampled at a chosen rate.

Decoding uses PyAV (``pip install 'streamer[video]'``), whose wheels bundle FFmpeg: every
common container and codec, PNG/JPEG images and cameras (v4l2 on Linux, avfoundation on
macOS, dshow on Windows) with no system library to install.

Timestamps (``Frame.ts``): a video file's own presentation time in seconds from its start;
a folder's ``i / source_fps`` (its images in natural name order: ``f2.png`` before
``f10.png``); a camera's Unix time at capture.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from streamer.feed.errors import FeedError

__all__ = [
    "IMAGE_SUFFIXES",
    "BadFrame",
    "Frame",
    "FrameSampler",
    "FrameSource",
    "open_source",
    "require_av",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_CAMERA_FORMATS = {"linux": "v4l2", "darwin": "avfoundation", "win32": "dshow"}


def require_av() -> ModuleType:
    """The ``av`` module (PyAV), or a :class:`FeedError` saying how to install it."""
    try:
        import av
    except ImportError:
        raise FeedError("reading video needs PyAV, which is not installed: pip install "
                        "'streamer[video]' (or pip install av; its wheels bundle FFmpeg)") from None
    return av


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its position among all frames of the source, its time, RGB pixels."""

    index: int
    ts: float
    image: np.ndarray  # (H, W, 3) uint8, RGB


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be read (an unreadable image in a folder), with the reason."""

    index: int
    reason: str


class FrameSampler:
    """Keep at most ``fps`` frames per second of the source clock: the first of each 1/fps slot.

    Parameters
    ----------
    fps
        Frames per second to keep; None or 0 keeps every frame.

    Examples
    --------
    >>> sampler = FrameSampler(fps=2)
    >>> [ts for ts in (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2) if sampler.take(ts)]
    [0.0, 0.5, 1.0]
    """

    def __init__(self, fps: float | None) -> None:
        if fps is not None and fps < 0:
            raise ValueError(f"--fps must be 0 (every frame) or above, got {fps}")
        self.fps = fps or None
        self._last_slot: int | None = None

    def take(self, ts: float) -> bool:
        """Whether the frame at ``ts`` seconds is kept."""
        if self.fps is None:
            return True
        slot = math.floor(ts * self.fps + 1e-6)  # 1e-6: frame times like 0.1 * 10 = 0.9999
        if self._last_slot is not None and slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _camera(source: str) -> tuple[str, str] | None:
    """(device, ffmpeg input format) when ``source`` names a camera, else None."""
    fmt = _CAMERA_FORMATS.get(sys.platform)
    if source.isdigit():
        if fmt is None:
            raise FeedError(f"camera indexes are not supported on {sys.platform}: give the device")
        device = {"linux": f"/dev/video{source}", "darwin": source,
                  "win32": f"video={source}"}[sys.platform]
        return device, fmt
    if source.startswith("/dev/video"):
        return source, "v4l2"
    return None


class FrameSource:
    """Where frames come from: open it with :func:`open_source`, then iterate :meth:`frames`.

    Attributes
    ----------
    name
        A stream name for it: the file or folder name up to its first dot, ``video0`` for a camera.
    kind
        ``file``, ``folder`` or ``camera``.
    total
        Frames in the source when known (None for cameras and some containers).
    fps
        Its frame rate when known.
    """

    def __init__(self, location: str, kind: str, name: str, *, total: int | None = None,
                 fps: float | None = None, images: list[Path] | None = None,
                 camera_format: str | None = None) -> None:
        self.location = location
        self.kind = kind
        self.name = name
        self.total = total
        self.fps = fps
        self._images = images or []
        self._camera_format = camera_format

    @property
    def live(self) -> bool:
        """Whether frames happen now (a camera), not read from storage."""
        return self.kind == "camera"

    def frames(self, sampler: FrameSampler, stop: threading.Event | None = None) -> Iterator[Frame | BadFrame]:
        """The frames ``sampler`` keeps, decoded to RGB (only those are converted)."""
        if self.kind == "folder":
            yield from self._folder_frames(sampler, stop)
        else:
            yield from self._decoded_frames(sampler, stop)

    def _folder_frames(self, sampler: FrameSampler, stop: threading.Event | None) -> Iterator[Frame | BadFrame]:
        av = require_av()
        period = 1.0 / (self.fps or 1.0)
        for index, path in enumerate(self._images):
            if stop is not None and stop.is_set():
                return
            ts = index * period
            if not sampler.take(ts):
                continue
            try:
                with av.open(str(path)) as container:
                    frame = next(container.decode(video=0))
                    image = frame.to_ndarray(format="rgb24")
            except (av.error.FFmpegError, StopIteration, OSError) as exc:
                yield BadFrame(index, f"{path.name} is not a readable image: {exc}")
                continue
            yield Frame(index, ts, image)

    def _decoded_frames(self, sampler: FrameSampler, stop: threading.Event | None) -> Iterator[Frame | BadFrame]:
        av = require_av()
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate) if stream.average_rate else (self.fps or 25.0)
            index = -1
            try:
                for frame in container.decode(stream):
                    index += 1
                    if stop is not None and stop.is_set():
                        return
                    if self.live:
                        ts = time.time()
                        keep = sampler.take(ts)
                    else:
                        ts = float(frame.time) if frame.time is not None else index / rate
                        keep = sampler.take(ts)
                    if keep:
                        yield Frame(index, ts, frame.to_ndarray(format="rgb24"))
            except av.error.FFmpegError as exc:
                raise FeedError(f"{self.location}: decoding stopped after frame {index}: {exc}; "
                                "the frames before it were fed") from None
        finally:
            container.close()

    def _open(self) -> Any:
        av = require_av()
        try:
            if self._camera_format is not None:
                return av.open(self.location, format=self._camera_format)
            return av.open(self.location)
        except av.error.FFmpegError as exc:
            if self.kind == "camera":
                raise FeedError(f"cannot open camera {self.location}: {exc} (is it connected and "
                                "not used by another program? on Linux, ls /dev/video*)") from None
            raise FeedError(f"cannot read {self.location} as a video: {exc} (is it a video file? "
                            "a folder of images and a camera device work too)") from None


def open_source(source: str | Path, *, source_fps: float | None = None) -> FrameSource:
    """Open a video file, a folder of images, or a camera (``/dev/video0`` or an index like ``0``).

    A file is probed at once, so that an unreadable one fails before anything is sent.

    Parameters
    ----------
    source
        The file, folder or camera.
    source_fps
        Frame rate of a folder of images (default 1): image ``i`` is at ``i / source_fps`` s.

    Raises
    ------
    FeedError
        Nothing there, a folder without images, a file that is no video, a camera that cannot
        be opened, or PyAV missing.
    """
    text = str(source)
    camera = _camera(text)
    if camera is not None:
        device, fmt = camera
        name = "video" + text if text.isdigit() else Path(device).name
        found = FrameSource(device, "camera", name, camera_format=fmt)
        found._open().close()
        return found
    path = Path(text)
    name = path.name.split(".")[0] or "video"
    if path.is_dir():
        images = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                        key=_natural_key)
        if not images:
            raise FeedError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        require_av()
        return FrameSource(str(path), "folder", name, total=len(images), fps=source_fps or 1.0,
                           images=images)
    if not path.exists():
        raise FeedError(f"no such file, folder or camera: {text}")
    found = FrameSource(str(path), "file", name)
    container = found._open()
    try:
        if not container.streams.video:
            raise FeedError(f"{path} has no video stream")
        stream = container.streams.video[0]
        found.fps = float(stream.average_rate) if stream.average_rate else None
        found.total = int(stream.frames) or None
        if found.total is None and container.duration and found.fps:
            found.total = round(container.duration / 1_000_000 * found.fps)
    finally:
        container.close()
    return found
