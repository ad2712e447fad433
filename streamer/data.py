"""Streams for evaluation: CSV files (``.csv`` / ``.csv.gz``) and a synthetic drifting stream.

Every source yields the same batches ``(X, y, feature_names)``: ``X`` float64 ``(B, d)``,
``y`` int ``(B,)``, and the feature column names.

Examples
--------
>>> X, y, names = next(synthetic_stream(5, seed=1, batch_size=5))
>>> X.shape, y.dtype.kind, names
((5, 3), 'i', ['x0', 'x1', 'x2'])
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "BUNDLED_STREAMS", "LABEL_COLUMN", "Batch", "bundled_stream", "default_data_dir",
    "find_stream", "iter_csv_batches", "synthetic_stream",
]

LABEL_COLUMN = "label"
Batch = tuple[np.ndarray, np.ndarray, list[str]]

# small labelled streams shipped inside the package (sources and licenses: datasets/README.md)
BUNDLED_DIR = Path(__file__).resolve().parent / "datasets"
BUNDLED_STREAMS = ("digits_frames.csv.gz", "phishing.csv.gz")


def default_data_dir() -> Path | None:
    """Where the development streams live: ``$STREAMER_DATA_DIR``, else ``../shared/data``.

    Returns
    -------
    pathlib.Path or None
        The directory, or ``None`` when it does not exist (use :func:`synthetic_stream` then).
    """
    override = os.environ.get("STREAMER_DATA_DIR")
    candidate = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"
    return candidate if candidate.is_dir() else None


def bundled_stream(name: str) -> Path:
    """A stream shipped with the package: ``digits_frames.csv.gz`` or ``phishing.csv.gz``.

    >>> bundled_stream("phishing.csv.gz").name
    'phishing.csv.gz'
    """
    if name not in BUNDLED_STREAMS:
        raise ValueError(f"no bundled stream {name!r}; the package ships {', '.join(BUNDLED_STREAMS)}")
    return BUNDLED_DIR / name


def find_stream(name: str) -> Path | None:
    """``name`` in :func:`default_data_dir` when it is there, else the bundled copy, else None."""
    directory = default_data_dir()
    if directory is not None and (directory / name).is_file():
        return directory / name
    return bundled_stream(name) if name in BUNDLED_STREAMS else None


def iter_csv_batches(path: str | Path, batch_size: int = 1) -> Iterator[Batch]:
    """Read a labelled CSV stream top to bottom in batches.

    Parameters
    ----------
    path
        A ``.csv`` or ``.csv.gz`` file with a header row, numeric feature columns and a last
        column named ``label`` holding integer class ids.
    batch_size
        Rows per batch (the last batch may be shorter).

    Yields
    ------
    tuple
        ``(X, y, feature_names)``.

    Raises
    ------
    ValueError
        Missing ``label`` column, a non-numeric value (with its row and column), or a row with
        the wrong number of values.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: the file is empty; expected a header row ending in '{LABEL_COLUMN}'")
        header = [name.strip() for name in header]
        if header[-1] != LABEL_COLUMN:
            raise ValueError(
                f"{path}: the last column must be '{LABEL_COLUMN}' (integer class ids), "
                f"got {header[-1]!r}; move or rename the label column"
            )
        names = header[:-1]
        width = len(header)
        rows: list[list[float]] = []
        labels: list[int] = []
        # Line 1 is the header, so data rows start at line 2 (as an editor shows them).
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != width:
                raise ValueError(f"{path}: line {line} has {len(record)} values, the header has {width}")
            rows.append([_number(path, line, names[j], value) for j, value in enumerate(record[:-1])])
            labels.append(_label(path, line, record[-1]))
            if len(rows) == batch_size:
                yield np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64), list(names)
                rows, labels = [], []
        if rows:
            yield np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64), list(names)


def synthetic_stream(n: int, seed: int = 0, batch_size: int = 1) -> Iterator[Batch]:
    """A SEA stream with one near-abrupt concept drift halfway (river ``ConceptDriftStream``).

    Same recipe as the shipped ``sea_abrupt.csv.gz`` (data README), with the drift at ``n // 2``.

    Parameters
    ----------
    n
        Number of items.
    seed
        Seeds the two SEA generators (``seed + 1``, ``seed + 2``) and the drift position draw.
    batch_size
        Rows per batch.

    Yields
    ------
    tuple
        ``(X, y, feature_names)`` with features ``x0, x1, x2``.
    """
    from river.datasets import synth

    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    # river computes exp(4 * position / width): keep position / width below ~170.
    position = max(n // 2, 1)
    width = max(100, position // 150)
    stream = synth.ConceptDriftStream(
        stream=synth.SEA(variant=0, noise=0.1, seed=seed + 1),
        drift_stream=synth.SEA(variant=2, noise=0.1, seed=seed + 2),
        position=position,
        width=width,
        seed=seed + 42,
    )
    names = ["x0", "x1", "x2"]
    rows: list[list[float]] = []
    labels: list[int] = []
    for x, y in stream.take(n):
        rows.append([float(x[k]) for k in range(3)])
        labels.append(int(y))
        if len(rows) == batch_size:
            yield np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64), list(names)
            rows, labels = [], []
    if rows:
        yield np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64), list(names)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - returned to a with-block


def _number(path: Path, line: int, column: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{path}: line {line}, column {column!r}: {value!r} is not a number; "
            "all feature columns must be numeric"
        ) from None


def _label(path: Path, line: int, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number != int(number):
        raise ValueError(
            f"{path}: line {line}, column '{LABEL_COLUMN}': {value!r} is not an integer class id"
        )
    return int(number)
