"""The streams of the label-efficiency benchmark: the data dir's files and river's drifting generators.

Every stream is loaded whole into memory (the largest is 20,000 x 64) in its fixed order; the
seed of a run never changes the stream. The synthetic streams follow the data README recipes
(river 0.26.1, the README's generator seeds), with two changes so that the drift happens inside
a stream of ``n`` items: the SEA gradual drift sits at ``n // 2`` with width ``n // 4`` (README:
10,000 / 5,000 for 20,000 items), and the Agrawal switch at ``n // 2`` (README: 25,000, beyond
a 20,000-item stream) with width ``min(1000, n // 20)``. The README's SEA abrupt recipe is the
shipped ``sea_abrupt.csv.gz``, so the in-process SEA stream is the gradual one.

:data:`PACKAGED` are real streams that a dependency ships inside its package (nothing is
downloaded): river's ``Bananas``. River's other real classification sets (Elec2, CreditCard,
Higgs, HTTP, SMTP...) are downloaded on first use, so they are not here; its Phishing and
ImageSegments are the data dir's ``phishing`` and ``segment``.

Examples
--------
>>> s = synthetic("hyperplane", 50)
>>> s.X.shape, s.classes
((50, 10), [0, 1])
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from streamer.data import BUNDLED_STREAMS, bundled_stream, iter_csv_batches

__all__ = ["PACKAGED", "SYNTHETIC", "Stream", "from_file", "load_streams", "packaged", "synthetic"]

SYNTHETIC = ("sea_gradual", "hyperplane", "agrawal_drift", "rbf_drift")
PACKAGED = ("bananas",)


@dataclass(frozen=True)
class Stream:
    """A labelled stream in order: ``X`` float ``(n, d)``, ``y`` int ``(n,)``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    origin: str

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in np.unique(self.y))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the items and labels (part of every cached run's key)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def from_file(path: Path, max_items: int | None = None) -> Stream:
    """Read a data-dir CSV stream, top to bottom, at most ``max_items`` rows."""
    xs, ys = [], []
    for X, y, _names in iter_csv_batches(path, batch_size=4096):
        xs.append(X)
        ys.append(y)
    X, y = np.vstack(xs), np.concatenate(ys)
    if max_items is not None:
        X, y = X[:max_items], y[:max_items]
    name = path.name.split(".")[0]
    return Stream(name, np.ascontiguousarray(X), y.astype(np.int64), f"file {path.name}")


def synthetic(name: str, n: int) -> Stream:
    """Generate the synthetic stream ``name`` (one of :data:`SYNTHETIC`) with ``n`` items."""
    from river.datasets import synth

    if name == "sea_gradual":
        position = max(n // 2, 1)
        gen = synth.ConceptDriftStream(
            stream=synth.SEA(variant=0, noise=0.1, seed=1),
            drift_stream=synth.SEA(variant=2, noise=0.1, seed=2),
            position=position, width=max(n // 4, 1), seed=42)
        origin = f"river SEA variant 0 -> 2, noise 0.1, gradual drift at {position} (width {max(n // 4, 1)})"
    elif name == "hyperplane":
        gen = synth.Hyperplane(seed=42, n_features=10, n_drift_features=2, mag_change=0.001,
                               noise_percentage=0.05, sigma=0.1)
        origin = "river Hyperplane, 10 features, 2 drifting (mag_change 0.001), 5% noise"
    elif name == "agrawal_drift":
        position, width = max(n // 2, 1), max(min(1000, n // 20), 1)
        gen = synth.ConceptDriftStream(
            stream=synth.Agrawal(classification_function=0, seed=42),
            drift_stream=synth.Agrawal(classification_function=4, seed=42),
            position=position, width=width, seed=42)
        origin = f"river Agrawal function 0 -> 4 at {position} (width {width})"
    elif name == "rbf_drift":
        gen = synth.RandomRBFDrift(seed_model=42, seed_sample=42, n_classes=5, n_features=10,
                                   n_centroids=50, change_speed=0.001, n_drift_centroids=25)
        origin = "river RandomRBFDrift, 5 classes, 10 features, 25 of 50 centroids moving (0.001)"
    else:
        raise ValueError(f"unknown synthetic stream {name!r}; choose one of {', '.join(SYNTHETIC)}")
    rows, labels = [], []
    keys: list | None = None
    for x, y in gen.take(n):
        if keys is None:
            keys = list(x)
        rows.append([float(x[k]) for k in keys])
        labels.append(int(y))
    return Stream(name, np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64),
                  f"{origin}, {n:,} items")


def packaged(name: str, max_items: int | None = None) -> Stream:
    """Load the packaged real stream ``name`` (one of :data:`PACKAGED`) in its shipped order."""
    if name != "bananas":
        raise ValueError(f"unknown packaged stream {name!r}; choose one of {', '.join(PACKAGED)}")
    from river.datasets import Bananas

    rows, labels = [], []
    for x, y in Bananas():
        rows.append([float(v) for v in x.values()])
        labels.append(int(y))
    X, y_ = np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64)
    if max_items is not None:
        X, y_ = X[:max_items], y_[:max_items]
    return Stream(name, X, y_, "river Bananas (shipped in the river package), 2 features")


def load_streams(data_dir: Path | None, synthetic_items: int, *, names: Iterable[str] | None = None,
                 max_items: int | None = None) -> list[Stream]:
    """The data dir's ``*.csv*`` files and the package's bundled streams it lacks (sorted by
    name), then :data:`PACKAGED` and :data:`SYNTHETIC`, filtered by ``names``."""
    wanted = set(names) if names is not None else None
    streams: list[Stream] = []
    files = list(data_dir.glob("*.csv*")) if data_dir is not None else []
    files += [bundled_stream(name) for name in BUNDLED_STREAMS if name not in {p.name for p in files}]
    files.sort(key=lambda path: path.name)
    for path in files:
        if wanted is None or path.name.split(".")[0] in wanted:
            streams.append(from_file(path, max_items))
    for name in PACKAGED:
        if wanted is None or name in wanted:
            streams.append(packaged(name, max_items))
    n = synthetic_items if max_items is None else min(synthetic_items, max_items)
    for name in SYNTHETIC:
        if wanted is None or name in wanted:
            streams.append(synthetic(name, n))
    if wanted is not None:
        missing = wanted - {s.name for s in streams}
        if missing:
            raise ValueError(f"unknown stream(s) {', '.join(sorted(missing))}; files are "
                             f"{', '.join(p.name for p in files)}, packaged {', '.join(PACKAGED)} and "
                             f"synthetic {', '.join(SYNTHETIC)}")
    return streams
