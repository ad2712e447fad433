"""Expected model change: how far a label would move the model (expected gradient length).

Settles, Craven & Ray (2008), "Multiple-instance active learning": ask for the item whose label,
in expectation over the model's own class probabilities, would change the model most. For a
softmax (or one-vs-rest logistic) layer ``W`` on inputs ``z`` with log loss, the gradient of
the loss for label ``c`` is ``(p - e_c) z^T``, whose norm is ``||p - e_c|| * ||z||``, so

    EGL(x) = ||z|| * sum_c p_c * ||p - e_c||

needs only the probabilities and the input. ``z`` is the item standardised with the running
mean and variance of every item seen (what the linear members' ``StandardScaler`` sees); for
the torch MLP head, whose last layer sees a hidden representation, it is the input-layer proxy.
Unlike the uncertainty scores it grows with ``||z||``: an uncertain item far from the data's
centre moves a linear model more than an uncertain one near it.

The raw value has no fixed scale, so the term is its **running rank** (the share of the last
``rank_window`` values it exceeds), in ``[0, 1]`` like every policy term.

Examples
--------
>>> import numpy as np
>>> egl = ExpectedGradientLength(rank_window=10)
>>> raw = expected_gradient_length(np.array([[0.5, 0.5], [1.0, 0.0]]), np.ones((2, 3)))
>>> bool(raw[0] > raw[1] == 0.0)  # a certain prediction would not move the model
True
>>> egl(np.ones((2, 3)), np.array([[0.5, 0.5], [1.0, 0.0]])).shape
(2,)
"""

from __future__ import annotations

import numpy as np

from streamer.core.moments import RunningMoments
from streamer.core.policy import RunningRank

__all__ = ["ExpectedGradientLength", "expected_gradient_length"]


def expected_gradient_length(proba: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``||z|| * sum_c p_c ||p - e_c||`` per row: ``proba`` ``(B, C)``, ``Z`` ``(B, d)``."""
    p = np.asarray(proba, dtype=np.float64)
    # ||p - e_c||^2 = ||p||^2 - 2 p_c + 1, which cancels for the predicted class of a confident
    # row (p_c near 1: about 1e-16 of error under a square root); there it is summed directly,
    # the other classes' p_k^2 plus (1 - p_c)^2
    squared = np.maximum((p * p).sum(axis=1, keepdims=True) - 2.0 * p + 1.0, 0.0)
    if p.size:
        rows, top = np.arange(p.shape[0]), p.argmax(axis=1)
        others = p.copy()
        others[rows, top] = 0.0
        squared[rows, top] = (others * others).sum(axis=1) + (1.0 - p[rows, top]) ** 2
    return np.linalg.norm(Z, axis=1) * (p * np.sqrt(squared)).sum(axis=1)


class ExpectedGradientLength:
    """The ``egl`` policy term: the running rank of the expected gradient length."""

    def __init__(self, rank_window: int = 1000) -> None:
        self._rank = RunningRank(rank_window)
        self._moments = RunningMoments()

    def __call__(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:
        return self._rank(expected_gradient_length(proba, self._moments.standardise(X)))
