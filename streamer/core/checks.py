"""Argument checks shared by the budget controller and the gate rules (one wording for users)."""

from __future__ import annotations


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
