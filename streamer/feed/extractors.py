"""Frame -> embedding: a built-in extractor that needs only numpy, or your TorchScript module.

``builtin`` (:class:`BuiltinExtractor`) is hand-made, not learned: a zero-mean 8x8 grayscale
thumbnail (layout), per-channel colour histograms (palette) and a 2x2 grid of gradient
orientation histograms (HOG-like: edges and simple shapes), each block L2-normalised, then the
whole vector. It is good for scene changes, colour and layout, lighting, simple shapes and
large digits or symbols; it does NOT recognise objects or semantics (a red car and a red door
look alike to it). For that, bring a trained network as TorchScript.

``torchscript:PATH`` and ``export:PATH`` (:class:`TorchExtractor`) run your module: TorchScript
(``torch.jit.script`` or ``torch.jit.trace``, saved with ``.save(PATH)``) or, as PyTorch now
recommends, a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``; export it
with a dynamic batch dimension, else it runs one frame at a time). Input convention: a
float32 tensor ``(N, 3, S, S)``, RGB, values in [0, 1], each frame resized to ``S x S``
(``--input-size``, default 224; the aspect ratio is not kept). Normalise inside your module
(e.g. ImageNet mean and std in ``forward``). Output: one tensor ``(N, ...)``, flattened to
``(N, D)`` (the first element when it returns a tuple). PyTorch is optional:
``pip install 'streamer[torch]'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamer.feed.errors import FeedError

__all__ = ["BuiltinExtractor", "FrameExtractor", "TorchExtractor", "TorchScriptExtractor", "make_extractor"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class FrameExtractor(Protocol):
    """Turns a batch of RGB frames into one embedding per frame."""

    name: str

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float embeddings of ``N`` frames, each ``(H, W, 3)`` uint8 RGB."""
        ...


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from grayscale, RGB or RGBA (alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"a frame must be (H, W, 3) RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"a frame must be uint8, got {image.dtype}")
    return image[:, :, :3]


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Float32 [0, 1], block-averaged by an integer factor until no side exceeds ``max_side``."""
    h, w, _ = image.shape
    k = math.ceil(max(h, w) / max_side)
    if k <= 1 or min(h, w) < k:
        return image.astype(np.float32) / 255.0
    h2, w2 = h - h % k, w - w % k
    # strided sums, rows then columns: ten times faster than a reshape-and-sum over two axes
    rows = np.zeros((h2 // k, w2, 3), np.uint32)
    for i in range(k):
        rows += image[i:h2:k, :w2]
    summed = rows[:, 0::k].copy()
    for j in range(1, k):
        summed += rows[:, j::k]
    return summed.astype(np.float32) / (255.0 * k * k)


def _area_resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Average ``gray`` over a ``size x size`` grid of (nearly) equal cells."""
    h, w = gray.shape
    if h < size or w < size:
        gray = np.repeat(np.repeat(gray, math.ceil(size / h), axis=0), math.ceil(size / w), axis=1)
        h, w = gray.shape
    rows = (np.arange(size) * h) // size
    cols = (np.arange(size) * w) // size
    sums = np.add.reduceat(np.add.reduceat(gray, rows, axis=0), cols, axis=1)
    counts = np.diff(np.append(rows, h))[:, None] * np.diff(np.append(cols, w))[None, :]
    return sums / counts


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class BuiltinExtractor:
    """Thumbnail + colour histograms + gradient-orientation histograms, L2-normalised.

    Parameters
    ----------
    thumbnail
        Side of the grayscale thumbnail (``thumbnail**2`` values, zero-mean).
    color_bins
        Bins of each of the R, G, B histograms (square roots of the pixel shares).
    orientations
        Unsigned gradient orientation bins per cell, weighted by gradient magnitude.
    cells
        The orientation histograms are kept for a ``cells x cells`` grid.
    max_side
        Frames are first block-averaged down to at most this side (speed; 1080p -> 240x135).

    Examples
    --------
    >>> extractor = BuiltinExtractor()
    >>> frames = [np.zeros((48, 64, 3), np.uint8), np.full((48, 64, 3), 200, np.uint8)]
    >>> frames[1][10:30, 20:40] = (255, 0, 0)
    >>> X = extractor(frames)
    >>> X.shape, extractor.dim, np.allclose(np.linalg.norm(X, axis=1), 1.0)
    ((2, 124), 124, True)
    """

    name = "builtin"

    def __init__(self, thumbnail: int = 8, color_bins: int = 8, orientations: int = 9, cells: int = 2,
                 max_side: int = 256) -> None:
        if min(thumbnail, color_bins, orientations, cells, max_side) < 1:
            raise ValueError("every size of the built-in extractor must be at least 1")
        self.thumbnail = thumbnail
        self.color_bins = color_bins
        self.orientations = orientations
        self.cells = cells
        self.max_side = max_side

    @property
    def dim(self) -> int:
        """Length of an embedding."""
        return self.thumbnail**2 + 3 * self.color_bins + self.cells**2 * self.orientations

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, dim)`` float32 unit vectors, one per frame."""
        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed(image) for image in images])

    def embed(self, image: np.ndarray) -> np.ndarray:
        """The embedding of one ``(H, W, 3)`` uint8 RGB frame."""
        small = _shrink(_rgb(image), self.max_side)
        gray = small @ _LUMA
        thumb = _area_resize(gray, self.thumbnail).ravel()
        blocks = [_unit(thumb - thumb.mean()), _unit(self._colors(small)), _unit(self._gradients(gray))]
        return _unit(np.concatenate(blocks)).astype(np.float32)

    def _colors(self, small: np.ndarray) -> np.ndarray:
        bins = self.color_bins
        index = np.minimum((small * bins).astype(np.int64), bins - 1)
        index += np.arange(3) * bins  # one histogram per channel, side by side
        counts = np.bincount(index.ravel(), minlength=3 * bins).astype(np.float32)
        return np.sqrt(counts / (small.shape[0] * small.shape[1]))

    def _gradients(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        o, c = self.orientations, self.cells
        gy = np.zeros_like(gray)
        gx = np.zeros_like(gray)
        gy[1:-1] = gray[2:] - gray[:-2]
        gx[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
        magnitude = np.hypot(gx, gy)
        angle = np.arctan2(gy, gx) % np.pi  # unsigned: a dark-to-light edge = light-to-dark
        orientation = np.minimum((angle * (o / np.pi)).astype(np.int64), o - 1)
        cell = ((np.arange(h) * c) // h)[:, None] * c + ((np.arange(w) * c) // w)[None, :]
        return np.bincount((cell * o + orientation).ravel(), weights=magnitude.ravel(),
                           minlength=c * c * o).astype(np.float32)


class TorchExtractor:
    """Embeddings from your torch module (see the module docstring for the input convention).

    Parameters
    ----------
    path
        The saved module: TorchScript (``kind="torchscript"``, ``torch.jit.save``) or a
        ``torch.export`` program (``kind="export"``, ``torch.export.save``, a ``.pt2`` file).
    kind
        ``torchscript`` or ``export``.
    input_size
        Frames are resized to ``input_size x input_size``.
    device
        Torch device, e.g. ``cpu`` or ``cuda``.

    Raises
    ------
    FeedError
        PyTorch missing, no such file, or not a module of that kind.

    Notes
    -----
    An exported program with a fixed batch size of 1 (exported without a dynamic batch
    dimension) is run one frame at a time.
    """

    def __init__(self, path: str | Path, *, kind: str = "torchscript", input_size: int = 224,
                 device: str = "cpu") -> None:
        try:
            import torch
        except ImportError:
            raise FeedError(f"--extractor {kind}:... needs PyTorch, which is not installed: pip "
                            "install 'streamer[torch]' (or use --extractor builtin, numpy only)") from None
        self._torch = torch
        path = Path(path)
        if kind not in ("torchscript", "export"):
            raise FeedError(f"unknown kind of torch module {kind!r}: torchscript or export")
        if not path.is_file():
            raise FeedError(f"no {'TorchScript' if kind == 'torchscript' else 'torch.export'} file at {path}")
        if input_size < 1:
            raise FeedError(f"--input-size must be at least 1, got {input_size}")
        self.module = self._load(torch, path, kind, device)
        self.name = f"{kind}:{path.name}"
        self.input_size = input_size
        self.device = device
        self._one_at_a_time = False

    @staticmethod
    def _load(torch: Any, path: Path, kind: str, device: str) -> Any:
        try:
            if kind == "torchscript":
                return torch.jit.load(str(path), map_location=device).eval()
            return torch.export.load(str(path)).module().to(device)
        except Exception as exc:  # torch raises RuntimeError, zipfile.BadZipFile, ValueError...
            how = ("torch.jit.script(model).save(path) or torch.jit.trace" if kind == "torchscript"
                   else "torch.export.save(torch.export.export(model, (example,)), 'model.pt2')")
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FeedError(f"{path} is not a saved {kind} module ({first}); save one with {how}") from None

    def inputs(self, images: Sequence[np.ndarray]) -> Any:
        """The ``(N, 3, S, S)`` float32 tensor in [0, 1] the module is given."""
        torch = self._torch
        resized = []
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(_rgb(image))).to(self.device)
            x = x.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0
            resized.append(torch.nn.functional.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                antialias=True).clamp_(0.0, 1.0))
        return torch.cat(resized)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 embeddings."""
        torch = self._torch
        x = self.inputs(images)
        try:
            with torch.inference_mode():
                if self._one_at_a_time:
                    out = torch.cat([self._first(self.module(x[i:i + 1])) for i in range(len(x))])
                else:
                    out = self._first(self.module(x))
        except (AssertionError, RuntimeError) as exc:
            if len(x) > 1 and not self._one_at_a_time:
                # an exported program guarding a batch of 1: go frame by frame from now on
                self._one_at_a_time = True
                return self(images)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FeedError(f"{self.name} failed on its input {tuple(x.shape)} (float32 NCHW RGB "
                            f"in [0, 1]): {first}") from exc
        if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != len(images):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FeedError(f"{self.name} returned {shape} for {len(images)} frames: it must return "
                            "a tensor whose first dimension is the batch")
        return out.reshape(len(images), -1).to(torch.float32).cpu().numpy()

    def _first(self, out: Any) -> Any:
        return out[0] if isinstance(out, (tuple, list)) else out


TorchScriptExtractor = TorchExtractor  # the name the feeder first had


def make_extractor(spec: str, *, input_size: int = 224, device: str = "cpu") -> FrameExtractor:
    """The extractor ``builtin``, ``torchscript:PATH`` or ``export:PATH`` names.

    >>> make_extractor("builtin").name
    'builtin'
    """
    if spec == "builtin":
        return BuiltinExtractor()
    kind, _, path = spec.partition(":")
    if kind in ("torchscript", "export") and path:
        return TorchExtractor(path, kind=kind, input_size=input_size, device=device)
    raise FeedError(f"unknown extractor {spec!r}: use builtin, torchscript:PATH or export:PATH")
