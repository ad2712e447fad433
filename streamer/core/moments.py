"""Running mean and variance of every item seen, to standardise the rows of a batch.

Chan, Golub & LeVeque's parallel update folds a whole batch in at once. A batch is
standardised with the moments of the items *before* it, then absorbed, so no item is scaled
by statistics that include itself.

Examples
--------
>>> import numpy as np
>>> moments = RunningMoments()
>>> moments.standardise(np.array([[0.0], [2.0]])).tolist()  # nothing seen yet: unchanged
[[0.0], [2.0]]
>>> moments.standardise(np.array([[3.0]])).tolist()  # mean 1, variance 1
[[2.0]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunningMoments"]


class RunningMoments:
    """Per-column running mean and sum of squared deviations."""

    def __init__(self, count: int = 0, mean: np.ndarray | float = 0.0, m2: np.ndarray | float = 0.0) -> None:
        self.count = count
        self.mean = mean
        self.m2 = m2

    def standardise(self, X: np.ndarray) -> np.ndarray:
        """``X`` standardised with the moments so far (unchanged before two items), then absorbed."""
        n, b = self.count, X.shape[0]
        Z = (X - self.mean) / np.sqrt(np.maximum(self.m2 / n, 1e-12)) if n >= 2 else X
        if b:
            mean_b = X.mean(axis=0)
            m2_b = ((X - mean_b) ** 2).sum(axis=0)
            delta = mean_b - self.mean
            total = n + b
            self.mean = self.mean + delta * (b / total)
            self.m2 = self.m2 + m2_b + delta**2 * (n * b / total)
            self.count = total
        return Z
