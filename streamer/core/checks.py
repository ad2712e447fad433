"""Argument checks shared by the sampler, the models and the budget controller (one wording for
users)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` lies in ``[low, high]`` (``(low, high]`` if low_open)."""
    ok = (low < value <= high) if low_open else (low <= value <= high)
    if not (isinstance(value, int | float) and ok):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")


def check_window(window: int) -> None:
    """Raise ``ValueError`` unless ``window`` is a positive number of items."""
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"window must be a positive number of items, got {window!r}")


def as_batch(X: Any, n_features: int | None, dtype: Any = np.float64) -> np.ndarray:
    """``X`` as a ``(batch, features)`` array; raise ``ValueError`` for another shape, or for a
    width other than ``n_features`` (``None``: any width)."""
    arr = np.asarray(X, dtype=dtype)
    if arr.ndim != 2:
        raise ValueError(
            f"X must be a 2-d (batch, features) array, got shape {arr.shape}; "
            "wrap a single item as X[None, :]"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"features has {arr.shape[1]} values, the model expects {n_features}")
    return arr
