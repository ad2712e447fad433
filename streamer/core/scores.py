"""Uncertainty scores on a batch of class probabilities.

Every score maps a ``(B, C)`` probability array to a ``(B,)`` array in ``[0, 1]`` where
higher means more uncertain, so one budget controller can gate any of them.

Conventions shared by all scores:

- ``C == 0`` or ``C == 1``: the model cannot tell classes apart, so every row scores 1.0
  (maximally uncertain) -- asking is the only way to learn anything.
- A row that is all zeros (or negative/NaN junk) carries no information: it scores 1.0.
- Rows are renormalised before scoring, so rows that do not sum to exactly 1 are fine.

Examples
--------
>>> import numpy as np
>>> P = np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]])
>>> margin(P).round(2).tolist()
[0.0, 1.0, 0.4]
>>> entropy(np.array([[0.25, 0.25, 0.25, 0.25]])).round(6).tolist()
[1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SCORES", "entropy", "least_confidence", "margin"]

ScoreFn = Callable[[np.ndarray], np.ndarray]


def _normalised(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return rows scaled to sum to 1 and a mask of rows that carry no information.

    Parameters
    ----------
    proba
        ``(B, C)`` array of non-negative class probabilities.

    Returns
    -------
    tuple
        ``(P, empty)``: ``P`` is ``(B, C)`` with empty rows set to uniform, ``empty`` is
        ``(B,)`` bool.
    """
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(
            f"proba must be a 2-d (batch, classes) array, got shape {P.shape}; "
            "wrap a single row as proba[None, :]"
        )
    # Negative or NaN entries would make the scores leave [0, 1]; treat them as zero mass.
    P = np.where(np.isfinite(P) & (P > 0.0), P, 0.0)
    total = P.sum(axis=1)
    empty = total <= 0.0
    C = P.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(empty[:, None], 1.0 / max(C, 1), P / np.where(empty, 1.0, total)[:, None])
    return P, empty


def _degenerate(proba: np.ndarray) -> np.ndarray | None:
    """Scores for the cases where there is nothing to compare (C < 2), else ``None``."""
    P = np.asarray(proba)
    if P.ndim == 2 and P.shape[1] < 2:
        return np.ones(P.shape[0], dtype=np.float64)
    return None


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """``(1 - max p) / (1 - 1/C)``: how far the top class is from certainty.

    Parameters
    ----------
    proba
        ``(B, C)`` class probabilities.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` scores in ``[0, 1]``; 0 for a one-hot row, 1 for a uniform row.

    Examples
    --------
    >>> import numpy as np
    >>> least_confidence(np.array([[0.5, 0.5], [1.0, 0.0]])).tolist()
    [1.0, 0.0]
    """
    out = _degenerate(proba)
    if out is not None:
        return out
    P, _ = _normalised(proba)
    C = P.shape[1]
    score = (1.0 - P.max(axis=1)) / (1.0 - 1.0 / C)
    return np.clip(score, 0.0, 1.0)


def margin(proba: np.ndarray) -> np.ndarray:
    """``1 - (p1 - p2)`` with ``p1 >= p2`` the two largest probabilities.

    Parameters
    ----------
    proba
        ``(B, C)`` class probabilities.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` scores in ``[0, 1]``; 0 for a one-hot row, 1 when the top two tie.

    Examples
    --------
    >>> import numpy as np
    >>> margin(np.array([[0.6, 0.3, 0.1]])).round(2).tolist()
    [0.7]
    """
    out = _degenerate(proba)
    if out is not None:
        return out
    P, _ = _normalised(proba)
    # partition is O(C) per row, cheaper than a full sort for many classes
    top2 = np.partition(P, P.shape[1] - 2, axis=1)[:, -2:]
    score = 1.0 - (top2[:, 1] - top2[:, 0])
    return np.clip(score, 0.0, 1.0)


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row divided by ``log C``.

    Parameters
    ----------
    proba
        ``(B, C)`` class probabilities.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` scores in ``[0, 1]``; 0 for a one-hot row, 1 for a uniform row.

    Examples
    --------
    >>> import numpy as np
    >>> entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).tolist()
    [1.0, 0.0]
    """
    out = _degenerate(proba)
    if out is not None:
        return out
    P, _ = _normalised(proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(P > 0.0, P * np.log(P), 0.0)
    score = -plogp.sum(axis=1) / np.log(P.shape[1])
    # + 0.0 turns the -0.0 of a one-hot row into 0.0
    return np.clip(score, 0.0, 1.0) + 0.0


SCORES: dict[str, ScoreFn] = {
    "least-confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
